//! The master (server) side of the request channel: opening requests and
//! sealing replies.

use std::borrow::Borrow;

use bytes::Bytes;

use super::legacy::{LEGACY_VERSION, Legacy, open_v2};
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
    /// `enc: "aes"`, version 2 (Salt 3006.0–3006.11, see
    /// [`open_request_with_legacy`]): decrypted with the master's AES key,
    /// its nonce new under that key. `tok` and `nonce` are removed.
    AesV2 {
        /// The load's `id`, if it has one: a minion id with an accepted key.
        /// File-server requests carry none.
        id: Option<String>,
        /// Whether the load carried a `tok` that verified with that id's
        /// key. Otherwise the id is only claimed by a holder of the
        /// master's AES key, that is by some accepted minion.
        authenticated: bool,
        /// The request's nonce: pass it to [`seal_aes_reply`] with the
        /// AES key that opened the request.
        nonce: String,
        /// The decrypted load (a map).
        load: Value,
    },
}

impl OpenedRequest {
    /// The load.
    pub fn load(&self) -> &Value {
        match self {
            OpenedRequest::Clear { load, .. }
            | OpenedRequest::Aes { load, .. }
            | OpenedRequest::AesV2 { load, .. } => load,
        }
    }

    /// The load, by value.
    pub fn into_load(self) -> Value {
        match self {
            OpenedRequest::Clear { load, .. }
            | OpenedRequest::Aes { load, .. }
            | OpenedRequest::AesV2 { load, .. } => load,
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
/// 1–4 of the reference), with Brine's replay check added; aes requests
/// of version 2 are refused ([`RequestError::UnsupportedVersion`]), see
/// [`open_request_with_legacy`] to accept them:
///
/// 1. the frame must be a msgpack map with `enc` and `load`;
/// 2. `enc: "aes"` (version 3 and up): the envelope `id` must be a valid
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
    open_request_with_legacy(
        frame,
        lookup,
        None::<Legacy<'_, fn(&str) -> Option<P>>>,
        now,
        replay,
    )
}

/// [`open_request`], and with `legacy` also aes requests of version 2,
/// the older request protocol of Salt 3006.0–3006.11 minions
/// ([`OpenedRequest::AesV2`]; the checks are listed in
/// [`crate::envelope::legacy`]). `None` refuses them, as Salt's
/// `minimum_auth_version: 3` does. Clear requests and version 3 are
/// opened exactly as by [`open_request`]; aes requests below version 2
/// (no nonce, so no replay protection) are always refused.
///
/// # Errors
/// As [`open_request`]; a version-2 request fails with the same variants
/// (its replay check is [`ReplayError::Replayed`] or
/// [`ReplayError::LedgerFull`] from the [`NonceLedger`](super::NonceLedger)).
pub fn open_request_with_legacy<S, P, Q, F>(
    frame: &[u8],
    lookup: impl FnOnce(&str) -> Option<(S, P)>,
    legacy: Option<Legacy<'_, F>>,
    now: i64,
    replay: &mut ReplayGuard,
) -> Result<OpenedRequest, RequestError>
where
    S: Borrow<Crypticle>,
    P: Borrow<PublicKey>,
    Q: Borrow<PublicKey>,
    F: FnOnce(&str) -> Option<Q>,
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
        Some("aes") if version == LEGACY_VERSION => match legacy {
            Some(legacy) => open_v2(&load, legacy),
            None => Err(RequestError::UnsupportedVersion(version)),
        },
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
pub(super) fn check_load(load: &Value) -> Result<(), RequestError> {
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

/// The reply frame to an aes request: a msgpack byte string holding
/// `Crypticle(key).dumps(value, nonce)`, i.e. the request's nonce right
/// after `pickle::`, so the minion can match reply to request. `key` is
/// the minion's session key for version 3, the AES key that opened the
/// request for version 2.
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
