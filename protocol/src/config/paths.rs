//! Brine's default paths and Salt's `root_dir` rules.

use std::path::{Component, Path, PathBuf};

/// Default config directory (`-c`), Salt's `/etc/salt`.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/brine";

/// The Brine counterparts of Salt's path defaults.
pub(crate) mod defaults {
    pub(crate) const MASTER_PKI_DIR: &str = "/etc/brine/pki/master";
    pub(crate) const MASTER_CACHEDIR: &str = "/var/cache/brine/master";
    pub(crate) const MASTER_SOCK_DIR: &str = "/var/run/brine/master";
    pub(crate) const MASTER_LOG_FILE: &str = "/var/log/brine/master";
    pub(crate) const KEY_LOG_FILE: &str = "/var/log/brine/key";
    pub(crate) const MASTER_PIDFILE: &str = "/var/run/brine-master.pid";
    pub(crate) const MINION_PKI_DIR: &str = "/etc/brine/pki/minion";
    pub(crate) const MINION_CACHEDIR: &str = "/var/cache/brine/minion";
    pub(crate) const MINION_SOCK_DIR: &str = "/var/run/brine/minion";
    pub(crate) const MINION_LOG_FILE: &str = "/var/log/brine/minion";
    pub(crate) const MINION_PIDFILE: &str = "/var/run/brine-minion.pid";
}

/// Whether `value` looks like a URI (`udp://host:514`, `file:///dev/log`):
/// Salt leaves those alone when it prepends `root_dir` to log files.
pub(crate) fn is_uri(value: &Path) -> bool {
    let Some(s) = value.to_str() else {
        return false;
    };
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Lexically normalises a path: drops `.` components and repeated
/// separators, resolves `..` against earlier normal components.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `root_dir` made absolute against the current directory, as Salt's
/// `os.path.abspath`.
pub(crate) fn absolute_root(root_dir: &Path) -> PathBuf {
    if root_dir.is_absolute() {
        normalize(root_dir)
    } else {
        let cwd = std::env::current_dir().unwrap_or_default();
        normalize(&cwd.join(root_dir))
    }
}

/// Salt's `prepend_root_dir` for one path, with Brine's default root `/`:
/// a path already under `root_dir` is kept; any other path, absolute or
/// relative, is re-rooted under `root_dir`. With `root_dir: /` nothing
/// changes except that relative paths become absolute.
pub(crate) fn prepend_root_dir(root_dir: &Path, path: &Path) -> PathBuf {
    if path.starts_with(root_dir) && root_dir != Path::new("/") {
        return normalize(path);
    }
    let relative: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    normalize(&root_dir.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_dir_prefixes_like_salt() {
        let root = Path::new("/srv/brine");
        assert_eq!(
            prepend_root_dir(root, Path::new("/etc/brine/pki/master")),
            Path::new("/srv/brine/etc/brine/pki/master")
        );
        assert_eq!(
            prepend_root_dir(root, Path::new("cache/master")),
            Path::new("/srv/brine/cache/master")
        );
        // already under root_dir: kept
        assert_eq!(
            prepend_root_dir(root, Path::new("/srv/brine/pki")),
            Path::new("/srv/brine/pki")
        );
        // the default root changes nothing for absolute paths
        assert_eq!(
            prepend_root_dir(Path::new("/"), Path::new("/var/cache/brine/master")),
            Path::new("/var/cache/brine/master")
        );
        assert_eq!(
            prepend_root_dir(Path::new("/"), Path::new("./x/../y")),
            Path::new("/y")
        );
    }

    #[test]
    fn uris_are_recognised() {
        assert!(is_uri(Path::new("udp://localhost:514")));
        assert!(is_uri(Path::new("file:///dev/log")));
        assert!(!is_uri(Path::new("/var/log/brine/master")));
        assert!(!is_uri(Path::new("logs/master")));
        assert!(!is_uri(Path::new("1x:foo")));
    }
}
