//! The request handler: every request the ReqServer receives, from
//! minions (`_auth`, `_return`, `_minion_event`, `_pillar`) and from local
//! clients (`publish`, `get_returns`, `get_load`, `list_jobs`, `present`),
//! gets exactly one reply. The file-server, mine and peer requests a stock
//! Salt minion may send get the empty answers of `fileserver`.
//!
//! Refusals are logged with the reason, never with payloads or keys. RSA
//! work (opening aes requests, `_auth`, publishing) runs on the blocking
//! pool so the workers stay responsive.

mod auth;
mod fileserver;
mod local;
mod minion;
mod publish;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use brine_protocol::envelope::{
    BAD_LOAD, LEGACY_VERSION, Legacy, OpenedRequest, ReplayError, RequestError, VERSION,
    open_request_with_legacy, seal_aes_reply, seal_clear_reply,
};
use brine_protocol::{Crypticle, Value};
use brine_transport_api::{Peer, RequestHandler};
use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::state::Shared;

pub(crate) use publish::compute_expected as expected_minions;

/// Salt's reply when a handler fails unexpectedly.
const HANDLER_FAILED: &str = "Some exception handling minion payload";

/// The master's [`RequestHandler`].
#[derive(Debug, Clone)]
pub(crate) struct Handler {
    shared: Arc<Shared>,
}

/// A reply before sealing.
pub(crate) enum Reply {
    /// Sent as is (clear requests and refusals).
    Clear(Value),
    /// Sealed with the minion's session key and the request's nonce.
    Aes(Value),
}

/// Frames up to this size are opened on the runtime thread.
const OPEN_INLINE_MAX: usize = 64 * 1024;

/// Opens `frame`; also says which AES generation to rotate away from when
/// the v2 nonce ledger filled up.
fn open_now(shared: &Shared, frame: &Bytes) -> (Result<Opened, RequestError>, Option<u64>) {
    let now = unix_now();
    let accepts_v2 = i64::from(shared.config.minimum_auth_version) <= LEGACY_VERSION;
    let mut replay = match shared.replay.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let replay = &mut *replay;
    // Read under the replay lock: requests are checked against the
    // ledger in the order they read the key, so a rotation between
    // two of them cannot mix their generations.
    let (aes, generation) = shared.aes_with_generation();
    let legacy = accepts_v2.then(|| Legacy {
        aes: &aes,
        generation,
        accepted: |id: &str| shared.accepted_key(id),
        nonces: &mut replay.ledger,
    });
    let result = open_request_with_legacy(
        frame,
        |id| shared.session(id).map(|s| (s.crypticle, s.public)),
        legacy,
        now,
        &mut replay.guard,
    );
    // Full under the current key (once rotated, the full ledger
    // belongs to an old generation until a v2 request clears it).
    let rotate = (replay.ledger.is_full() && replay.ledger.generation() == Some(generation))
        .then_some(generation);
    (result.map(|request| Opened { request, aes }), rotate)
}

impl Handler {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Handler { shared }
    }

    /// Opens a request; for a version-2 aes request also returns the AES
    /// key that opened it (its reply is sealed with that key).
    ///
    /// A small frame (every return of `test.ping`) opens in a few
    /// microseconds right here; handing ten thousand of them to the
    /// blocking pool cost a thread wake-up each. Large frames (a 50 MB
    /// return takes tens of ms to decrypt) go to the blocking pool.
    async fn open(&self, frame: Bytes) -> Result<Opened, RequestError> {
        let shared = Arc::clone(&self.shared);
        let opened = if frame.len() <= OPEN_INLINE_MAX {
            Ok(open_now(&shared, &frame))
        } else {
            tokio::task::spawn_blocking(move || open_now(&shared, &frame)).await
        };
        match opened {
            Ok((result, rotate)) => {
                if let Some(generation) = rotate {
                    self.rotate_for_ledger(generation).await;
                }
                result
            }
            Err(_) => Err(RequestError::NotAnEnvelope),
        }
    }

    /// The v2 nonce ledger is full: rotate the AES key (once, whichever
    /// worker sees it first), so old captures stop decrypting and the
    /// ledger starts over. The minions sign in again for the new key.
    async fn rotate_for_ledger(&self, generation: u64) {
        let shared = Arc::clone(&self.shared);
        let rotated = tokio::task::spawn_blocking(move || {
            crate::maintenance::rotate_aes_from(&shared, generation)
        })
        .await;
        if matches!(rotated, Ok(true)) {
            warn!("rotated the AES key: the version-2 nonce ledger was full");
        }
    }

    /// The rarer, larger requests (sign-in, publish, pillar, local
    /// queries) run boxed, and `handle` boxes this future apart from its
    /// own, so that each allocation a return makes stays under 1 KiB,
    /// which glibc serves from its per-thread cache. At 1.9 KB, the
    /// handler's future took glibc's slow path (it consolidates the free
    /// lists) and cost ~5% of the master's CPU at 10,000 returns a second.
    async fn dispatch(&self, opened: OpenedRequest, peer: &Peer) -> Reply {
        match opened {
            OpenedRequest::Clear { load, version } => {
                let cmd = load.get("cmd").and_then(Value::as_str).unwrap_or("");
                match cmd {
                    "_auth" => {
                        if version < VERSION {
                            // Salt warns "Minion using legacy request server protocol".
                            let minion = load.get("id").and_then(Value::as_str).unwrap_or("");
                            info!(%peer, minion, version, "minion speaks an older request protocol (Salt 3006.0–3006.11)");
                        }
                        Box::pin(auth::handle(&self.shared, load, version, peer)).await
                    }
                    "publish" => Box::pin(publish::handle(&self.shared, load, peer)).await,
                    "get_returns" | "get_load" | "list_jobs" | "present" => {
                        Box::pin(local::handle(&self.shared, load, peer)).await
                    }
                    "ping" => Reply::Clear(Value::Bool(true)),
                    other => {
                        warn!(%peer, cmd = other, "refused clear request: unknown cmd");
                        Reply::Clear(
                            [("error", Value::from(format!("unknown clear cmd {other:?}")))]
                                .into_iter()
                                .collect(),
                        )
                    }
                }
            }
            OpenedRequest::Aes { id, load, .. } => self.dispatch_aes(&id, load, peer).await,
            OpenedRequest::AesV2 {
                id,
                authenticated,
                load,
                ..
            } => self.dispatch_v2(id, authenticated, load, peer).await,
        }
    }

    /// An aes request from the authenticated minion `id`.
    async fn dispatch_aes(&self, id: &str, load: Value, peer: &Peer) -> Reply {
        let cmd = load.get("cmd").and_then(Value::as_str).unwrap_or("");
        match cmd {
            "_return" => minion::handle_return(&self.shared, id, load).await,
            "_minion_event" => minion::handle_event(&self.shared, id, load).await,
            other if fileserver::handles(other) => Reply::Aes(fileserver::answer(
                &self.shared.config.nodegroups,
                id,
                other,
                &load,
            )),
            other => {
                warn!(%peer, minion = %id, cmd = other, "refused aes request: unknown cmd");
                Reply::Aes(Value::Bool(false))
            }
        }
    }

    /// A version-2 aes request (Salt 3006.0–3006.11). Its `id` is an
    /// accepted minion's; `authenticated` if a `tok` proved it. Events must
    /// be authenticated (3006 signs every one); returns and file-server
    /// requests carry no `tok` in 3006, so their id is taken as claimed,
    /// as a stock master does.
    async fn dispatch_v2(
        &self,
        id: Option<String>,
        authenticated: bool,
        load: Value,
        peer: &Peer,
    ) -> Reply {
        let cmd = load.get("cmd").and_then(Value::as_str).unwrap_or("");
        match (cmd, id) {
            (other, id) if fileserver::handles(other) => Reply::Aes(fileserver::answer(
                &self.shared.config.nodegroups,
                id.as_deref().unwrap_or(""),
                other,
                &load,
            )),
            ("_minion_event", Some(id)) if !authenticated => {
                warn!(%peer, minion = %id, "refused v2 _minion_event: no tok");
                Reply::Aes(Value::Bool(false))
            }
            ("_return" | "_minion_event", Some(id)) => self.dispatch_aes(&id, load, peer).await,
            (other, id) => {
                let minion = id.as_deref().unwrap_or("");
                warn!(%peer, minion, cmd = other, "refused v2 aes request: unknown cmd or no id");
                Reply::Aes(Value::Bool(false))
            }
        }
    }
}

/// A request that passed `open`, with the AES key current when it did.
struct Opened {
    request: OpenedRequest,
    aes: Arc<Crypticle>,
}

#[async_trait]
impl RequestHandler for Handler {
    async fn handle(&self, request: Bytes, peer: Peer) -> Bytes {
        let Opened {
            request: opened,
            aes: opened_with,
        } = match self.open(request).await {
            Ok(opened) => opened,
            Err(err) => {
                if let RequestError::Replay(ReplayError::LedgerFull { .. }) = err {
                    debug!(%peer, reason = %err, "refused request");
                } else {
                    warn!(%peer, reason = %err, "refused request");
                }
                return seal(&err.reply());
            }
        };
        // Salt's `minimum_auth_version` covers clear requests (`_auth`) too.
        if let OpenedRequest::Clear { version, .. } = &opened
            && *version < i64::from(self.shared.config.minimum_auth_version)
        {
            warn!(
                %peer,
                version,
                minimum = self.shared.config.minimum_auth_version,
                "refused request: protocol version below minimum_auth_version"
            );
            return seal(&Value::from(BAD_LOAD));
        }
        debug!(%peer, cmd = opened.cmd().unwrap_or(""), "request");
        // How an aes reply is sealed: (minion id, nonce, key); v3 replies
        // use the minion's session key, v2 replies the AES key that opened
        // the request.
        let aes = match &opened {
            OpenedRequest::Aes { id, nonce, .. } => Some((id.clone(), nonce.clone(), None)),
            OpenedRequest::AesV2 { id, nonce, .. } => Some((
                id.clone().unwrap_or_default(),
                nonce.clone(),
                Some(opened_with),
            )),
            OpenedRequest::Clear { .. } => None,
        };
        // `_pillar` answers with a private (clear) reply that needs the nonce.
        if let (Some((id, nonce, key)), Some("_pillar")) = (&aes, opened.cmd()) {
            let v2 = key.is_some();
            let load = opened.into_load();
            let reply = if id.is_empty() {
                warn!(%peer, "refused v2 _pillar: no id");
                Reply::Clear(Value::from(BAD_LOAD))
            } else {
                Box::pin(minion::handle_pillar(&self.shared, id, nonce, load, v2)).await
            };
            return match reply {
                Reply::Clear(v) | Reply::Aes(v) => seal(&v),
            };
        }
        // Boxed: see `dispatch`.
        let reply = Box::pin(self.dispatch(opened, &peer)).await;
        match (reply, aes) {
            (Reply::Clear(value), _) => seal(&value),
            (Reply::Aes(value), Some((id, nonce, key))) => {
                let key = match key {
                    Some(aes) => aes,
                    None => match self.shared.session(&id) {
                        Some(session) => session.crypticle,
                        None => return seal(&Value::from(BAD_LOAD)),
                    },
                };
                match seal_aes_reply(&value, &key, &nonce) {
                    Ok(bytes) => bytes,
                    Err(err) => {
                        warn!(%peer, minion = %id, error = %err, "could not seal the reply");
                        seal(&Value::from(HANDLER_FAILED))
                    }
                }
            }
            (Reply::Aes(value), None) => seal(&value),
        }
    }
}

/// Packs a clear reply; falls back to Salt's failure string.
fn seal(value: &Value) -> Bytes {
    seal_clear_reply(value).unwrap_or_else(|err| {
        debug!(error = %err, "could not pack a reply");
        Bytes::from_static(b"\xd9\x26Some exception handling minion payload")
    })
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether a local client's `key` is the root key (constant time).
pub(crate) fn is_root_key(shared: &Shared, load: &Value) -> bool {
    let Some(given) = load.get("key").and_then(Value::as_str) else {
        return false;
    };
    let expected = shared.root_key.as_bytes();
    let given = given.as_bytes();
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Salt's reply to a local client that failed authentication.
pub(crate) fn authentication_error() -> Value {
    [(
        "error",
        [
            ("name", Value::from("AuthenticationError")),
            ("message", Value::from("Authentication error occurred.")),
        ]
        .into_iter()
        .collect::<Value>(),
    )]
    .into_iter()
    .collect()
}

/// `{"enc": "clear", "load": load}`, the shape of ClearFuncs replies.
pub(crate) fn clear_load(load: Value) -> Value {
    [("enc", Value::from("clear")), ("load", load)]
        .into_iter()
        .collect()
}
