//! `salt-key`'s operations over the master's `pki_dir`.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use brine_protocol::config::fnmatch;
use brine_protocol::keys::{
    KeyState, MasterPki, PRIVATE_KEY_MODE, PUBLIC_KEY_MODE, ensure_dir, validate_minion_id,
    write_atomic,
};
use brine_protocol::{KeyError, PrivateKey, PublicKey};
use tracing::{error, info};

use super::KeyStoreError;
use super::event::{KeyAct, KeyEvent};
use super::finger::{HashType, pem_finger};
use super::rotate::{RotationRequest, request_aes_rotation};

/// Minion ids by key state, each list sorted (Salt's `list_keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyList {
    /// `minions/`.
    pub accepted: Vec<String>,
    /// `minions_pre/`.
    pub pending: Vec<String>,
    /// `minions_rejected/`.
    pub rejected: Vec<String>,
    /// `minions_denied/`.
    pub denied: Vec<String>,
}

impl KeyList {
    /// The ids in `state`.
    pub fn get(&self, state: KeyState) -> &[String] {
        match state {
            KeyState::Accepted => &self.accepted,
            KeyState::Pending => &self.pending,
            KeyState::Rejected => &self.rejected,
            KeyState::Denied => &self.denied,
        }
    }

    fn get_mut(&mut self, state: KeyState) -> &mut Vec<String> {
        match state {
            KeyState::Accepted => &mut self.accepted,
            KeyState::Pending => &mut self.pending,
            KeyState::Rejected => &mut self.rejected,
            KeyState::Denied => &mut self.denied,
        }
    }

    /// Every `(state, id)`, states in Salt's order.
    pub fn iter(&self) -> impl Iterator<Item = (KeyState, &str)> {
        KeyState::ALL
            .into_iter()
            .flat_map(move |s| self.get(s).iter().map(move |id| (s, id.as_str())))
    }

    /// Whether no state holds a key.
    pub fn is_empty(&self) -> bool {
        KeyState::ALL.into_iter().all(|s| self.get(s).is_empty())
    }
}

/// A key with something about it (its fingerprint, its PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key's state.
    pub state: KeyState,
    /// The minion id.
    pub id: String,
    /// The fingerprint or the key text.
    pub value: String,
}

/// The result of an accept, reject or delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyChanges {
    /// One `salt/key` event per key changed, for the caller to fire.
    pub events: Vec<KeyEvent>,
    /// Keys that matched but were left alone (e.g. not a valid public key),
    /// with the reason.
    pub skipped: Vec<(String, String)>,
    /// Whether a session key rotation was requested (`.dfn` written).
    pub rotation_requested: bool,
}

impl KeyChanges {
    /// The ids changed, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.events.iter().map(|e| e.id.as_str())
    }
}

/// Key management over the master's `pki_dir`, as `salt-key` does it.
///
/// Moves between states are `rename`s (atomic; a key is never in a torn
/// state), followed by a sync of both directories. Patterns are Salt's:
/// one glob, or several separated by commas. Operations return the
/// `salt/key` events to fire; reject and delete also request a session
/// key rotation through `<cachedir>/.dfn` when
/// [`KeyStore::with_rotation`] is set (Salt's `rotate_aes_key`).
#[derive(Debug, Clone)]
pub struct KeyStore {
    pki: MasterPki,
    rotation: Option<RotationRequest>,
}

impl KeyStore {
    /// The store over `pki_dir`.
    pub fn new(pki_dir: impl Into<PathBuf>) -> Self {
        KeyStore {
            pki: MasterPki::new(pki_dir),
            rotation: None,
        }
    }

    /// Requests a session key rotation after every reject or delete that
    /// changed a key.
    pub fn with_rotation(mut self, rotation: RotationRequest) -> Self {
        self.rotation = Some(rotation);
        self
    }

    /// The layout.
    pub fn pki(&self) -> &MasterPki {
        &self.pki
    }

    /// Every key by state (missing directories are empty).
    ///
    /// # Errors
    /// [`KeyStoreError::Key`] if a directory cannot be read.
    pub fn list(&self) -> Result<KeyList, KeyStoreError> {
        let mut list = KeyList::default();
        for state in KeyState::ALL {
            *list.get_mut(state) = self.pki.list_minions(state)?;
        }
        Ok(list)
    }

    /// The state `id`'s key is in, checking accepted, pending, rejected,
    /// then denied (a denied key usually sits beside an accepted one).
    ///
    /// # Errors
    /// [`KeyStoreError::Key`] for an invalid id.
    pub fn state_of(&self, id: &str) -> Result<Option<KeyState>, KeyStoreError> {
        for state in KeyState::ALL {
            if self.pki.minion_key_path(state, id)?.is_file() {
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// The keys whose id matches `pattern` (Salt's `name_match`: a glob,
    /// or comma-separated globs).
    ///
    /// # Errors
    /// As [`KeyStore::list`].
    pub fn name_match(&self, pattern: &str) -> Result<KeyList, KeyStoreError> {
        let globs: Vec<&str> = pattern.split(',').collect();
        let mut all = self.list()?;
        for state in KeyState::ALL {
            all.get_mut(state)
                .retain(|id| globs.iter().any(|g| fnmatch(id, g)));
        }
        Ok(all)
    }

    /// Accepts the pending keys matching `pattern` (`salt-key -a`).
    ///
    /// # Errors
    /// [`KeyStoreError`] if listing fails or a move fails for a reason
    /// other than the key vanishing meanwhile.
    pub fn accept(&self, pattern: &str) -> Result<KeyChanges, KeyStoreError> {
        self.accept_from(pattern, &[KeyState::Pending])
    }

    /// Accepts the keys matching `pattern` in any of `from` (Salt's
    /// `include_rejected`/`include_denied`). A key that is not a valid
    /// RSA public key is skipped, as Salt does.
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn accept_from(
        &self,
        pattern: &str,
        from: &[KeyState],
    ) -> Result<KeyChanges, KeyStoreError> {
        let matches = self.name_match(pattern)?;
        self.accept_keys(&matches, from)
    }

    /// Accepts exactly the keys of `keys` that sit in one of `from` (what
    /// `salt-key` does after showing the keys and asking: keys that
    /// appeared meanwhile are left alone). A key that is not a valid RSA
    /// public key is skipped.
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn accept_keys(
        &self,
        keys: &KeyList,
        from: &[KeyState],
    ) -> Result<KeyChanges, KeyStoreError> {
        self.move_keys(keys, from, KeyState::Accepted, KeyAct::Accept)
    }

    /// Accepts every pending key (`salt-key -A`).
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn accept_all(&self) -> Result<KeyChanges, KeyStoreError> {
        self.accept("*")
    }

    /// Rejects the pending keys matching `pattern` (`salt-key -r`).
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn reject(&self, pattern: &str) -> Result<KeyChanges, KeyStoreError> {
        self.reject_from(pattern, &[KeyState::Pending])
    }

    /// Rejects the keys matching `pattern` in any of `from` (Salt's
    /// `include_accepted`/`include_denied`).
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn reject_from(
        &self,
        pattern: &str,
        from: &[KeyState],
    ) -> Result<KeyChanges, KeyStoreError> {
        let matches = self.name_match(pattern)?;
        self.reject_keys(&matches, from)
    }

    /// Rejects exactly the keys of `keys` that sit in one of `from` (see
    /// [`KeyStore::accept_keys`]).
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn reject_keys(
        &self,
        keys: &KeyList,
        from: &[KeyState],
    ) -> Result<KeyChanges, KeyStoreError> {
        let mut changes = self.move_keys(keys, from, KeyState::Rejected, KeyAct::Reject)?;
        self.rotate_if_changed(&mut changes)?;
        Ok(changes)
    }

    /// Rejects every pending key (`salt-key -R`).
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn reject_all(&self) -> Result<KeyChanges, KeyStoreError> {
        self.reject("*")
    }

    /// Deletes the keys matching `pattern`, in every state (`salt-key -d`).
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn delete(&self, pattern: &str) -> Result<KeyChanges, KeyStoreError> {
        let matches = self.name_match(pattern)?;
        self.delete_keys(&matches)
    }

    /// Deletes exactly the keys of `keys`, each from the state it is
    /// listed in (see [`KeyStore::accept_keys`]).
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn delete_keys(&self, keys: &KeyList) -> Result<KeyChanges, KeyStoreError> {
        let mut changes = KeyChanges::default();
        for (state, id) in keys.iter() {
            if self.pki.remove_minion_key(state, id)? {
                info!(id, state = state.dir_name(), "key deleted");
                changes.events.push(KeyEvent::new(KeyAct::Delete, id));
            }
        }
        sync_dirs(&self.pki, &KeyState::ALL);
        self.rotate_if_changed(&mut changes)?;
        Ok(changes)
    }

    /// Deletes every key (`salt-key -D`).
    ///
    /// # Errors
    /// As [`KeyStore::accept`].
    pub fn delete_all(&self) -> Result<KeyChanges, KeyStoreError> {
        self.delete("*")
    }

    /// The fingerprints of the keys matching `pattern`.
    ///
    /// # Errors
    /// As [`KeyStore::list`], or [`KeyStoreError::Io`] if a key cannot be read.
    pub fn finger(&self, pattern: &str, hash: HashType) -> Result<Vec<KeyEntry>, KeyStoreError> {
        self.read_matching(pattern, |bytes| pem_finger(bytes, hash))
    }

    /// The fingerprint of `id`'s key in whatever state it is, if any.
    ///
    /// # Errors
    /// [`KeyStoreError::Key`] for an invalid id, [`KeyStoreError::Io`] if
    /// the key cannot be read.
    pub fn fingerprint(&self, id: &str, hash: HashType) -> Result<Option<String>, KeyStoreError> {
        let Some(state) = self.state_of(id)? else {
            return Ok(None);
        };
        let path = self.pki.minion_key_path(state, id)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(pem_finger(&bytes, hash))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KeyStoreError::io("reading", path, e)),
        }
    }

    /// The fingerprint of the master's own `master.pub` (`salt-key -F`'s
    /// "Local Keys"), `None` if it does not exist.
    ///
    /// # Errors
    /// [`KeyStoreError::Io`] if it cannot be read.
    pub fn master_finger(&self, hash: HashType) -> Result<Option<String>, KeyStoreError> {
        let path = self.pki.public_key_path();
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(pem_finger(&bytes, hash))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KeyStoreError::io("reading", path, e)),
        }
    }

    /// The key text of the keys matching `pattern` (`salt-key -p`).
    ///
    /// # Errors
    /// As [`KeyStore::finger`].
    pub fn print(&self, pattern: &str) -> Result<Vec<KeyEntry>, KeyStoreError> {
        self.read_matching(pattern, |bytes| String::from_utf8_lossy(bytes).into_owned())
    }

    fn read_matching(
        &self,
        pattern: &str,
        render: impl Fn(&[u8]) -> String,
    ) -> Result<Vec<KeyEntry>, KeyStoreError> {
        let matches = self.name_match(pattern)?;
        let mut out = Vec::new();
        for (state, id) in matches.iter() {
            let path = self.pki.minion_key_path(state, id)?;
            match fs::read(&path) {
                Ok(bytes) => out.push(KeyEntry {
                    state,
                    id: id.to_owned(),
                    value: render(&bytes),
                }),
                // moved or deleted since listing
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(KeyStoreError::io("reading", path, e)),
            }
        }
        Ok(out)
    }

    fn move_keys(
        &self,
        matches: &KeyList,
        from: &[KeyState],
        to: KeyState,
        act: KeyAct,
    ) -> Result<KeyChanges, KeyStoreError> {
        ensure_dir(&self.pki.state_dir(to))?;
        let mut changes = KeyChanges::default();
        for &state in from.iter().filter(|&&s| s != to) {
            for id in matches.get(state) {
                let src = self.pki.minion_key_path(state, id)?;
                if act == KeyAct::Accept
                    && let Err(reason) = check_public_key(&src)
                {
                    error!(id, reason, "invalid RSA public key, not accepting it");
                    changes.skipped.push((id.clone(), reason));
                    continue;
                }
                let dst = self.pki.minion_key_path(to, id)?;
                match fs::rename(&src, &dst) {
                    Ok(()) => {
                        info!(id, from = state.dir_name(), to = to.dir_name(), "key moved");
                        changes.events.push(KeyEvent::new(act, id.as_str()));
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(KeyStoreError::io("moving key to", dst, e)),
                }
            }
        }
        let mut touched: Vec<KeyState> = from.to_vec();
        touched.push(to);
        sync_dirs(&self.pki, &touched);
        Ok(changes)
    }

    fn rotate_if_changed(&self, changes: &mut KeyChanges) -> Result<(), KeyStoreError> {
        if let Some(rotation) = &self.rotation
            && !changes.events.is_empty()
        {
            request_aes_rotation(&rotation.cachedir, &rotation.master_id)?;
            changes.rotation_requested = true;
        }
        Ok(())
    }
}

fn check_public_key(path: &Path) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    PublicKey::from_pem(&text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Best-effort fsync of the directories a rename touched, so the move
/// survives a power loss.
fn sync_dirs(pki: &MasterPki, states: &[KeyState]) {
    for &state in states {
        if let Ok(dir) = File::open(pki.state_dir(state)) {
            let _ = dir.sync_all();
        }
    }
}

/// Generates an RSA key pair as `<dir>/<name>.pem` (mode 0600) and
/// `<dir>/<name>.pub` and returns the public key's fingerprint
/// (`salt-key --gen-keys`). As Salt, an existing `<name>.pem` is kept
/// (never overwritten) and the fingerprint of the existing `.pub` is
/// returned.
///
/// # Errors
/// [`KeyStoreError::Key`] for an invalid name, a failed generation or
/// write; [`KeyStoreError::Io`] if the existing `.pub` cannot be read.
pub fn gen_keys(dir: &Path, name: &str, keysize: usize) -> Result<String, KeyStoreError> {
    validate_minion_id(name)?;
    ensure_dir(dir)?;
    let pem_path = dir.join(format!("{name}.pem"));
    let pub_path = dir.join(format!("{name}.pub"));
    if !pem_path.exists() {
        let private = PrivateKey::generate(keysize).map_err(KeyError::from)?;
        let pem = private.to_pem().map_err(KeyError::from)?;
        write_atomic(&pem_path, pem.as_bytes(), PRIVATE_KEY_MODE)?;
        let public = private.public_key().to_pem().map_err(KeyError::from)?;
        write_atomic(&pub_path, public.as_bytes(), PUBLIC_KEY_MODE)?;
        info!(path = %pem_path.display(), keysize, "generated key pair");
    }
    let bytes = fs::read(&pub_path).map_err(|e| KeyStoreError::io("reading", &pub_path, e))?;
    Ok(pem_finger(&bytes, HashType::Sha256))
}
