//! The minion's request channel to the master: authentication (`_auth`),
//! the session it yields, and v3 aes requests that re-authenticate once
//! when the master no longer knows the session.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brine_protocol::auth::{AuthOutcome, AuthRequest, Credentials, handle_signin_response};
use brine_protocol::crypto::{gen_nonce, offload};
use brine_protocol::envelope::{EnvelopeError, Tok, open_clear_reply, package_aes};
use brine_protocol::keys::MinionPki;
use brine_protocol::{AuthError, Crypticle, PrivateKey, PublicKey, Serialization, Value};
use brine_transport_api::{RequestClient, RequestClientExt, TransportError};
use tokio::sync::{Mutex, watch};
use tracing::{debug, error, info, warn};

use super::{MinionError, MinionState};

/// What an accepted `_auth` gave us. A new one (with a fresh [`Crypticle`],
/// so fresh serial tracking) is built at every authentication.
pub(crate) struct Session {
    /// The master's AES key: publishes.
    pub(crate) aes: Crypticle,
    /// Our session key: v3 requests and their replies.
    pub(crate) session: Crypticle,
    /// The publish port the master announced.
    pub(crate) publish_port: u16,
    /// `minion_master.pub`, to verify publishes and private replies.
    pub(crate) master_pub: PublicKey,
    /// Counts authentications, so concurrent callers re-authenticate once.
    pub(crate) generation: u64,
}

/// The master's public key, parsed once and shared by every [`Channel`]
/// given the same value: the minions of one process (`brine-swarm`) then
/// share the key's memo of the last verified publish signature, so a
/// publish to ten thousand of them is checked once per process, as each
/// real minion checks it once on its own core.
#[derive(Debug, Clone, Default)]
pub struct SharedMasterKey(Arc<std::sync::Mutex<Option<(String, PublicKey)>>>);

impl SharedMasterKey {
    /// A key slot of its own (what a stand-alone minion has).
    pub fn new() -> Self {
        Self::default()
    }

    /// The key `pem` holds: the shared one when it is the same PEM.
    fn get(&self, pem: &str) -> Result<PublicKey, brine_protocol::CryptoError> {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((known, key)) = &*slot
            && known == pem
        {
            return Ok(key.clone());
        }
        let key = PublicKey::from_pem(pem)?;
        *slot = Some((pem.to_owned(), key.clone()));
        Ok(key)
    }
}

/// The auth settings from the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthSettings {
    pub(crate) auth_timeout: Duration,
    pub(crate) auth_tries: u32,
    pub(crate) acceptance_wait_time: Duration,
    pub(crate) acceptance_wait_time_max: Duration,
    pub(crate) rejected_retry: bool,
    /// `serial`: announced at sign-in, used for every Crypticle.
    pub(crate) serial: Serialization,
}

/// Why an aes request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestFailure {
    #[error("the master could not be reached")]
    Transport(#[source] TransportError),
    #[error("the master's reply was not usable")]
    Envelope(#[source] EnvelopeError),
    #[error("not authenticated yet")]
    NotAuthenticated,
    #[error("re-authentication failed for good")]
    Fatal(#[source] MinionError),
}

enum SignIn {
    Accepted(Credentials, String),
    Pending,
    Full,
    Rejected,
    Unreachable(TransportError),
}

/// The request channel plus the current session; shared by every task.
pub(crate) struct Channel {
    id: String,
    key: PrivateKey,
    tok: Tok,
    pki: MinionPki,
    req: Box<dyn RequestClient>,
    settings: AuthSettings,
    current: RwLock<Option<Arc<Session>>>,
    auth_lock: Mutex<()>,
    state: watch::Sender<MinionState>,
    master_key: SharedMasterKey,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Channel {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        key: PrivateKey,
        tok: Tok,
        pki: MinionPki,
        req: Box<dyn RequestClient>,
        settings: AuthSettings,
        state: watch::Sender<MinionState>,
        master_key: SharedMasterKey,
    ) -> Channel {
        Channel {
            id,
            key,
            tok,
            pki,
            req,
            settings,
            current: RwLock::new(None),
            auth_lock: Mutex::new(()),
            state,
            master_key,
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn state(&self) -> &watch::Sender<MinionState> {
        &self.state
    }

    /// The session, once authenticated.
    pub(crate) fn current(&self) -> Option<Arc<Session>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn generation(&self) -> u64 {
        self.current().map_or(0, |s| s.generation)
    }

    /// Re-authenticates unless someone already did since `stale` was the
    /// current generation; returns the session to use.
    ///
    /// # Errors
    /// As [`Channel::authenticate`].
    pub(crate) async fn reauth(&self, stale: u64) -> Result<Arc<Session>, MinionError> {
        let _one_at_a_time = self.auth_lock.lock().await;
        if let Some(session) = self.current().filter(|s| s.generation != stale) {
            return Ok(session);
        }
        self.authenticate_locked().await
    }

    /// Authenticates (Salt's `AsyncAuth._authenticate`): signs in until
    /// accepted, waiting `acceptance_wait_time` (doubling up to
    /// `acceptance_wait_time_max`) while the key is pending, the master
    /// is full or unreachable.
    ///
    /// # Errors
    /// [`MinionError::Rejected`] (unless `rejected_retry`),
    /// [`MinionError::Auth`] when the master's answer fails verification
    /// (e.g. its key changed) or its `serial` differs from ours
    /// ([`AuthError::SerialMismatch`]), [`MinionError::Keys`] when
    /// `minion_master.pub` cannot be read or written.
    pub(crate) async fn authenticate(&self) -> Result<Arc<Session>, MinionError> {
        let _one_at_a_time = self.auth_lock.lock().await;
        self.authenticate_locked().await
    }

    async fn authenticate_locked(&self) -> Result<Arc<Session>, MinionError> {
        let before = self.state.borrow().clone();
        let mut wait = self
            .settings
            .acceptance_wait_time
            .max(Duration::from_millis(10));
        let max = self.settings.acceptance_wait_time_max.max(wait);
        loop {
            match self.sign_in().await? {
                SignIn::Accepted(creds, master_pem) => {
                    let session = self.install(&creds, &master_pem)?;
                    self.state.send_if_modified(|s| {
                        let was_pending = *s == MinionState::Pending;
                        if was_pending {
                            *s = if before == MinionState::Pending {
                                MinionState::Authenticating
                            } else {
                                before.clone()
                            };
                        }
                        was_pending
                    });
                    info!(
                        generation = session.generation,
                        "authenticated with the master"
                    );
                    return Ok(session);
                }
                SignIn::Pending => {
                    self.state.send_replace(MinionState::Pending);
                    warn!(
                        wait_secs = wait.as_secs_f64(),
                        "the master has cached this minion's key; waiting for the master to accept the key"
                    );
                }
                SignIn::Full => {
                    warn!(
                        wait_secs = wait.as_secs_f64(),
                        "the master has reached max_minions; retrying"
                    );
                }
                SignIn::Unreachable(err) => {
                    warn!(error = %err, wait_secs = wait.as_secs_f64(), "the master did not answer the authentication request; retrying");
                }
                SignIn::Rejected if self.settings.rejected_retry => {
                    error!(
                        wait_secs = wait.as_secs_f64(),
                        "the master rejected this minion's public key; retrying (rejected_retry)"
                    );
                }
                SignIn::Rejected => {
                    error!(
                        "the master rejected this minion's public key; delete the key on the master and restart this minion"
                    );
                    return Err(MinionError::Rejected);
                }
            }
            tokio::time::sleep(wait).await;
            if wait < max {
                wait = wait.saturating_mul(2).min(max);
                debug!(
                    wait_secs = wait.as_secs_f64(),
                    "authentication wait time grows"
                );
            }
        }
    }

    async fn sign_in(&self) -> Result<SignIn, MinionError> {
        let master_pem = self.pki.read_master_key().map_err(MinionError::Keys)?;
        let auth_err = MinionError::Auth;
        let nonce = gen_nonce().map_err(|e| auth_err(AuthError::from(e)))?;
        let request = AuthRequest::new(&self.id, &self.key, master_pem.as_deref(), &nonce)
            .map_err(auth_err)?
            .with_serialization(self.settings.serial);
        let frame = request.to_frame().map_err(auth_err)?;
        let reply = match self
            .req
            .request_with_tries(frame, self.settings.auth_timeout, self.settings.auth_tries)
            .await
        {
            Ok(reply) => reply,
            Err(err) => return Ok(SignIn::Unreachable(err)),
        };
        let reply = open_clear_reply(&reply).map_err(|_| {
            auth_err(AuthError::Malformed {
                what: "auth reply is not msgpack",
            })
        })?;
        // RSA private operations: off the runtime threads, one per core (a
        // swarm of thousands signing in must not starve its connections)
        let key = self.key.clone();
        let handled = offload(move || handle_signin_response(&reply, &request, &key))
            .await
            .map_err(|e| auth_err(AuthError::from(e)))?;
        let outcome = match handled {
            Ok(outcome) => outcome,
            Err(err @ AuthError::SerialMismatch { .. }) => {
                error!(
                    reason = %err,
                    "the master and this minion pack messages differently; set the same `serial` on both and restart"
                );
                return Err(auth_err(err));
            }
            Err(err) => return Err(auth_err(err)),
        };
        Ok(match outcome {
            AuthOutcome::Accepted(creds) => {
                let pem = match (&creds.new_master_pub, master_pem) {
                    (Some(new), _) => new.clone(),
                    (None, Some(known)) => known,
                    (None, None) => {
                        return Err(auth_err(AuthError::Malformed { what: "pub_key" }));
                    }
                };
                SignIn::Accepted(creds, pem)
            }
            AuthOutcome::Pending => SignIn::Pending,
            AuthOutcome::Full => SignIn::Full,
            AuthOutcome::Rejected => SignIn::Rejected,
        })
    }

    fn install(&self, creds: &Credentials, master_pem: &str) -> Result<Arc<Session>, MinionError> {
        let crypto = |e| MinionError::Auth(AuthError::from(e));
        let serial = self.settings.serial;
        if let Some(pem) = &creds.new_master_pub {
            self.pki.write_master_key(pem).map_err(MinionError::Keys)?;
            info!(path = %self.pki.master_key_path().display(), "first contact: stored the master's public key");
        }
        let session = Arc::new(Session {
            aes: Crypticle::new(&creds.aes)
                .map_err(crypto)?
                .with_serialization(serial),
            session: Crypticle::new(&creds.session)
                .map_err(crypto)?
                .with_serialization(serial),
            publish_port: creds.publish_port,
            master_pub: self.master_key.get(master_pem).map_err(crypto)?,
            generation: self.generation() + 1,
        });
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Sends an aes request and reads the reply with `open`; on an answer
    /// that says the session is stale (HMAC mismatch, `"bad load"`),
    /// re-authenticates once and sends it again (fresh nonce and `ts`).
    ///
    /// # Errors
    /// A [`RequestFailure`].
    pub(crate) async fn request_aes_with<T, F>(
        &self,
        load: &Value,
        timeout: Duration,
        open: F,
    ) -> Result<T, RequestFailure>
    where
        F: Fn(&[u8], &Session, &str) -> Result<T, EnvelopeError>,
    {
        let session = self.current().ok_or(RequestFailure::NotAuthenticated)?;
        match self.request_once(&session, load, timeout, &open).await {
            Err(RequestFailure::Envelope(err)) if err.is_reauth() => {
                debug!(error = %err, "the master no longer knows our session; re-authenticating");
                let session = self
                    .reauth(session.generation)
                    .await
                    .map_err(RequestFailure::Fatal)?;
                self.request_once(&session, load, timeout, &open).await
            }
            other => other,
        }
    }

    /// [`Channel::request_aes_with`] for an ordinary session-key reply.
    ///
    /// # Errors
    /// A [`RequestFailure`].
    pub(crate) async fn request_aes(
        &self,
        load: &Value,
        timeout: Duration,
    ) -> Result<Value, RequestFailure> {
        self.request_aes_with(load, timeout, |frame, session, nonce| {
            brine_protocol::envelope::open_aes_reply(frame, &session.session, nonce)
        })
        .await
    }

    async fn request_once<T, F>(
        &self,
        session: &Session,
        load: &Value,
        timeout: Duration,
        open: &F,
    ) -> Result<T, RequestFailure>
    where
        F: Fn(&[u8], &Session, &str) -> Result<T, EnvelopeError>,
    {
        let (frame, nonce) = package_aes(
            load.clone(),
            &self.id,
            &session.session,
            &self.tok,
            unix_now(),
        )
        .map_err(RequestFailure::Envelope)?;
        let reply = self
            .req
            .request(frame, timeout)
            .await
            .map_err(RequestFailure::Transport)?;
        open(&reply, session, &nonce).map_err(RequestFailure::Envelope)
    }

    /// The minion's private key (private pillar replies are sealed to it).
    pub(crate) fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// Closes the request client.
    pub(crate) async fn close(&self) {
        let _ = self.req.close().await;
    }
}
