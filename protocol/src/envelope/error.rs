use thiserror::Error;

use super::{BAD_LOAD, ReplayError};
use crate::crypto::CryptoError;
use crate::serial::{SerialError, Value};

/// Why a minion-side envelope operation failed: packing a request, or
/// reading the master's reply.
///
/// Messages never include payloads or key material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The load could not be packed (an item exceeds msgpack's lengths).
    #[error("could not pack the load")]
    Pack(#[source] SerialError),
    /// Encryption, decryption or signing failed. A
    /// [`CryptoError::BadHmac`] here means the session key is stale: see
    /// [`EnvelopeError::is_reauth`].
    #[error("crypto failure in the envelope")]
    Crypto(#[source] CryptoError),
    /// An aes request's load is not a map (Salt refuses to add `nonce`,
    /// `ts`, `tok` and `id` to anything else).
    #[error("an aes request load must be a map")]
    LoadNotAMap,
    /// The reply frame is not msgpack, or an aes reply is not a byte string.
    #[error("malformed reply: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// The master answered an aes request with a clear error string such
    /// as `"bad load"`: it could not authenticate or use the request.
    #[error("master refused the request: {0}")]
    Refused(String),
}

impl EnvelopeError {
    /// Whether the caller should re-authenticate and retry once, as Salt's
    /// clients do on an `AuthenticationError`: the HMAC did not match (the
    /// master forgot or renewed our session key), or the master answered
    /// with a clear error such as `"bad load"` (our key or session is no
    /// longer known there).
    pub fn is_reauth(&self) -> bool {
        matches!(
            self,
            EnvelopeError::Crypto(CryptoError::BadHmac) | EnvelopeError::Refused(_)
        )
    }
}

/// Why the master refused a request frame in
/// [`open_request`](super::open_request). Every variant still gets exactly
/// one reply: [`RequestError::reply`] is the clear value Salt sends.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The frame is not msgpack, or not a map holding `enc` and `load`.
    #[error("request is not an envelope with enc and load")]
    NotAnEnvelope,
    /// `enc` is neither `clear` nor `aes`.
    #[error("unknown request encryption")]
    UnknownEnc,
    /// An aes request of a version not opened here: below 2, or 2 (Salt
    /// 3006.0–3006.11, encrypted with the master's AES key) when the
    /// master does not accept it ([`open_request`](super::open_request),
    /// or `minimum_auth_version: 3`).
    #[error("aes request version {0} is not supported")]
    UnsupportedVersion(i64),
    /// The envelope's `id` (version 3) or the load's (version 2) is
    /// missing where required, not text, or not a valid minion id (Salt's
    /// `valid_id`).
    #[error("invalid minion id in the envelope")]
    InvalidId,
    /// The master has no session key (version 3) or no accepted key for
    /// this minion.
    #[error("no session or accepted key for minion {id:?}")]
    UnknownMinion {
        /// The id the envelope claimed.
        id: String,
    },
    /// The load did not decrypt with the minion's session key (HMAC
    /// mismatch, bad padding, not msgpack, …).
    #[error("could not decrypt the load")]
    Decrypt(#[source] CryptoError),
    /// The (decrypted) load is not a map.
    #[error("payload and load must be a dict")]
    NotADict,
    /// The load's `id` holds a NUL byte.
    #[error("load id contains a null byte")]
    NulInId,
    /// The load's `id` is not text.
    #[error("load id is not a string")]
    NonStringId,
    /// The load's `id` is not the envelope's `id`.
    #[error("request id mismatch")]
    IdMismatch,
    /// The load has no `nonce`, or it is not 32 hex characters (the reply
    /// could not carry it).
    #[error("missing or malformed nonce")]
    BadNonce,
    /// `tok` is missing (version 3), does not X9.31-verify to `salt` with
    /// the minion's accepted key, or comes without an `id` (version 2).
    #[error("minion token did not verify")]
    BadToken,
    /// The replay guard refused the request.
    #[error("replay check failed")]
    Replay(#[from] ReplayError),
}

impl RequestError {
    /// The clear reply Salt's master sends for this failure
    /// (`ReqServerChannel.handle_message`): mostly `"bad load"`.
    pub fn reply(&self) -> Value {
        let text = match self {
            RequestError::NotADict => "payload and load must be a dict",
            RequestError::NulInId => "bad load: id contains a null byte",
            RequestError::NonStringId => "bad load: id is not a string",
            _ => BAD_LOAD,
        };
        Value::from(text)
    }
}

/// Why a publish frame was not delivered in
/// [`unwrap_publish`](super::unwrap_publish).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The frame is not a msgpack map with `enc: "aes"` and a byte-string `load`.
    #[error("malformed publish: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// Signature checking is on and the frame carries no `sig`.
    #[error("publish is not signed")]
    MissingSignature,
    /// `sig` does not verify with the master's public key (or names an
    /// unknown `sig_algo`): drop the publish and log it.
    #[error("publish signature did not verify")]
    BadSignature,
    /// The HMAC did not match: the master rotated its AES key. Re-authenticate
    /// and try the same frame once more with the new key.
    #[error("publish HMAC mismatch (AES key rotated?)")]
    BadHmac,
    /// The `serial` is not above the last one accepted with this key: a
    /// replay or out-of-order publish. Salt drops it silently.
    #[error("stale publish serial {serial} (last accepted {last})")]
    Stale {
        /// The serial the publish carried.
        serial: i128,
        /// The highest serial accepted so far.
        last: u64,
    },
    /// Decryption failed for another reason (padding, prefix, msgpack).
    #[error("could not decrypt the publish")]
    Decrypt(#[source] CryptoError),
    /// The publish load is not a map or lacks one of `tgt`, `jid`, `fun`, `arg`.
    #[error("publish load invalid")]
    Load(#[source] LoadError),
    /// Packing, encryption or signing failed on the master.
    #[error("could not wrap the publish")]
    Wrap(#[source] CryptoError),
    /// The serial counter reached its end: rotate the AES key (Salt rotates
    /// at `sys.maxsize`).
    #[error("publish serial exhausted; rotate the AES key")]
    SerialExhausted,
}

impl PublishError {
    /// Whether the minion should re-authenticate and retry the frame once.
    pub fn is_reauth(&self) -> bool {
        matches!(self, PublishError::BadHmac)
    }
}

/// Why a load (publish, `_return`, `_minion_event`) is not usable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// The load is not a map.
    #[error("load is not a map")]
    NotAMap,
    /// A required key is absent.
    #[error("load lacks {0:?}")]
    MissingKey(&'static str),
    /// A key holds a value of the wrong type.
    #[error("load key {0:?} has the wrong type")]
    InvalidKey(&'static str),
    /// The `id` is not a valid minion id.
    #[error("load id is not a valid minion id")]
    InvalidId,
    /// A minion event tag is on the master's blacklist (`salt/job/*/new`, …).
    #[error("minion event tag {0:?} is not allowed")]
    BlacklistedTag(String),
}
