//! What every master component shares: keys, the AES key and its serial,
//! per-minion sessions, the grains cache, the root key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use brine_protocol::config::MasterConfig;
use brine_protocol::envelope::{NonceLedger, ReplayGuard, SerialCounter};
use brine_protocol::keys::{KeyState, MasterPki, write_atomic};
use brine_protocol::{Crypticle, PrivateKey, PublicKey, Value};
use brine_transport_api::PublishServer;
use tracing::{debug, warn};

use crate::events::Events;
use crate::job_cache::JobCache;
use crate::keys::AutoKey;
use crate::sequencer::Sequencer;

/// One minion's session: its session key and its accepted public key.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) crypticle: Arc<Crypticle>,
    pub(crate) public: Arc<PublicKey>,
}

/// The master's AES key and how many times it was rotated (the
/// generation a [`NonceLedger`] keys its memory by).
#[derive(Debug)]
struct AesKey {
    crypticle: Arc<Crypticle>,
    generation: u64,
}

/// What the request channel remembers against replays: the v3 guard
/// (nonces within a time window) and the v2 ledger (nonces per AES key).
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub(crate) guard: ReplayGuard,
    pub(crate) ledger: NonceLedger,
}

/// The state shared by the request handler, the publisher and Maintenance.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: MasterConfig,
    pub(crate) pki: MasterPki,
    pub(crate) master_key: Arc<PrivateKey>,
    aes: RwLock<AesKey>,
    pub(crate) serials: SerialCounter,
    sessions: RwLock<HashMap<String, Session>>,
    grains: RwLock<HashMap<String, Value>>,
    pub(crate) replay: Mutex<Replay>,
    pub(crate) root_key: String,
    pub(crate) job_cache: Arc<dyn JobCache>,
    pub(crate) events: Events,
    pub(crate) publisher: Arc<dyn PublishServer>,
    pub(crate) sequencer: Sequencer,
    pub(crate) autokey: AutoKey,
    pub(crate) publish_port: u16,
}

/// Where session keys live: `<cachedir>/sessions/<id>`.
pub(crate) fn sessions_dir(cachedir: &Path) -> PathBuf {
    cachedir.join("sessions")
}

/// Where cached grains live: `<cachedir>/minions/<id>.grains` (msgpack).
pub(crate) fn grains_dir(cachedir: &Path) -> PathBuf {
    cachedir.join("minions")
}

pub(crate) struct SharedParts {
    pub(crate) config: MasterConfig,
    pub(crate) master_key: PrivateKey,
    pub(crate) aes: Crypticle,
    pub(crate) root_key: String,
    pub(crate) job_cache: Arc<dyn JobCache>,
    pub(crate) events: Events,
    pub(crate) publisher: Arc<dyn PublishServer>,
    pub(crate) publish_port: u16,
}

impl Shared {
    /// The state, with its publishing task holding it weakly (`me`, from
    /// `Arc::new_cyclic`).
    pub(crate) fn new(parts: SharedParts, me: Weak<Shared>) -> Shared {
        let grains = load_grains(&grains_dir(&parts.config.cachedir));
        Shared {
            pki: MasterPki::new(&parts.config.pki_dir),
            autokey: AutoKey::from_config(&parts.config),
            config: parts.config,
            master_key: Arc::new(parts.master_key),
            aes: RwLock::new(AesKey {
                crypticle: Arc::new(parts.aes),
                generation: 0,
            }),
            serials: SerialCounter::new(),
            sessions: RwLock::new(HashMap::new()),
            grains: RwLock::new(grains),
            replay: Mutex::new(Replay::default()),
            root_key: parts.root_key,
            job_cache: parts.job_cache,
            events: parts.events,
            sequencer: Sequencer::spawn(me, Arc::clone(&parts.publisher)),
            publisher: parts.publisher,
            publish_port: parts.publish_port,
        }
    }

    /// The current AES (publish) key.
    pub(crate) fn aes(&self) -> Arc<Crypticle> {
        self.aes_with_generation().0
    }

    /// The current AES key and its generation, read together.
    pub(crate) fn aes_with_generation(&self) -> (Arc<Crypticle>, u64) {
        let aes = match self.aes.read() {
            Ok(aes) => aes,
            Err(poisoned) => poisoned.into_inner(),
        };
        (Arc::clone(&aes.crypticle), aes.generation)
    }

    /// Rotates the AES key and resets the serial, as `SMaster.rotate_secrets`,
    /// if the key is still of `generation` (or always, for `None`); whether
    /// it rotated. Workers that find the v2 nonce ledger full at once
    /// rotate only once.
    pub(crate) fn rotate_aes_from(
        &self,
        generation: Option<u64>,
    ) -> Result<bool, brine_protocol::CryptoError> {
        let fresh = Arc::new(Crypticle::generate()?.with_serialization(self.config.serial));
        let mut aes = match self.aes.write() {
            Ok(aes) => aes,
            Err(poisoned) => poisoned.into_inner(),
        };
        if generation.is_some_and(|g| g != aes.generation) {
            return Ok(false);
        }
        *aes = AesKey {
            crypticle: fresh,
            generation: aes.generation.wrapping_add(1),
        };
        // Under the key's lock, so no publish wraps with the new key and an
        // old serial.
        self.serials.reset();
        Ok(true)
    }

    /// The accepted public key of `id`: from its session in memory, else
    /// from `pki_dir/minions/<id>`. Blocking file I/O on the second path.
    pub(crate) fn accepted_key(&self, id: &str) -> Option<Arc<PublicKey>> {
        if let Some(found) = self.read_sessions().get(id) {
            return Some(Arc::clone(&found.public));
        }
        let pem = self.pki.read_minion_key(KeyState::Accepted, id).ok()??;
        PublicKey::from_pem(&pem).ok().map(Arc::new)
    }

    /// The session of `id`: from memory, else from `<cachedir>/sessions/<id>`
    /// if the minion's key is still accepted (a restarted master keeps
    /// serving minions without a new `_auth`). Blocking file I/O.
    pub(crate) fn session(&self, id: &str) -> Option<Session> {
        if let Some(found) = self.read_sessions().get(id) {
            return Some(found.clone());
        }
        let pem = self.pki.read_minion_key(KeyState::Accepted, id).ok()??;
        let public = PublicKey::from_pem(&pem).ok()?;
        let path = sessions_dir(&self.config.cachedir).join(id);
        if !is_fresh(&path, self.config.publish_session) {
            return None;
        }
        let key = std::fs::read_to_string(&path).ok()?;
        let crypticle = Crypticle::new(key.trim())
            .ok()?
            .with_serialization(self.config.serial);
        let session = Session {
            crypticle: Arc::new(crypticle),
            public: Arc::new(public),
        };
        self.write_sessions().insert(id.to_owned(), session.clone());
        Some(session)
    }

    /// The session key to hand `id` on `_auth`: the one in use if still
    /// fresh, else a new one (kept in memory and on disk, 0600).
    pub(crate) fn session_for_auth(
        &self,
        id: &str,
        public: PublicKey,
    ) -> Result<Arc<Crypticle>, brine_protocol::CryptoError> {
        let path = sessions_dir(&self.config.cachedir).join(id);
        // One check-and-create at a time: a stock minion signs in from two
        // channels at once, and both must get the same session key.
        let mut sessions = self.write_sessions();
        let existing = sessions
            .get(id)
            .map(|s| Arc::clone(&s.crypticle))
            .filter(|_| is_fresh(&path, self.config.publish_session))
            .or_else(|| {
                is_fresh(&path, self.config.publish_session)
                    .then(|| std::fs::read_to_string(&path).ok())
                    .flatten()
                    .and_then(|k| Crypticle::new(k.trim()).ok())
                    .map(|c| c.with_serialization(self.config.serial))
                    .map(Arc::new)
            });
        let crypticle = match existing {
            Some(c) => c,
            None => {
                let fresh = Arc::new(Crypticle::generate()?.with_serialization(self.config.serial));
                if let Err(err) = write_atomic(&path, fresh.key_string().as_bytes(), 0o600) {
                    warn!(minion = id, error = %err, "could not store the session key; kept in memory only");
                }
                fresh
            }
        };
        sessions.insert(
            id.to_owned(),
            Session {
                crypticle: Arc::clone(&crypticle),
                public: Arc::new(public),
            },
        );
        Ok(crypticle)
    }

    /// The ids holding a session in memory.
    pub(crate) fn session_ids(&self) -> Vec<String> {
        self.read_sessions().keys().cloned().collect()
    }

    /// Forgets the session of a minion whose key left `minions/`.
    pub(crate) fn drop_session(&self, id: &str) {
        self.write_sessions().remove(id);
        let path = sessions_dir(&self.config.cachedir).join(id);
        match std::fs::remove_file(&path) {
            Ok(()) => debug!(minion = id, "session dropped"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => warn!(minion = id, error = %err, "could not remove the session key file"),
        }
    }

    /// Caches a minion's grains (Salt's `minion_data_cache`). Blocking I/O.
    pub(crate) fn cache_grains(&self, id: &str, grains: Value) {
        if !matches!(grains, Value::Map(_)) || !self.config.minion_data_cache {
            return;
        }
        if let Ok(bytes) = grains.to_channel_bytes() {
            let dir = grains_dir(&self.config.cachedir);
            let path = dir.join(format!("{id}.grains"));
            if let Err(err) = write_atomic(&path, &bytes, 0o600) {
                warn!(minion = id, error = %err, "could not store grains; kept in memory only");
            }
        }
        match self.grains.write() {
            Ok(mut map) => map.insert(id.to_owned(), grains),
            Err(poisoned) => poisoned.into_inner().insert(id.to_owned(), grains),
        };
    }

    /// A snapshot of the grains cache (for targeting).
    pub(crate) fn grains(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Value>> {
        match self.grains.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn read_sessions(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Session>> {
        match self.sessions.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn write_sessions(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Session>> {
        match self.sessions.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Whether `path` exists and was written less than `max_age` ago.
fn is_fresh(path: &Path, max_age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age < max_age)
}

fn load_grains(dir: &Path) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".grains")) else {
            continue;
        };
        if let Ok(bytes) = std::fs::read(entry.path())
            && let Ok(grains) = Value::decode(&bytes)
        {
            out.insert(id.to_owned(), grains);
        }
    }
    out
}
