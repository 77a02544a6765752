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
use brine_protocol::Value;
use brine_protocol::envelope::{
    BAD_LOAD, OpenedRequest, RequestError, open_request, seal_aes_reply, seal_clear_reply,
};
use brine_transport_api::{Peer, RequestHandler};
use bytes::Bytes;
use tracing::{debug, warn};

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

impl Handler {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Handler { shared }
    }

    async fn open(&self, frame: Bytes) -> Result<OpenedRequest, RequestError> {
        let shared = Arc::clone(&self.shared);
        let opened = tokio::task::spawn_blocking(move || {
            let now = unix_now();
            let mut replay = match shared.replay.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            open_request(
                &frame,
                |id| shared.session(id).map(|s| (s.crypticle, s.public)),
                now,
                &mut replay,
            )
        })
        .await;
        match opened {
            Ok(result) => result,
            Err(_) => Err(RequestError::NotAnEnvelope),
        }
    }

    async fn dispatch(&self, opened: OpenedRequest, peer: &Peer) -> Reply {
        match opened {
            OpenedRequest::Clear { load, version } => {
                let cmd = load.get("cmd").and_then(Value::as_str).unwrap_or("");
                match cmd {
                    "_auth" => auth::handle(&self.shared, load, version, peer).await,
                    "publish" => publish::handle(&self.shared, load, peer).await,
                    "get_returns" | "get_load" | "list_jobs" | "present" => {
                        local::handle(&self.shared, load, peer).await
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
            OpenedRequest::Aes { id, load, .. } => {
                let cmd = load.get("cmd").and_then(Value::as_str).unwrap_or("");
                match cmd {
                    "_return" => minion::handle_return(&self.shared, &id, load).await,
                    "_minion_event" => minion::handle_event(&self.shared, &id, load).await,
                    other if fileserver::handles(other) => Reply::Aes(fileserver::answer(
                        &self.shared.config.nodegroups,
                        &id,
                        other,
                        &load,
                    )),
                    other => {
                        warn!(%peer, minion = %id, cmd = other, "refused aes request: unknown cmd");
                        Reply::Aes(Value::Bool(false))
                    }
                }
            }
        }
    }
}

#[async_trait]
impl RequestHandler for Handler {
    async fn handle(&self, request: Bytes, peer: Peer) -> Bytes {
        let opened = match self.open(request).await {
            Ok(opened) => opened,
            Err(err) => {
                warn!(%peer, reason = %err, "refused request");
                return seal(&err.reply());
            }
        };
        debug!(%peer, cmd = opened.cmd().unwrap_or(""), "request");
        let aes = match &opened {
            OpenedRequest::Aes { id, nonce, .. } => Some((id.clone(), nonce.clone())),
            OpenedRequest::Clear { .. } => None,
        };
        // `_pillar` answers with a private (clear) reply that needs the nonce.
        if let (Some((id, nonce)), Some("_pillar")) = (&aes, opened.cmd()) {
            let load = opened.into_load();
            return match minion::handle_pillar(&self.shared, id, nonce, load).await {
                Reply::Clear(v) | Reply::Aes(v) => seal(&v),
            };
        }
        let reply = self.dispatch(opened, &peer).await;
        match (reply, aes) {
            (Reply::Clear(value), _) => seal(&value),
            (Reply::Aes(value), Some((id, nonce))) => {
                let Some(session) = self.shared.session(&id) else {
                    return seal(&Value::from(BAD_LOAD));
                };
                match seal_aes_reply(&value, &session.crypticle, &nonce) {
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
