//! The master (server) side of the request channel: opening requests and
//! sealing replies.

use std::borrow::Borrow;

use bytes::Bytes;

use super::{EnvelopeError, ReplayError, ReplayGuard, RequestError, VERSION, get_str};
use crate::crypto::{Crypticle, CryptoError, PublicKey, is_nonce};
use crate::envelope::client::Tok;
use crate::keys::validate_minion_id;
use crate::serial::{Value, to_channel_bytes};

/// A request that passed [`open_request`].
#[derive(Debug, Clone, PartialEq)]
pub enum OpenedRequest {
    /// `enc: "clear"`: `_auth`, or a local client's `publish`, … The load is
    /// as sent; the caller authorizes it by its own means (`_auth` needs
    /// none, `publish` carries the root key).
    Clear {
        /// The load (a map).
        load: Value,
        /// The envelope's `version` (0 if absent); `_auth` replies are
        /// signed from version 2 on.
        version: i64,
    },
    /// `enc: "aes"`, version 3: decrypted with the minion's session key,
    /// its `tok` verified against the accepted key, its id matching the
    /// envelope's and fresh according to the [`ReplayGuard`]. `tok` and
    /// `nonce` are removed from the load, as Salt removes them.
    Aes {
        /// The authenticated minion id.
        id: String,
        /// The request's nonce: pass it to [`seal_aes_reply`](super::seal_aes_reply).
        nonce: String,
        /// The decrypted load (a map; `ts` and `id` kept).
        load: Value,
    },
}

impl OpenedRequest {
    /// The load.
    pub fn load(&self) -> &Value {
        match self {
            OpenedRequest::Clear { load, .. } | OpenedRequest::Aes { load, .. } => load,
        }
    }

    /// The load, by value.
    pub fn into_load(self) -> Value {
        match self {
            OpenedRequest::Clear { load, .. } | OpenedRequest::Aes { load, .. } => load,
        }
    }

    /// The load's `cmd` (`_auth`, `_return`, `publish`, …), if it has one.
    pub fn cmd(&self) -> Option<&str> {
        get_str(self.load(), "cmd")
    }

    /// Whether this is a minion's `_auth` request (clear, `cmd: "_auth"`).
    pub fn is_auth(&self) -> bool {
        matches!(self, OpenedRequest::Clear { .. }) && self.cmd() == Some("_auth")
    }
}

/// Opens a request frame as `ReqServerChannel.handle_message` does (steps
/// 1–4 of the reference), with Brine's replay check added:
///
/// 1. the frame must be a msgpack map with `enc` and `load`;
/// 2. `enc: "aes"` (version 3 only): the envelope `id` must be a valid
///    minion id that `lookup` knows (its session key and accepted public
///    key); the load is decrypted with the session key; `nonce` is removed
///    and must be 32 hex characters; `load.id` must equal the envelope's;
///    `tok` is removed and must X9.31-verify to `salt` with the minion's
///    key; then `ts` and the nonce go through `replay` at `now` (Unix
///    seconds) — Salt checks `ts` only with `request_server_ttl` > 0 and
///    never nonces;
/// 3. the load must be a map, and its `id`, if any, text without NUL.
///
/// Replay checking comes last so that only authenticated requests take
/// room in the guard. The caller then dispatches on
/// [`OpenedRequest::cmd`]; `_auth` goes to [`crate::auth`].
///
/// # Errors
/// A [`RequestError`] saying which check failed; reply with
/// [`RequestError::reply`] (sealed by [`seal_clear_reply`]) so that the
/// peer is never left waiting.
pub fn open_request<S, P>(
    frame: &[u8],
    lookup: impl FnOnce(&str) -> Option<(S, P)>,
    now: i64,
    replay: &mut ReplayGuard,
) -> Result<OpenedRequest, RequestError>
where
    S: Borrow<Crypticle>,
    P: Borrow<PublicKey>,
{
    let mut envelope = Value::decode(frame).map_err(|_| RequestError::NotAnEnvelope)?;
    if !envelope.contains_key("enc") {
        return Err(RequestError::NotAnEnvelope);
    }
    let load = envelope.remove("load").ok_or(RequestError::NotAnEnvelope)?;
    let version = envelope.get("version").and_then(Value::as_i64).unwrap_or(0);
    match get_str(&envelope, "enc") {
        Some("clear") => {
            check_load(&load)?;
            Ok(OpenedRequest::Clear { load, version })
        }
        Some("aes") if version < VERSION => Err(RequestError::UnsupportedVersion(version)),
        Some("aes") => {
            let id = get_str(&envelope, "id").ok_or(RequestError::InvalidId)?;
            validate_minion_id(id).map_err(|_| RequestError::InvalidId)?;
            let (session, public) =
                lookup(id).ok_or_else(|| RequestError::UnknownMinion { id: id.to_owned() })?;
            let ciphertext =
                load.as_bytes()
                    .ok_or(RequestError::Decrypt(CryptoError::Malformed {
                        what: "aes load",
                    }))?;
            let mut load = session
                .borrow()
                .loads(ciphertext, None)
                .map_err(RequestError::Decrypt)?;
            check_load(&load)?;
            let nonce = load
                .remove("nonce")
                .and_then(|n| n.as_str().map(str::to_owned))
                .filter(|n| is_nonce(n))
                .ok_or(RequestError::BadNonce)?;
            if get_str(&load, "id") != Some(id) {
                return Err(RequestError::IdMismatch);
            }
            let tok = load.remove("tok").ok_or(RequestError::BadToken)?;
            let tok = tok.as_bytes().ok_or(RequestError::BadToken)?;
            public
                .borrow()
                .x931_verify(Tok::CLEAR, tok)
                .map_err(|_| RequestError::BadToken)?;
            let ts = load
                .get("ts")
                .and_then(Value::as_i64)
                .ok_or(ReplayError::MissingTimestamp)?;
            replay.check(&nonce, ts, now)?;
            Ok(OpenedRequest::Aes {
                id: id.to_owned(),
                nonce,
                load,
            })
        }
        _ => Err(RequestError::UnknownEnc),
    }
}

/// Step 3: a map whose `id`, if present, is text without NUL.
fn check_load(load: &Value) -> Result<(), RequestError> {
    if !matches!(load, Value::Map(_)) {
        return Err(RequestError::NotADict);
    }
    match load.get("id") {
        None => Ok(()),
        Some(id) => match id.as_str() {
            Some(text) if text.contains('\0') => Err(RequestError::NulInId),
            Some(_) => Ok(()),
            None => Err(RequestError::NonStringId),
        },
    }
}

/// The reply frame to a clear request (or to any refused request): the
/// value as is, packed as Salt packs channel messages.
///
/// # Errors
/// [`EnvelopeError::Pack`] if the value cannot be packed.
pub fn seal_clear_reply(value: &Value) -> Result<Bytes, EnvelopeError> {
    to_channel_bytes(value)
        .map(Bytes::from)
        .map_err(EnvelopeError::Pack)
}

/// The reply frame to a v3 aes request: a msgpack byte string holding
/// `Crypticle(session).dumps(value, nonce)`, i.e. the request's nonce right
/// after `pickle::`, so the minion can match reply to request.
///
/// # Errors
/// [`EnvelopeError::Crypto`] for a nonce that is not 32 hex characters or
/// an encryption failure, [`EnvelopeError::Pack`] if the value cannot be packed.
pub fn seal_aes_reply(
    value: &Value,
    session: &Crypticle,
    nonce: &str,
) -> Result<Bytes, EnvelopeError> {
    let ciphertext = session.dumps(value, Some(nonce)).map_err(|e| match e {
        CryptoError::Pack(source) => EnvelopeError::Pack(source),
        other => EnvelopeError::Crypto(other),
    })?;
    seal_clear_reply(&Value::Bytes(ciphertext))
}
