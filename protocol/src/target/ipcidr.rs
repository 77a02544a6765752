//! `ipcidr` / `S@` targets: an IP address or a network, matched against the
//! minion's `ipv4` or `ipv6` grain as Salt's `ipcidr_match` does.
//!
//! An address matches when its canonical text is one of the grain's entries
//! (a substring, if the grain is a plain string, as Python's `in` goes); a
//! network matches when one of the grain's addresses lies inside it.
//! Networks are parsed strictly, as `ipaddress.ip_network` does: host bits
//! set (`10.0.0.1/24`) is an error. IPv4 networks also take a netmask or a
//! hostmask after the slash.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::TargetError;
use crate::Value;

/// A parsed `ipcidr` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IpTarget {
    /// One address, in the canonical text Python's `str()` gives it.
    Addr { v6: bool, text: String },
    /// A network: base address and prefix length, in 128-bit space for both families.
    Net { v6: bool, base: u128, prefix: u32 },
}

impl IpTarget {
    /// Parses `expr` as an address, or else as a strict network.
    ///
    /// # Errors
    /// [`TargetError::InvalidIp`] if it is neither.
    pub(crate) fn parse(expr: &str) -> Result<IpTarget, TargetError> {
        if let Ok(addr) = expr.parse::<IpAddr>() {
            return Ok(IpTarget::Addr {
                v6: addr.is_ipv6(),
                text: addr.to_string(),
            });
        }
        parse_net(expr).ok_or_else(|| TargetError::InvalidIp {
            expr: expr.to_owned(),
        })
    }

    /// Whether the minion's grains put it at this address or in this network.
    pub(crate) fn matches(&self, grains: &Value) -> bool {
        let v6 = match self {
            IpTarget::Addr { v6, .. } | IpTarget::Net { v6, .. } => *v6,
        };
        let Some(entries) = grains.get(if v6 { "ipv6" } else { "ipv4" }) else {
            return false;
        };
        match self {
            IpTarget::Addr { text, .. } => match entries {
                Value::Array(items) => items.iter().any(|i| i.as_str() == Some(text)),
                Value::Map(_) => entries.contains_key(text),
                other => other.as_str().is_some_and(|s| s.contains(text.as_str())),
            },
            IpTarget::Net { v6, base, prefix } => {
                let inside = |item: &Value| {
                    item.as_str()
                        .and_then(|s| s.parse::<IpAddr>().ok())
                        .is_some_and(|addr| match (addr, v6) {
                            (IpAddr::V4(a), false) => {
                                masked(u128::from(u32::from(a)), *prefix, 32) == *base
                            }
                            (IpAddr::V6(a), true) => masked(u128::from(a), *prefix, 128) == *base,
                            _ => false,
                        })
                };
                match entries {
                    Value::Array(items) => items.iter().any(inside),
                    one => inside(one),
                }
            }
        }
    }
}

/// `value` with only its first `prefix` of `bits` bits kept.
fn masked(value: u128, prefix: u32, bits: u32) -> u128 {
    let host_bits = bits.saturating_sub(prefix);
    if host_bits >= 128 {
        0
    } else {
        value & !((1u128 << host_bits) - 1)
    }
}

fn parse_net(expr: &str) -> Option<IpTarget> {
    let (addr, len) = match expr.split_once('/') {
        Some((a, l)) if !l.contains('/') => (a, Some(l)),
        Some(_) => return None,
        None => (expr, None),
    };
    if let Ok(a) = addr.parse::<Ipv4Addr>() {
        let prefix = match len {
            None => 32,
            Some(l) => v4_prefix(l)?,
        };
        let base = u128::from(u32::from(a));
        return (masked(base, prefix, 32) == base).then_some(IpTarget::Net {
            v6: false,
            base,
            prefix,
        });
    }
    let a = addr.parse::<Ipv6Addr>().ok()?;
    let prefix = match len {
        None => 128,
        Some(l) => decimal_prefix(l, 128)?,
    };
    let base = u128::from(a);
    (masked(base, prefix, 128) == base).then_some(IpTarget::Net {
        v6: true,
        base,
        prefix,
    })
}

fn decimal_prefix(s: &str, max: u32) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|p| *p <= max)
}

/// An IPv4 prefix length, netmask (`255.255.255.0`) or hostmask (`0.0.0.255`).
fn v4_prefix(s: &str) -> Option<u32> {
    if let Some(p) = decimal_prefix(s, 32) {
        return Some(p);
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        let mask = u32::from(s.parse::<Ipv4Addr>().ok()?);
        let contiguous = |m: u32| m.leading_ones() + m.trailing_zeros() >= 32;
        if contiguous(mask) {
            return Some(mask.leading_ones());
        }
        if contiguous(!mask) {
            return Some((!mask).leading_ones());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grains() -> Value {
        [
            (
                "ipv4",
                Value::Array(vec!["127.0.0.1".into(), "10.1.2.3".into()]),
            ),
            ("ipv6", Value::Array(vec!["::1".into(), "fe80::1".into()])),
        ]
        .into_iter()
        .collect()
    }

    fn m(expr: &str) -> bool {
        IpTarget::parse(expr).unwrap().matches(&grains())
    }

    #[test]
    fn addresses_and_networks() {
        assert!(m("10.1.2.3"));
        assert!(!m("10.1.2.4"));
        assert!(m("10.0.0.0/8"));
        assert!(m("10.1.2.0/255.255.255.0"));
        assert!(m("10.1.2.0/0.0.0.255"));
        assert!(!m("192.168.0.0/16"));
        assert!(m("0.0.0.0/0"));
        assert!(m("fe80::/10"));
        assert!(m("FE80::1"), "the address is canonicalised first");
        assert!(!m("2001:db8::/32"));
    }

    #[test]
    fn strict_networks() {
        for bad in [
            "10.0.0.1/24",
            "10.0.0.0/33",
            "10.0.0.0/",
            "nope",
            "1.2.3.4/8/9",
            "::/129",
        ] {
            assert!(
                matches!(IpTarget::parse(bad), Err(TargetError::InvalidIp { .. })),
                "{bad}"
            );
        }
    }
}
