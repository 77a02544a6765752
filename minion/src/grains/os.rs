//! OS grains from `os-release` (and `lsb-release`), with Salt's name and
//! family maps (`salt/grains/core.py`: `_OS_NAME_MAP`, `_OS_FAMILY_MAP`,
//! `_derive_os_grain`, `_family_id`, `_osrelease_data`).

use std::path::Path;

use brine_protocol::Value;

/// First ten lower-case characters (spaces removed) of a distribution name → Salt's `os`.
const OS_NAME_MAP: &[(&str, &str)] = &[
    ("redhatente", "RedHat"),
    ("gentoobase", "Gentoo"),
    ("archarm", "Arch ARM"),
    ("arch", "Arch"),
    ("debian", "Debian"),
    ("raspbian", "Raspbian"),
    ("fedoraremi", "Fedora"),
    ("chapeau", "Chapeau"),
    ("korora", "Korora"),
    ("amazonami", "Amazon"),
    ("alt", "ALT"),
    ("enterprise", "OEL"),
    ("oracleserv", "OEL"),
    ("cloudserve", "CloudLinux"),
    ("cloudlinux", "CloudLinux"),
    ("almalinux", "AlmaLinux"),
    ("pidora", "Fedora"),
    ("scientific", "ScientificLinux"),
    ("synology", "Synology"),
    ("nilrt", "NILinuxRT"),
    ("poky", "Poky"),
    ("manjaro", "Manjaro"),
    ("manjarolin", "Manjaro"),
    ("univention", "Univention"),
    ("antergos", "Antergos"),
    ("sles", "SUSE"),
    ("void", "Void"),
    ("slesexpand", "RES"),
    ("linuxmint", "Mint"),
    ("neon", "KDE neon"),
    ("pop", "Pop"),
    ("rocky", "Rocky"),
    ("alibabaclo", "Alinux"),
    ("mendel", "Mendel"),
];

/// `os` → `os_family` (an `os` not listed is its own family).
const OS_FAMILY_MAP: &[(&str, &str)] = &[
    ("Ubuntu", "Debian"),
    ("Fedora", "RedHat"),
    ("Chapeau", "RedHat"),
    ("Korora", "RedHat"),
    ("FedBerry", "RedHat"),
    ("CentOS", "RedHat"),
    ("CentOS Stream", "RedHat"),
    ("GoOSe", "RedHat"),
    ("Scientific", "RedHat"),
    ("Amazon", "RedHat"),
    ("CloudLinux", "RedHat"),
    ("AlmaLinux", "RedHat"),
    ("OVS", "RedHat"),
    ("OEL", "RedHat"),
    ("XCP", "RedHat"),
    ("XCP-ng", "RedHat"),
    ("XenServer", "RedHat"),
    ("RES", "RedHat"),
    ("Sangoma", "RedHat"),
    ("VMware Photon OS", "RedHat"),
    ("Mandrake", "Mandriva"),
    ("Mint", "Debian"),
    ("VMwareESX", "VMware"),
    ("Bluewhite64", "Bluewhite"),
    ("Slamd64", "Slackware"),
    ("SLES", "Suse"),
    ("SUSE Enterprise Server", "Suse"),
    ("SLED", "Suse"),
    ("openSUSE", "Suse"),
    ("SUSE", "Suse"),
    ("openSUSE Leap", "Suse"),
    ("openSUSE Tumbleweed", "Suse"),
    ("SLES_SAP", "Suse"),
    ("Arch ARM", "Arch"),
    ("Manjaro", "Arch"),
    ("Manjaro ARM", "Arch"),
    ("Antergos", "Arch"),
    ("EndeavourOS", "Arch"),
    ("ALT", "RedHat"),
    ("Trisquel", "Debian"),
    ("GCEL", "Debian"),
    ("Linaro", "Debian"),
    ("elementary OS", "Debian"),
    ("elementary", "Debian"),
    ("Univention", "Debian"),
    ("ScientificLinux", "RedHat"),
    ("Raspbian", "Debian"),
    ("Devuan", "Debian"),
    ("antiX", "Debian"),
    ("Kali", "Debian"),
    ("Parrot OS", "Debian"),
    ("neon", "Debian"),
    ("Cumulus", "Debian"),
    ("Deepin", "Debian"),
    ("NILinuxRT", "NILinuxRT"),
    ("KDE neon", "Debian"),
    ("Void", "Void"),
    ("IDMS", "Debian"),
    ("Funtoo", "Gentoo"),
    ("TurnKey", "Debian"),
    ("Pop", "Debian"),
    ("Rocky", "RedHat"),
    ("AstraLinuxCE", "Debian"),
    ("AstraLinuxSE", "Debian"),
    ("Alinux", "RedHat"),
    ("Mendel", "Debian"),
    ("OSMC", "Debian"),
];

/// Distributions whose grains Salt takes from `os-release` alone (the
/// others go through its legacy path, whose `os_family` comes from
/// [`OS_FAMILY_MAP`]).
const OS_RELEASE_ONLY: &[&str] = &[
    "almalinux",
    "astra",
    "debian",
    "linuxmint",
    "mendel",
    "pop",
    "rocky",
    "ubuntu",
];

/// Parses an `os-release`/`lsb-release` style file: `KEY=value`, the value
/// optionally quoted, `\`-escapes of `\ $ " ' \`` undone.
pub(super) fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (key, raw) = line.split_once('=')?;
            if key.is_empty() || !key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return None;
            }
            let value = match raw.as_bytes() {
                [q @ (b'"' | b'\''), .., last] if last == q && raw.len() >= 2 => {
                    &raw[1..raw.len() - 1]
                }
                _ => raw,
            };
            let mut out = String::with_capacity(value.len());
            let mut chars = value.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, chars.peek()) {
                    ('\\', Some(&n)) if matches!(n, '\\' | '$' | '"' | '\'' | '`') => {
                        out.push(n);
                        chars.next();
                    }
                    _ => out.push(c),
                }
            }
            Some((key.to_owned(), out))
        })
        .collect()
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Salt's `_derive_os_grain`: drop "Linux"/"GNU/Linux" after a non-word
/// character, then map the first ten characters.
fn derive_os(fullname: &str, id: &str) -> String {
    match (id, fullname) {
        ("astra", "Astra Linux (Orel)") => return "AstraLinuxCE".into(),
        ("astra", "Astra Linux (Smolensk)") => return "AstraLinuxSE".into(),
        ("pop", "Pop!_OS") => return "Pop".into(),
        _ => {}
    }
    let distroname = strip_linux(fullname).trim().to_owned();
    let short: String = distroname
        .replace(' ', "")
        .to_lowercase()
        .chars()
        .take(10)
        .collect();
    OS_NAME_MAP
        .iter()
        .find(|(k, _)| *k == short)
        .map_or(distroname, |(_, v)| (*v).to_owned())
}

/// Removes every `<non-word char>linux` or `<non-word char>gnu/linux`
/// (case-insensitive), as `re.sub(r"\W(?:gnu/)?linux", "", name, flags=re.I)`.
fn strip_linux(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let lower: Vec<char> = name.to_lowercase().chars().collect();
    if lower.len() != chars.len() {
        return name.to_owned();
    }
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let matches_at = |at: usize, pat: &str| {
        let pat: Vec<char> = pat.chars().collect();
        lower.get(at..at + pat.len()) == Some(&pat[..])
    };
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !word(c) {
            if matches_at(i + 1, "gnu/linux") {
                i += 1 + "gnu/linux".len();
                continue;
            }
            if matches_at(i + 1, "linux") {
                i += 1 + "linux".len();
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Salt's `_family_id`: the oldest ancestor in `ID_LIKE`, Debian for any
/// Debian or Ubuntu derivative.
fn family_id(id: &str, id_like: Option<&str>) -> String {
    let Some(like) = id_like.filter(|l| !l.trim().is_empty()) else {
        return id.to_owned();
    };
    let ids: Vec<&str> = std::iter::once(id).chain(like.split_whitespace()).collect();
    if ids.contains(&"debian") || ids.contains(&"ubuntu") {
        return "debian".into();
    }
    ids.last()
        .map_or_else(|| id.to_owned(), |s| (*s).to_owned())
}

/// Python's `str.capitalize`.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// The OS grains: `os`, `os_family`, `oscodename`, `osfullname`,
/// `osrelease`, `osrelease_info`, `osmajorrelease`, `osfinger`, and the
/// `lsb_distrib_*` grains, from the files under `root`.
pub(super) fn os_grains(root: &Path) -> Vec<(String, Value)> {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let os_release = read("etc/os-release")
        .or_else(|| read("usr/lib/os-release"))
        .map(|t| parse_env_file(&t))
        .unwrap_or_default();
    let lsb = read("etc/lsb-release")
        .map(|t| parse_env_file(&t))
        .unwrap_or_default();

    let name = lookup(&os_release, "NAME")
        .unwrap_or("Linux")
        .trim()
        .to_owned();
    let id = lookup(&os_release, "ID").unwrap_or("linux").to_owned();
    let os = derive_os(&name, &id);
    let os_family = if OS_RELEASE_ONLY.contains(&id.as_str()) {
        let fam = family_id(&id, lookup(&os_release, "ID_LIKE"));
        if fam == "fedora" {
            "RedHat".to_owned()
        } else {
            capitalize(&fam)
        }
    } else {
        OS_FAMILY_MAP
            .iter()
            .find(|(k, _)| *k == os)
            .map_or_else(|| os.clone(), |(_, v)| (*v).to_owned())
    };
    let osrelease = lookup(&os_release, "VERSION_ID")
        .or_else(|| lookup(&lsb, "DISTRIB_RELEASE"))
        .unwrap_or("")
        .to_owned();
    let oscodename = lookup(&os_release, "VERSION_CODENAME")
        .or_else(|| lookup(&lsb, "DISTRIB_CODENAME"))
        .unwrap_or("")
        .to_owned();

    let mut out: Vec<(String, Value)> = vec![
        ("os".into(), Value::from(os.as_str())),
        ("os_family".into(), Value::from(os_family)),
        ("oscodename".into(), Value::from(oscodename.as_str())),
        ("osfullname".into(), Value::from(name.as_str())),
        ("osrelease".into(), Value::from(osrelease.as_str())),
    ];

    // lsb_distrib_*: from lsb-release, else from os-release as Salt falls back
    let lsb_pairs = [
        ("lsb_distrib_id", "DISTRIB_ID", "NAME"),
        ("lsb_distrib_release", "DISTRIB_RELEASE", "VERSION_ID"),
        (
            "lsb_distrib_codename",
            "DISTRIB_CODENAME",
            "VERSION_CODENAME",
        ),
    ];
    for (grain, lsb_key, os_key) in lsb_pairs {
        if let Some(v) = lookup(&lsb, lsb_key).or_else(|| lookup(&os_release, os_key)) {
            out.push((grain.into(), Value::from(v.trim())));
        }
    }

    if !osrelease.is_empty() {
        let info: Vec<Value> = osrelease
            .split('.')
            .map(|part| {
                if !part.is_empty() && part.bytes().all(|c| c.is_ascii_digit()) {
                    part.parse::<i64>()
                        .map_or_else(|_| Value::from(part), Value::Int)
                } else {
                    Value::from(part)
                }
            })
            .collect();
        let first = info.first().cloned().unwrap_or(Value::Nil);
        if let Some(major) = first.as_i64() {
            out.push(("osmajorrelease".into(), Value::Int(major)));
        }
        let os_name = if ["Debian", "FreeBSD", "OpenBSD", "NetBSD", "Mac", "Raspbian"]
            .contains(&os.as_str())
        {
            os.clone()
        } else {
            name.clone()
        };
        let version = if ["Ubuntu", "Pop"].contains(&os.as_str()) {
            osrelease.clone()
        } else {
            brine_protocol::pyfmt::py_str(&first)
        };
        out.push(("osrelease_info".into(), Value::Array(info)));
        out.push((
            "osfinger".into(),
            Value::from(format!("{os_name}-{version}")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grains_for(os_release: &str) -> Value {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/os-release"), os_release).unwrap();
        Value::Map(
            os_grains(dir.path())
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        )
    }

    #[test]
    fn debian_as_salt_sees_it() {
        let g = grains_for(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
             VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        );
        assert_eq!(g.get("os"), Some(&Value::from("Debian")));
        assert_eq!(g.get("os_family"), Some(&Value::from("Debian")));
        assert_eq!(g.get("osrelease"), Some(&Value::from("12")));
        assert_eq!(g.get("osmajorrelease"), Some(&Value::Int(12)));
        assert_eq!(g.get("osfinger"), Some(&Value::from("Debian-12")));
        assert_eq!(g.get("oscodename"), Some(&Value::from("bookworm")));
        assert_eq!(g.get("osfullname"), Some(&Value::from("Debian GNU/Linux")));
        assert_eq!(
            g.get("lsb_distrib_id"),
            Some(&Value::from("Debian GNU/Linux"))
        );
    }

    #[test]
    fn other_families() {
        let ubuntu = grains_for(
            "NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=jammy\n",
        );
        assert_eq!(ubuntu.get("os"), Some(&Value::from("Ubuntu")));
        assert_eq!(ubuntu.get("os_family"), Some(&Value::from("Debian")));
        assert_eq!(ubuntu.get("osfinger"), Some(&Value::from("Ubuntu-22.04")));
        assert_eq!(
            ubuntu.get("osrelease_info"),
            Some(&Value::Array(vec![Value::Int(22), Value::Int(4)]))
        );
        let rocky = grains_for(
            "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.3\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n",
        );
        assert_eq!(rocky.get("os"), Some(&Value::from("Rocky")));
        assert_eq!(rocky.get("os_family"), Some(&Value::from("RedHat")));
        assert_eq!(rocky.get("osfinger"), Some(&Value::from("Rocky Linux-9")));
        let rhel =
            grains_for("NAME=\"Red Hat Enterprise Linux\"\nVERSION_ID=\"9.4\"\nID=\"rhel\"\n");
        assert_eq!(rhel.get("os"), Some(&Value::from("RedHat")));
        assert_eq!(rhel.get("os_family"), Some(&Value::from("RedHat")));
        let fedora = grains_for("NAME=\"Fedora Linux\"\nVERSION_ID=40\nID=fedora\n");
        assert_eq!(fedora.get("os"), Some(&Value::from("Fedora")));
        assert_eq!(fedora.get("os_family"), Some(&Value::from("RedHat")));
        let alpine = grains_for("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.1\n");
        assert_eq!(alpine.get("os"), Some(&Value::from("Alpine")));
        assert_eq!(alpine.get("os_family"), Some(&Value::from("Alpine")));
    }

    #[test]
    fn env_file_quoting() {
        let pairs = parse_env_file("A=\"x \\\"y\\\"\"\nB='z'\nC=plain\n# comment\nbad key=1\n");
        assert_eq!(
            pairs,
            vec![
                ("A".to_owned(), "x \"y\"".to_owned()),
                ("B".to_owned(), "z".to_owned()),
                ("C".to_owned(), "plain".to_owned()),
            ]
        );
    }
}
