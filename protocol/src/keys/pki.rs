//! The master's and the minion's `pki_dir`.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::fs::{PRIVATE_KEY_MODE, PUBLIC_KEY_MODE, ensure_dir, write_atomic};
use super::{KeyError, validate_minion_id};
use crate::crypto::{PrivateKey, PublicKey, clean_key};

/// A loaded or generated key pair.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The private key (`*.pem`).
    pub private: PrivateKey,
    /// The public key (`*.pub`).
    pub public: PublicKey,
}

/// Where a minion's key sits on the master (Salt's key states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// `minions/`: accepted.
    Accepted,
    /// `minions_pre/`: waiting for acceptance.
    Pending,
    /// `minions_rejected/`: rejected.
    Rejected,
    /// `minions_denied/`: presented a key different from the stored one.
    Denied,
}

impl KeyState {
    /// Every state, in Salt's listing order.
    pub const ALL: [KeyState; 4] = [
        KeyState::Accepted,
        KeyState::Pending,
        KeyState::Rejected,
        KeyState::Denied,
    ];

    /// The directory name under `pki_dir`.
    pub fn dir_name(self) -> &'static str {
        match self {
            KeyState::Accepted => "minions",
            KeyState::Pending => "minions_pre",
            KeyState::Rejected => "minions_rejected",
            KeyState::Denied => "minions_denied",
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, KeyError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KeyError::io("reading", path, e)),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warn!(path = %path.display(), mode = format_args!("{mode:o}"), "private key is readable by group or others");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// Loads `<stem>.pem` from `dir`, or generates and writes a pair if it does
/// not exist. A missing or mismatched `<stem>.pub` is rewritten from the
/// private key.
fn load_or_generate(dir: &Path, stem: &str, bits: usize) -> Result<KeyPair, KeyError> {
    ensure_dir(dir)?;
    let pem_path = dir.join(format!("{stem}.pem"));
    let pub_path = dir.join(format!("{stem}.pub"));
    let pair = match read_optional(&pem_path)? {
        Some(pem) => {
            warn_if_readable_by_others(&pem_path);
            let private = PrivateKey::from_pem(&pem).map_err(|source| KeyError::BadKey {
                path: pem_path.clone(),
                source,
            })?;
            let public = private.public_key();
            KeyPair { private, public }
        }
        None => {
            let private = PrivateKey::generate(bits)?;
            write_atomic(&pem_path, private.to_pem()?.as_bytes(), PRIVATE_KEY_MODE)?;
            info!(path = %pem_path.display(), bits, "generated new key pair");
            let public = private.public_key();
            KeyPair { private, public }
        }
    };
    let want = pair.public.to_pem()?;
    let have = read_optional(&pub_path)?;
    if have.as_deref().map(clean_key) != Some(clean_key(&want)) {
        if have.is_some() {
            warn!(path = %pub_path.display(), "public key does not match the private key; rewriting it");
        }
        write_atomic(&pub_path, want.as_bytes(), PUBLIC_KEY_MODE)?;
    }
    Ok(pair)
}

/// The master's `pki_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterPki {
    dir: PathBuf,
}

impl MasterPki {
    /// The layout rooted at `dir` (nothing is touched yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        MasterPki { dir: dir.into() }
    }

    /// The `pki_dir` itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `master.pem`.
    pub fn private_key_path(&self) -> PathBuf {
        self.dir.join("master.pem")
    }

    /// `master.pub`.
    pub fn public_key_path(&self) -> PathBuf {
        self.dir.join("master.pub")
    }

    /// The directory of keys in `state`.
    pub fn state_dir(&self, state: KeyState) -> PathBuf {
        self.dir.join(state.dir_name())
    }

    /// `minions_autosign/`.
    pub fn autosign_dir(&self) -> PathBuf {
        self.dir.join("minions_autosign")
    }

    /// Creates `pki_dir` and its five subdirectories (mode `0700`) if missing.
    ///
    /// # Errors
    /// [`KeyError::Io`] if a directory cannot be created.
    pub fn ensure_layout(&self) -> Result<(), KeyError> {
        ensure_dir(&self.dir)?;
        for state in KeyState::ALL {
            ensure_dir(&self.state_dir(state))?;
        }
        ensure_dir(&self.autosign_dir())
    }

    /// Creates the layout, then loads `master.pem` or generates an
    /// RSA-2048 pair (rewriting `master.pub` if missing or mismatched).
    ///
    /// # Errors
    /// [`KeyError::BadKey`] if `master.pem` is unusable, [`KeyError::Io`]
    /// on file errors, [`KeyError::Crypto`] if generation fails.
    pub fn load_or_generate(&self) -> Result<KeyPair, KeyError> {
        self.load_or_generate_with_bits(PrivateKey::DEFAULT_BITS)
    }

    /// [`Self::load_or_generate`] with Salt's `keysize` for a new key.
    ///
    /// # Errors
    /// As [`Self::load_or_generate`].
    pub fn load_or_generate_with_bits(&self, bits: usize) -> Result<KeyPair, KeyError> {
        self.ensure_layout()?;
        load_or_generate(&self.dir, "master", bits)
    }

    /// The path of `id`'s key in `state`, after validating the id.
    ///
    /// # Errors
    /// [`KeyError::InvalidId`] for an id that cannot be a file name.
    pub fn minion_key_path(&self, state: KeyState, id: &str) -> Result<PathBuf, KeyError> {
        validate_minion_id(id)?;
        Ok(self.state_dir(state).join(id))
    }

    /// Reads `id`'s key in `state`, `None` if there is none.
    ///
    /// # Errors
    /// [`KeyError::InvalidId`], or [`KeyError::Io`] on read errors.
    pub fn read_minion_key(&self, state: KeyState, id: &str) -> Result<Option<String>, KeyError> {
        read_optional(&self.minion_key_path(state, id)?)
    }

    /// Stores `id`'s public key in `state`, as given (Salt stores the `pub`
    /// string exactly as the minion sent it).
    ///
    /// # Errors
    /// [`KeyError::InvalidId`], or [`KeyError::Io`] on write errors.
    pub fn write_minion_key(&self, state: KeyState, id: &str, pem: &str) -> Result<(), KeyError> {
        let path = self.minion_key_path(state, id)?;
        ensure_dir(&self.state_dir(state))?;
        write_atomic(&path, pem.as_bytes(), PUBLIC_KEY_MODE)
    }

    /// Deletes `id`'s key in `state`; `false` if there was none.
    ///
    /// # Errors
    /// [`KeyError::InvalidId`], or [`KeyError::Io`] on other errors.
    pub fn remove_minion_key(&self, state: KeyState, id: &str) -> Result<bool, KeyError> {
        let path = self.minion_key_path(state, id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(KeyError::io("removing", path, e)),
        }
    }

    /// The ids with a key in `state`, sorted. Dot files (including
    /// in-flight temporary files) and names that are not valid ids are
    /// skipped; a missing directory is an empty list.
    ///
    /// # Errors
    /// [`KeyError::Io`] if the directory cannot be read.
    pub fn list_minions(&self, state: KeyState) -> Result<Vec<String>, KeyError> {
        let dir = self.state_dir(state);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeyError::io("listing", dir, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| KeyError::io("listing", &dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if is_file && !name.starts_with('.') && validate_minion_id(&name).is_ok() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// The minion's `pki_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinionPki {
    dir: PathBuf,
}

impl MinionPki {
    /// The layout rooted at `dir` (nothing is touched yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        MinionPki { dir: dir.into() }
    }

    /// The `pki_dir` itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `minion.pem`.
    pub fn private_key_path(&self) -> PathBuf {
        self.dir.join("minion.pem")
    }

    /// `minion.pub`.
    pub fn public_key_path(&self) -> PathBuf {
        self.dir.join("minion.pub")
    }

    /// `minion_master.pub`: the master's key, written on first contact.
    pub fn master_key_path(&self) -> PathBuf {
        self.dir.join("minion_master.pub")
    }

    /// Creates `pki_dir` (mode `0700`), then loads `minion.pem` or generates
    /// an RSA-2048 pair.
    ///
    /// # Errors
    /// As [`MasterPki::load_or_generate`].
    pub fn load_or_generate(&self) -> Result<KeyPair, KeyError> {
        self.load_or_generate_with_bits(PrivateKey::DEFAULT_BITS)
    }

    /// [`Self::load_or_generate`] with Salt's `keysize` for a new key.
    ///
    /// # Errors
    /// As [`MasterPki::load_or_generate`].
    pub fn load_or_generate_with_bits(&self, bits: usize) -> Result<KeyPair, KeyError> {
        load_or_generate(&self.dir, "minion", bits)
    }

    /// The cached master key string, `None` before first contact.
    ///
    /// # Errors
    /// [`KeyError::Io`] on read errors.
    pub fn read_master_key(&self) -> Result<Option<String>, KeyError> {
        read_optional(&self.master_key_path())
    }

    /// Caches the master's `pub_key` string exactly as received.
    ///
    /// # Errors
    /// [`KeyError::Io`] on write errors.
    pub fn write_master_key(&self, pem: &str) -> Result<(), KeyError> {
        ensure_dir(&self.dir)?;
        write_atomic(&self.master_key_path(), pem.as_bytes(), PUBLIC_KEY_MODE)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).map_or(0, |m| m.permissions().mode() & 0o777)
    }

    #[test]
    fn master_layout_and_key_generation() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = MasterPki::new(tmp.path().join("pki").join("master"));
        let pair = pki.load_or_generate().unwrap();
        assert_eq!(mode_of(pki.dir()), 0o700);
        for state in KeyState::ALL {
            assert_eq!(mode_of(&pki.state_dir(state)), 0o700, "{state:?}");
        }
        assert!(pki.autosign_dir().is_dir());
        assert_eq!(mode_of(&pki.private_key_path()), 0o600);
        assert_eq!(mode_of(&pki.public_key_path()), 0o644);
        let pem = fs::read_to_string(pki.private_key_path()).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let public = fs::read_to_string(pki.public_key_path()).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(PublicKey::from_pem(&public).unwrap(), pair.public);

        // a second start loads the same key
        let again = pki.load_or_generate().unwrap();
        assert_eq!(again.public, pair.public);

        // a lost or foreign master.pub is rewritten from master.pem
        fs::remove_file(pki.public_key_path()).unwrap();
        pki.load_or_generate().unwrap();
        assert_eq!(fs::read_to_string(pki.public_key_path()).unwrap(), public);
        fs::write(pki.public_key_path(), "junk").unwrap();
        pki.load_or_generate().unwrap();
        assert_eq!(fs::read_to_string(pki.public_key_path()).unwrap(), public);
    }

    #[test]
    fn corrupt_private_key_is_reported_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = MinionPki::new(tmp.path());
        fs::write(pki.private_key_path(), "not a key").unwrap();
        assert!(matches!(
            pki.load_or_generate(),
            Err(KeyError::BadKey { .. })
        ));
        assert_eq!(
            fs::read_to_string(pki.private_key_path()).unwrap(),
            "not a key"
        );
    }

    #[test]
    fn minion_keys_by_state() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = MasterPki::new(tmp.path());
        pki.ensure_layout().unwrap();
        let key = "-----BEGIN PUBLIC KEY-----\nAAA\n-----END PUBLIC KEY-----";
        pki.write_minion_key(KeyState::Pending, "web2", key)
            .unwrap();
        pki.write_minion_key(KeyState::Pending, "web1", key)
            .unwrap();
        fs::write(pki.state_dir(KeyState::Pending).join(".hidden"), "x").unwrap();
        assert_eq!(
            pki.list_minions(KeyState::Pending).unwrap(),
            ["web1", "web2"]
        );
        assert_eq!(
            pki.read_minion_key(KeyState::Pending, "web1")
                .unwrap()
                .as_deref(),
            Some(key)
        );
        assert_eq!(
            pki.read_minion_key(KeyState::Accepted, "web1").unwrap(),
            None
        );
        assert!(pki.remove_minion_key(KeyState::Pending, "web1").unwrap());
        assert!(!pki.remove_minion_key(KeyState::Pending, "web1").unwrap());
        assert_eq!(
            pki.list_minions(KeyState::Denied).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn hostile_ids_never_become_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = MasterPki::new(tmp.path().join("pki"));
        pki.ensure_layout().unwrap();
        for id in ["../../escape", "..", "", "a/b", "x\0y"] {
            assert!(matches!(
                pki.write_minion_key(KeyState::Accepted, id, "k"),
                Err(KeyError::InvalidId { .. })
            ));
            assert!(pki.read_minion_key(KeyState::Accepted, id).is_err());
            assert!(pki.remove_minion_key(KeyState::Accepted, id).is_err());
        }
        assert!(!tmp.path().join("escape").exists());
    }

    #[test]
    fn minion_master_key_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = MinionPki::new(tmp.path().join("minion"));
        assert_eq!(pki.read_master_key().unwrap(), None);
        pki.write_master_key("-----BEGIN PUBLIC KEY-----\nAB\n-----END PUBLIC KEY-----")
            .unwrap();
        assert_eq!(
            pki.read_master_key().unwrap().as_deref(),
            Some("-----BEGIN PUBLIC KEY-----\nAB\n-----END PUBLIC KEY-----")
        );
        let pair = pki.load_or_generate().unwrap();
        assert_eq!(mode_of(&pki.private_key_path()), 0o600);
        assert_eq!(
            PublicKey::from_pem(&fs::read_to_string(pki.public_key_path()).unwrap()).unwrap(),
            pair.public
        );
    }
}
