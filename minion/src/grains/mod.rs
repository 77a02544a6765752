//! Grains: facts about the minion, computed once at start-up on Linux by
//! reading `/proc`, `/sys` and `/etc` (no shelling out), with the grains
//! from the minion config (`grains:`) laid over them as Salt does (a
//! top-level update: a config grain replaces a computed one of that name).
//!
//! | grains | source | as Salt |
//! | --- | --- | --- |
//! | `id` | the minion id | yes |
//! | `localhost`, `nodename` | `/proc/sys/kernel/hostname` | yes |
//! | `fqdn`, `host`, `domain` | the first name of the `/etc/hosts` line naming the hostname, else the hostname; `host`/`domain` split it at the first dot | Salt asks the resolver (DNS included); Brine reads `/etc/hosts` only |
//! | `kernel`, `kernelrelease`, `kernelversion`, `cpuarch` | `/proc/sys/kernel/{ostype,osrelease,version,arch}` | yes |
//! | `os`, `os_family`, `osfullname`, `osrelease`, `osrelease_info`, `osmajorrelease`, `osfinger`, `oscodename`, `lsb_distrib_*` | `/etc/os-release`, `/etc/lsb-release`, Salt's name and family maps | yes (SUSE's CPE quirks and pre-os-release distributions are not covered) |
//! | `num_cpus`, `cpu_model`, `cpu_flags` | `/proc/cpuinfo` | yes |
//! | `mem_total`, `swap_total` | `/proc/meminfo`, in MiB | yes |
//! | `ipv4`, `ipv6`, `ip4_interfaces`, `ip6_interfaces`, `ip_interfaces`, `hwaddr_interfaces` | `getifaddrs`, `/sys/class/net` | yes |
//! | `machine_id` | `/etc/machine-id` (or `/var/lib/dbus/machine-id`) | yes |
//! | `pid`, `uid`, `gid`, `username`, `groupname`, `shell` | the minion process, `/etc/passwd`, `/etc/group`, `$SHELL` | yes |
//! | `brineversion`, `brineversioninfo` | this crate's version | Brine's stand-ins for `saltversion`/`saltversioninfo`, which Brine does not claim |
//!
//! Every computed value has the type Salt gives it (`num_cpus`, `mem_total`
//! and `osmajorrelease` are integers, address grains lists of text), and a
//! source that cannot be read leaves its grain out (or at Salt's default,
//! e.g. `mem_total: 0`) rather than failing start-up.

mod net;
mod os;

use std::path::Path;

use brine_protocol::Value;

use crate::users;

/// Computes the grains of this machine for minion `id`.
///
/// This reads files and asks the kernel for interface addresses: a few
/// milliseconds of blocking work, meant for start-up (call it before the
/// runtime starts serving, or through `tokio::task::spawn_blocking`).
pub fn compute(id: &str) -> Value {
    let root = Path::new("/");
    let mut grains = compute_files(root, id);
    let process = process_grains(root);
    let net = net::net_grains(&net::live_interfaces(root));
    if let Value::Map(entries) = &mut grains {
        entries.extend(
            process
                .into_iter()
                .chain(net)
                .map(|(k, v)| (Value::from(k), v)),
        );
    }
    grains
}

/// Computes the grains and lays the config's static `grains` (a map) over them.
pub fn load(id: &str, static_grains: &Value) -> Value {
    let mut grains = compute(id);
    merge_static(&mut grains, static_grains);
    grains
}

/// Lays `static_grains` over `grains`, key by key (Salt's
/// `grains.update(opts["grains"])`). A non-map is ignored.
pub fn merge_static(grains: &mut Value, static_grains: &Value) {
    let Some(entries) = static_grains.as_map() else {
        if !static_grains.is_nil() {
            tracing::warn!("the grains setting is not a map and is ignored");
        }
        return;
    };
    for (k, v) in entries {
        match k.as_str() {
            Some(key) => {
                grains.insert(key, v.clone());
            }
            None => tracing::warn!("a static grain without a text name is ignored"),
        }
    }
}

/// The grains that come from files under `root` (a test can point it at a
/// fake tree): everything but the network and the running process.
pub fn compute_files(root: &Path, id: &str) -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let mut g: Vec<(String, Value)> = vec![("id".into(), Value::from(id))];

    let hostname = read("proc/sys/kernel/hostname")
        .or_else(|| read("etc/hostname"))
        .unwrap_or_else(|| "localhost".to_owned());
    let fqdn = fqdn_from_hosts(&read("etc/hosts").unwrap_or_default(), &hostname);
    let (host, domain) = fqdn.split_once('.').unwrap_or((fqdn.as_str(), ""));
    g.push(("localhost".into(), Value::from(hostname.as_str())));
    g.push(("nodename".into(), Value::from(hostname.as_str())));
    g.push(("fqdn".into(), Value::from(fqdn.as_str())));
    g.push(("host".into(), Value::from(host)));
    g.push(("domain".into(), Value::from(domain)));

    g.push((
        "kernel".into(),
        Value::from(read("proc/sys/kernel/ostype").unwrap_or_else(|| "Linux".to_owned())),
    ));
    if let Some(release) = read("proc/sys/kernel/osrelease") {
        g.push(("kernelrelease".into(), Value::from(release)));
    }
    if let Some(version) = read("proc/sys/kernel/version") {
        g.push(("kernelversion".into(), Value::from(version)));
    }
    g.push((
        "cpuarch".into(),
        Value::from(
            read("proc/sys/kernel/arch").unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
        ),
    ));

    g.extend(os::os_grains(root));
    g.extend(cpu_grains(&read("proc/cpuinfo").unwrap_or_default()));
    g.extend(mem_grains(&read("proc/meminfo").unwrap_or_default()));
    if let Some(id) = read("etc/machine-id").or_else(|| read("var/lib/dbus/machine-id")) {
        g.push(("machine_id".into(), Value::from(id)));
    }
    g.push(("brineversion".into(), Value::from(crate::VERSION)));
    g.push(("brineversioninfo".into(), version_info(crate::VERSION)));
    Value::Map(g.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
}

/// `[major, minor, patch]` from `x.y.z`.
fn version_info(version: &str) -> Value {
    Value::Array(
        version
            .split(['.', '-', '+'])
            .take(3)
            .map(|p| p.parse::<i64>().map_or_else(|_| Value::from(p), Value::Int))
            .collect(),
    )
}

/// The canonical name `/etc/hosts` gives `hostname` (the first name on the
/// first line that lists it), else `hostname` itself.
fn fqdn_from_hosts(hosts: &str, hostname: &str) -> String {
    if hostname.contains('.') {
        return hostname.to_owned();
    }
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let _addr = fields.next();
        let names: Vec<&str> = fields.collect();
        if names.contains(&hostname)
            && let Some(first) = names.first()
        {
            return (*first).to_owned();
        }
    }
    hostname.to_owned()
}

/// `num_cpus` (the `processor` lines), `cpu_model`, `cpu_flags`.
fn cpu_grains(cpuinfo: &str) -> Vec<(String, Value)> {
    let field = |line: &str| {
        line.split_once(':')
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
    };
    let mut processors: i64 = 0;
    let mut model = None;
    let mut flags = None;
    for (key, value) in cpuinfo.lines().filter_map(field) {
        match key.as_str() {
            "processor" => processors += 1,
            "model name" | "cpu model" if model.is_none() => model = Some(value),
            "flags" | "Features" if flags.is_none() => flags = Some(value),
            _ => {}
        }
    }
    if processors == 0 {
        processors = std::thread::available_parallelism()
            .ok()
            .and_then(|n| i64::try_from(n.get()).ok())
            .unwrap_or(1);
    }
    let mut out = vec![("num_cpus".to_owned(), Value::Int(processors))];
    if let Some(m) = model {
        out.push(("cpu_model".into(), Value::from(m)));
    }
    out.push((
        "cpu_flags".into(),
        Value::Array(
            flags
                .unwrap_or_default()
                .split_whitespace()
                .map(Value::from)
                .collect(),
        ),
    ));
    out
}

/// `mem_total` and `swap_total` in MiB (floor), 0 when unknown.
fn mem_grains(meminfo: &str) -> Vec<(String, Value)> {
    let kib = |key: &str| {
        meminfo
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .and_then(|(_, v)| v.split_whitespace().next()?.parse::<i64>().ok())
            .unwrap_or(0)
    };
    vec![
        ("mem_total".into(), Value::Int(kib("MemTotal") / 1024)),
        ("swap_total".into(), Value::Int(kib("SwapTotal") / 1024)),
    ]
}

/// `pid`, `uid`, `gid`, `username`, `groupname`, `shell` of the minion process.
fn process_grains(root: &Path) -> Vec<(String, Value)> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let mut out = vec![
        ("pid".to_owned(), Value::from(std::process::id())),
        ("uid".into(), Value::from(uid)),
        ("gid".into(), Value::from(gid)),
    ];
    if let Some(user) = users::user_by_uid(root, uid) {
        out.push(("username".into(), Value::from(user.name)));
    }
    if let Some(group) = users::group_name(root, gid) {
        out.push(("groupname".into(), Value::from(group)));
    }
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".to_owned());
    out.push(("shell".into(), Value::from(shell)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let put = |p: &str, text: &str| {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        put("proc/sys/kernel/hostname", "web1\n");
        put("proc/sys/kernel/ostype", "Linux\n");
        put("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
        put("proc/sys/kernel/version", "#1 SMP PREEMPT_DYNAMIC\n");
        put("proc/sys/kernel/arch", "x86_64\n");
        put(
            "etc/hosts",
            "127.0.0.1 localhost\n10.0.0.5 web1.example.com web1 # me\n",
        );
        put(
            "etc/os-release",
            "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        );
        put(
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu vme\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n",
        );
        put(
            "proc/meminfo",
            "MemTotal:       24683520 kB\nSwapTotal:             0 kB\n",
        );
        put("etc/machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n");
        dir
    }

    #[test]
    fn file_grains_are_typed_like_salts() {
        let root = fake_root();
        let g = compute_files(root.path(), "m1");
        let s = |k: &str| {
            g.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(s("id"), "m1");
        assert_eq!(s("localhost"), "web1");
        assert_eq!(s("fqdn"), "web1.example.com");
        assert_eq!(s("host"), "web1");
        assert_eq!(s("domain"), "example.com");
        assert_eq!(s("kernel"), "Linux");
        assert_eq!(s("kernelrelease"), "6.1.0-18-amd64");
        assert_eq!(s("cpuarch"), "x86_64");
        assert_eq!(s("os"), "Debian");
        assert_eq!(s("os_family"), "Debian");
        assert_eq!(s("osfinger"), "Debian-12");
        assert_eq!(s("machine_id"), "3d1219c7c4c5404aaa1f6d2a48adfda4");
        assert_eq!(s("cpu_model"), "AMD EPYC");
        assert_eq!(g.get("num_cpus"), Some(&Value::Int(2)));
        assert_eq!(g.get("mem_total"), Some(&Value::Int(24105)));
        assert_eq!(g.get("swap_total"), Some(&Value::Int(0)));
        assert_eq!(
            g.get("cpu_flags"),
            Some(&Value::Array(vec![Value::from("fpu"), Value::from("vme")]))
        );
        assert_eq!(s("brineversion"), crate::VERSION);
        assert!(
            g.get("brineversioninfo").unwrap().as_array().unwrap()[0]
                .as_i64()
                .is_some()
        );
    }

    #[test]
    fn missing_files_leave_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let g = compute_files(dir.path(), "m2");
        assert_eq!(g.get("localhost"), Some(&Value::from("localhost")));
        assert_eq!(g.get("mem_total"), Some(&Value::Int(0)));
        assert!(g.get("num_cpus").and_then(Value::as_i64).unwrap() >= 1);
        assert!(g.get("machine_id").is_none());
    }

    #[test]
    fn live_grains_are_not_empty_and_typed() {
        let g = compute("live");
        let map = g.as_map().unwrap();
        assert!(map.len() > 20);
        assert!(g.get("num_cpus").and_then(Value::as_i64).unwrap() >= 1);
        assert!(g.get("mem_total").and_then(Value::as_i64).unwrap() > 0);
        assert!(g.get("ipv4").unwrap().as_array().is_some());
        assert!(g.get("ipv6").unwrap().as_array().is_some());
        assert!(g.get("ip4_interfaces").unwrap().as_map().is_some());
        assert!(g.get("kernelrelease").unwrap().as_str().is_some());
        assert_eq!(g.get("kernel"), Some(&Value::from("Linux")));
        assert!(g.get("pid").and_then(Value::as_i64).is_some());
        // every key is text and unique
        let mut keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str().unwrap()).collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }

    #[test]
    fn static_grains_override_computed_ones() {
        let mut g = Value::Map(vec![
            (Value::from("os"), Value::from("Debian")),
            (Value::from("id"), Value::from("m1")),
        ]);
        let config = Value::Map(vec![
            (Value::from("role"), Value::from("web")),
            (Value::from("os"), Value::from("Custom")),
        ]);
        merge_static(&mut g, &config);
        assert_eq!(g.get("os"), Some(&Value::from("Custom")));
        assert_eq!(g.get("role"), Some(&Value::from("web")));
        merge_static(&mut g, &Value::from("not a map"));
        assert_eq!(g.as_map().unwrap().len(), 3);
    }
}
