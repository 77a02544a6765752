//! Automatic acceptance and rejection of new minion keys (Salt's
//! `AutoKey`): `auto_accept`, `autosign_file`, `autoreject_file` and the
//! `minions_autosign/` stub directory.
//!
//! A signing file holds one minion id, glob or regular expression per
//! line; surrounding whitespace is trimmed and lines starting with `#` are
//! comments. An id matches a line if the line matches it as a glob
//! (`fnmatch`) or, failing that, as a regular expression over the whole id
//! (Salt's `expr_match`). The file is ignored (with a warning) when others
//! may write it, or when its group may and `permissive_pki_access` is off;
//! with `permissive_pki_access` on, a master running as root also requires
//! the file's group to be one of `user`'s supplementary groups.
//!
//! Files are re-read only when their modification time changes. Checks do
//! blocking file I/O: call them from a blocking context in async code.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use brine_protocol::config::{MasterConfig, fnmatch};
use regex::Regex;
use tracing::warn;

/// One line of a signing file.
#[derive(Debug)]
struct Line {
    text: String,
    regex: Option<Regex>,
}

impl Line {
    fn new(text: String) -> Self {
        // Salt: re.match(rf"\A{expr}\Z", line); a bad expression is a glob only
        let regex = Regex::new(&format!(r"\A(?:{text})\z")).ok();
        Line { text, regex }
    }

    fn matches(&self, id: &str) -> bool {
        fnmatch(id, &self.text) || self.regex.as_ref().is_some_and(|r| r.is_match(id))
    }
}

#[derive(Debug)]
struct Cached {
    mtime: Option<SystemTime>,
    lines: Vec<Line>,
}

/// The auto-accept/auto-reject policy of a master.
#[derive(Debug)]
pub struct AutoKey {
    auto_accept: bool,
    autosign_file: Option<PathBuf>,
    autoreject_file: Option<PathBuf>,
    autosign_dir: Option<PathBuf>,
    autosign_timeout: Duration,
    permissive_pki_access: bool,
    user: String,
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

impl AutoKey {
    /// A policy that accepts nothing automatically.
    pub fn new() -> Self {
        AutoKey {
            auto_accept: false,
            autosign_file: None,
            autoreject_file: None,
            autosign_dir: None,
            autosign_timeout: Duration::from_secs(120 * 60),
            permissive_pki_access: false,
            user: "root".to_owned(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The policy of a master config (`auto_accept`, `autosign_file`,
    /// `autoreject_file`, `permissive_pki_access`, `user`,
    /// `autosign_timeout`, and `<pki_dir>/minions_autosign`).
    pub fn from_config(config: &MasterConfig) -> Self {
        AutoKey {
            auto_accept: config.auto_accept,
            autosign_file: config.autosign_file.clone(),
            autoreject_file: config.autoreject_file.clone(),
            autosign_dir: Some(config.pki_dir.join("minions_autosign")),
            autosign_timeout: config.autosign_timeout,
            permissive_pki_access: config.permissive_pki_access,
            user: config.user.clone(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Sets `auto_accept`.
    pub fn with_auto_accept(mut self, on: bool) -> Self {
        self.auto_accept = on;
        self
    }

    /// Sets `autosign_file`.
    pub fn with_autosign_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.autosign_file = Some(path.into());
        self
    }

    /// Sets `autoreject_file`.
    pub fn with_autoreject_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.autoreject_file = Some(path.into());
        self
    }

    /// Sets the `minions_autosign/` stub directory and its stubs' lifetime.
    pub fn with_autosign_dir(mut self, dir: impl Into<PathBuf>, timeout: Duration) -> Self {
        self.autosign_dir = Some(dir.into());
        self.autosign_timeout = timeout;
        self
    }

    /// Sets `permissive_pki_access` and the master's `user`.
    pub fn with_permissive_pki_access(mut self, on: bool, user: impl Into<String>) -> Self {
        self.permissive_pki_access = on;
        self.user = user.into();
        self
    }

    /// Whether a new key from `id` is accepted without an operator
    /// (Salt's `check_autosign`): `auto_accept`, then `autosign_file`,
    /// then a `minions_autosign/<id>` stub (consumed when used; expired
    /// stubs are removed).
    pub fn check_autosign(&self, id: &str) -> bool {
        if self.auto_accept {
            return true;
        }
        if let Some(file) = &self.autosign_file
            && self.check_signing_file(id, file)
        {
            return true;
        }
        self.check_autosign_dir(id)
    }

    /// Whether a new key from `id` is rejected without an operator
    /// (Salt's `check_autoreject`).
    pub fn check_autoreject(&self, id: &str) -> bool {
        self.autoreject_file
            .as_ref()
            .is_some_and(|file| self.check_signing_file(id, file))
    }

    fn check_signing_file(&self, id: &str, file: &Path) -> bool {
        let Ok(meta) = fs::metadata(file) else {
            return false;
        };
        if !self.permissions_ok(&meta) {
            warn!(path = %file.display(), "wrong permissions for signing file, ignoring its content");
            return false;
        }
        let mtime = meta.modified().ok();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = cache
            .get(file)
            .is_some_and(|c| c.mtime.is_some() && c.mtime == mtime);
        if !fresh {
            let lines = match fs::read_to_string(file) {
                Ok(text) => text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.starts_with('#'))
                    .map(|l| Line::new(l.to_owned()))
                    .collect(),
                Err(e) => {
                    warn!(path = %file.display(), error = %e, "cannot read signing file");
                    Vec::new()
                }
            };
            cache.insert(file.to_owned(), Cached { mtime, lines });
        }
        cache
            .get(file)
            .is_some_and(|c| c.lines.iter().any(|l| l.matches(id)))
    }

    fn check_autosign_dir(&self, id: &str) -> bool {
        let Some(dir) = &self.autosign_dir else {
            return false;
        };
        if brine_protocol::keys::validate_minion_id(id).is_err() {
            return false;
        }
        if !self.autosign_timeout.is_zero()
            && let Ok(entries) = fs::read_dir(dir)
        {
            let oldest = SystemTime::now()
                .checked_sub(self.autosign_timeout)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            for entry in entries.flatten() {
                let expired = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < oldest);
                if expired {
                    warn!(path = %entry.path().display(), "autosign keyid expired");
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let stub = dir.join(id);
        fs::remove_file(stub).is_ok()
    }

    #[cfg(unix)]
    fn permissions_ok(&self, meta: &fs::Metadata) -> bool {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode();
        if mode & 0o002 != 0 {
            return false;
        }
        if mode & 0o020 != 0 {
            if !self.permissive_pki_access {
                return false;
            }
            if running_as_root() && !supplementary_gids(&self.user).contains(&meta.gid()) {
                return false;
            }
        }
        true
    }

    #[cfg(not(unix))]
    fn permissions_ok(&self, _: &fs::Metadata) -> bool {
        true
    }
}

impl Default for AutoKey {
    fn default() -> Self {
        AutoKey::new()
    }
}

/// Whether this process runs as root (Salt checks `os.getuid() == 0`).
#[cfg(unix)]
fn running_as_root() -> bool {
    rustix::process::getuid().is_root()
}

/// The supplementary groups of `user` listed in `/etc/group` (Salt's
/// `get_gid_list(user, include_default=False)`).
#[cfg(unix)]
fn supplementary_gids(user: &str) -> Vec<u32> {
    let Ok(text) = fs::read_to_string("/etc/group") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let _name = fields.next()?;
            let _password = fields.next()?;
            let gid = fields.next()?.parse::<u32>().ok()?;
            let members = fields.next()?;
            members.split(',').any(|m| m.trim() == user).then_some(gid)
        })
        .collect()
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn signing_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn autosign_file_globs_regexes_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let file = signing_file(
            dir.path(),
            "autosign.conf",
            "# web servers\nweb*\n  db[0-9]  \ncache\\d+\n#mail*\n\n",
            0o600,
        );
        let auto = AutoKey::new().with_autosign_file(&file);
        assert!(auto.check_autosign("web01"));
        assert!(auto.check_autosign("db7"));
        assert!(auto.check_autosign("cache42"), "regex lines match too");
        assert!(
            !auto.check_autosign("cache"),
            "the regex must match the whole id"
        );
        assert!(!auto.check_autosign("mail1"), "comments are skipped");
        assert!(!auto.check_autosign("dbx"));
        assert!(!auto.check_autoreject("web01"));
    }

    #[test]
    fn file_changes_are_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let file = signing_file(dir.path(), "autosign.conf", "a1\n", 0o600);
        let auto = AutoKey::new().with_autosign_file(&file);
        assert!(auto.check_autosign("a1"));
        assert!(!auto.check_autosign("b1"));
        fs::write(&file, "b1\n").unwrap();
        // make sure the modification time moves even on coarse clocks
        let later = SystemTime::now() + Duration::from_secs(5);
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(auto.check_autosign("b1"));
        assert!(!auto.check_autosign("a1"));
    }

    #[test]
    fn writable_by_others_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = signing_file(dir.path(), "autosign.conf", "*\n", 0o666);
        let auto = AutoKey::new().with_autosign_file(&file);
        assert!(!auto.check_autosign("m1"));
        // group-writable: only with permissive_pki_access
        fs::set_permissions(&file, fs::Permissions::from_mode(0o660)).unwrap();
        assert!(!auto.check_autosign("m1"));
        let permissive = AutoKey::new()
            .with_autosign_file(&file)
            .with_permissive_pki_access(true, "root");
        if !running_as_root() {
            assert!(permissive.check_autosign("m1"));
        }
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(auto.check_autosign("m1"));
    }

    #[test]
    fn autoreject_and_auto_accept() {
        let dir = tempfile::tempdir().unwrap();
        let file = signing_file(dir.path(), "autoreject.conf", "bad-*\n", 0o600);
        let auto = AutoKey::new().with_autoreject_file(&file);
        assert!(auto.check_autoreject("bad-1"));
        assert!(!auto.check_autoreject("good-1"));
        assert!(!auto.check_autosign("good-1"));
        assert!(AutoKey::new().with_auto_accept(true).check_autosign("x"));
        assert!(!AutoKey::new().check_autosign("x"));
        // a missing file matches nothing
        let missing = AutoKey::new().with_autosign_file(dir.path().join("nope"));
        assert!(!missing.check_autosign("x"));
    }

    #[test]
    fn autosign_stubs_are_consumed_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let stubs = dir.path().join("minions_autosign");
        fs::create_dir(&stubs).unwrap();
        fs::write(stubs.join("m1"), "").unwrap();
        fs::write(stubs.join("old"), "").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3 * 3600);
        fs::File::options()
            .write(true)
            .open(stubs.join("old"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let auto = AutoKey::new().with_autosign_dir(&stubs, Duration::from_secs(120 * 60));
        assert!(
            !auto.check_autosign("old"),
            "expired stubs are removed first"
        );
        assert!(!stubs.join("old").exists());
        assert!(auto.check_autosign("m1"));
        assert!(!auto.check_autosign("m1"), "a stub is used once");
        assert!(!auto.check_autosign("../m1"));
    }
}
