//! Network grains: `ipv4`, `ipv6`, `ip4_interfaces`, `ip6_interfaces`,
//! `ip_interfaces`, `hwaddr_interfaces`.
//!
//! Addresses come from `getifaddrs` (through the small `if-addrs` crate:
//! no shelling out to `ip`); the interface list, its order (by ifindex,
//! as `ip` shows it) and the MAC addresses from `/sys/class/net`, so
//! interfaces without an address are listed too, as Salt lists them.

use std::net::IpAddr;
use std::path::Path;

use brine_protocol::Value;

/// One interface: name, ifindex, MAC address, addresses in kernel order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Iface {
    pub name: String,
    pub index: u32,
    pub hwaddr: Option<String>,
    pub addrs: Vec<IpAddr>,
}

/// The interfaces of the running system.
pub(super) fn live_interfaces(root: &Path) -> Vec<Iface> {
    let mut ifaces: Vec<Iface> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root.join("sys/class/net")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let read = |f: &str| {
                std::fs::read_to_string(entry.path().join(f))
                    .ok()
                    .map(|s| s.trim().to_owned())
            };
            ifaces.push(Iface {
                index: read("ifindex")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u32::MAX),
                hwaddr: read("address").filter(|a| !a.is_empty()),
                name,
                addrs: Vec::new(),
            });
        }
    }
    match if_addrs::get_if_addrs() {
        Ok(addrs) => {
            for a in addrs {
                let ip = a.ip();
                match ifaces.iter_mut().find(|i| i.name == a.name) {
                    Some(iface) => iface.addrs.push(ip),
                    None => ifaces.push(Iface {
                        name: a.name.clone(),
                        index: a.index.unwrap_or(u32::MAX),
                        hwaddr: None,
                        addrs: vec![ip],
                    }),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "interface addresses not readable"),
    }
    ifaces.sort_by(|a, b| a.index.cmp(&b.index).then_with(|| a.name.cmp(&b.name)));
    ifaces
}

/// The network grains for `ifaces`.
pub(super) fn net_grains(ifaces: &[Iface]) -> Vec<(String, Value)> {
    let mut v4: Vec<IpAddr> = Vec::new();
    let mut v6: Vec<IpAddr> = Vec::new();
    for ip in ifaces.iter().flat_map(|i| i.addrs.iter()) {
        if ip.is_ipv4() {
            v4.push(*ip);
        } else {
            v6.push(*ip);
        }
    }
    let sorted_unique = |mut ips: Vec<IpAddr>| {
        ips.sort();
        ips.dedup();
        Value::Array(ips.iter().map(|ip| Value::from(ip.to_string())).collect())
    };
    let per_iface = |keep: &dyn Fn(&IpAddr) -> bool| {
        Value::Map(
            ifaces
                .iter()
                .map(|i| {
                    let addrs = i
                        .addrs
                        .iter()
                        .filter(|ip| keep(ip))
                        .map(|ip| Value::from(ip.to_string()))
                        .collect();
                    (Value::from(i.name.as_str()), Value::Array(addrs))
                })
                .collect(),
        )
    };
    // ip_interfaces lists IPv4 addresses before IPv6 ones, as Salt does
    let ip_interfaces = Value::Map(
        ifaces
            .iter()
            .map(|i| {
                let addrs = i
                    .addrs
                    .iter()
                    .filter(|ip| ip.is_ipv4())
                    .chain(i.addrs.iter().filter(|ip| ip.is_ipv6()))
                    .map(|ip| Value::from(ip.to_string()))
                    .collect();
                (Value::from(i.name.as_str()), Value::Array(addrs))
            })
            .collect(),
    );
    let hwaddr = Value::Map(
        ifaces
            .iter()
            .filter_map(|i| {
                i.hwaddr
                    .as_ref()
                    .map(|h| (Value::from(i.name.as_str()), Value::from(h.as_str())))
            })
            .collect(),
    );
    vec![
        ("ipv4".into(), sorted_unique(v4)),
        ("ipv6".into(), sorted_unique(v6)),
        (
            "ip4_interfaces".into(),
            per_iface(&|ip: &IpAddr| ip.is_ipv4()),
        ),
        (
            "ip6_interfaces".into(),
            per_iface(&|ip: &IpAddr| ip.is_ipv6()),
        ),
        ("ip_interfaces".into(), ip_interfaces),
        ("hwaddr_interfaces".into(), hwaddr),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_salts() {
        let ifaces = vec![
            Iface {
                name: "lo".into(),
                index: 1,
                hwaddr: Some("00:00:00:00:00:00".into()),
                addrs: vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            },
            Iface {
                name: "eth0".into(),
                index: 2,
                hwaddr: Some("02:fc:00:00:00:01".into()),
                addrs: vec![
                    "fe80::fc:ff:fe00:1".parse().unwrap(),
                    "192.0.2.2".parse().unwrap(),
                    "fd00::2".parse().unwrap(),
                ],
            },
            Iface {
                name: "ifb0".into(),
                index: 3,
                hwaddr: None,
                addrs: vec![],
            },
        ];
        let g = Value::Map(
            net_grains(&ifaces)
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        );
        let strs = |v: &[&str]| Value::Array(v.iter().map(|s| Value::from(*s)).collect());
        assert_eq!(g.get("ipv4"), Some(&strs(&["127.0.0.1", "192.0.2.2"])));
        assert_eq!(
            g.get("ipv6"),
            Some(&strs(&["::1", "fd00::2", "fe80::fc:ff:fe00:1"]))
        );
        assert_eq!(
            g.get("ip_interfaces").unwrap().get("eth0"),
            Some(&strs(&["192.0.2.2", "fe80::fc:ff:fe00:1", "fd00::2"]))
        );
        assert_eq!(
            g.get("ip4_interfaces").unwrap().get("ifb0"),
            Some(&strs(&[]))
        );
        assert!(g.get("hwaddr_interfaces").unwrap().get("ifb0").is_none());
    }
}
