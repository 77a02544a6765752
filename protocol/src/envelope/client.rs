//! The minion (client) side of the request channel: packing requests and
//! reading replies.

use std::fmt;

use bytes::Bytes;

use super::{EnvelopeError, VERSION, entry};
use crate::crypto::{
    Crypticle, CryptoError, EncryptionAlgorithm, PrivateKey, SigningAlgorithm, gen_nonce, is_nonce,
};
use crate::serial::{Value, to_channel_bytes};

/// The smallest Crypticle message: IV, one AES block and the HMAC.
const MIN_CIPHERTEXT: usize = 16 + 16 + 32;

/// A minion's `tok`: the X9.31 signature of `b"salt"` with its private key,
/// which the master verifies against the accepted public key on every aes
/// request. It is deterministic, so Salt memoizes it (`AsyncAuth.gen_token`)
/// and so does Brine: make one per key and reuse it. Debug output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Tok(Vec<u8>);

impl fmt::Debug for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tok(..)")
    }
}

impl Tok {
    /// The clear text a `tok` signs.
    pub const CLEAR: &'static [u8] = b"salt";

    /// Signs [`Tok::CLEAR`] with the minion's key (one private-key operation).
    ///
    /// # Errors
    /// [`CryptoError::Sign`] if the private operation fails.
    pub fn new(key: &PrivateKey) -> Result<Tok, CryptoError> {
        key.x931_sign(Tok::CLEAR).map(Tok)
    }

    /// The signature bytes, as they travel in the load.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn envelope(enc: &str, load: Value) -> Vec<(Value, Value)> {
    vec![
        entry("enc", enc),
        entry("load", load),
        entry("version", VERSION),
    ]
}

fn pack(envelope: &Value) -> Result<Bytes, EnvelopeError> {
    to_channel_bytes(envelope)
        .map(Bytes::from)
        .map_err(EnvelopeError::Pack)
}

/// A clear request frame: `{"enc": "clear", "load": load, "version": 3}`,
/// packed as Salt packs channel messages. Used for `_auth` and for local
/// clients' `publish`.
///
/// # Errors
/// [`EnvelopeError::Pack`] if the load cannot be packed.
pub fn package_clear(load: Value) -> Result<Bytes, EnvelopeError> {
    pack(&Value::Map(envelope("clear", load)))
}

/// A v3 aes request frame with a fresh nonce, which is returned with it:
/// pass that nonce to [`open_aes_reply`]. See [`package_aes_with_nonce`].
///
/// # Errors
/// As [`package_aes_with_nonce`], plus [`CryptoError::Random`] (wrapped) if
/// no nonce could be drawn.
pub fn package_aes(
    load: Value,
    minion_id: &str,
    session: &Crypticle,
    tok: &Tok,
    ts: i64,
) -> Result<(Bytes, String), EnvelopeError> {
    let nonce = gen_nonce().map_err(EnvelopeError::Crypto)?;
    let frame = package_aes_with_nonce(load, minion_id, session, tok, ts, &nonce)?;
    Ok((frame, nonce))
}

/// A v3 aes request frame, as `AsyncReqChannel._package_load` builds it:
/// the load gets `nonce`, `ts` (Unix seconds, from the caller's clock),
/// `tok` and `id` — each replacing an existing key in place or appended in
/// that order, as a Python dict assignment does — and is encrypted with the
/// session key (no nonce in the Crypticle prefix); the envelope is
/// `{"enc": "aes", "load": <ciphertext>, "version": 3, "id", "enc_algo", "sig_algo"}`.
///
/// # Errors
/// [`EnvelopeError::LoadNotAMap`] unless the load is a map,
/// [`EnvelopeError::Crypto`] with [`CryptoError::InvalidNonce`] unless the
/// nonce is 32 hex characters (the reply must be able to carry it), and
/// [`EnvelopeError::Pack`] / [`EnvelopeError::Crypto`] if packing or
/// encryption fails.
pub fn package_aes_with_nonce(
    mut load: Value,
    minion_id: &str,
    session: &Crypticle,
    tok: &Tok,
    ts: i64,
    nonce: &str,
) -> Result<Bytes, EnvelopeError> {
    if !matches!(load, Value::Map(_)) {
        return Err(EnvelopeError::LoadNotAMap);
    }
    if !is_nonce(nonce) {
        return Err(EnvelopeError::Crypto(CryptoError::InvalidNonce));
    }
    load.insert("nonce", nonce);
    load.insert("ts", ts);
    load.insert("tok", tok.as_bytes());
    load.insert("id", minion_id);
    let ciphertext = session.dumps(&load, None).map_err(|e| match e {
        CryptoError::Pack(source) => EnvelopeError::Pack(source),
        other => EnvelopeError::Crypto(other),
    })?;
    let mut env = envelope("aes", Value::Bytes(ciphertext));
    env.push(entry("id", minion_id));
    env.push(entry("enc_algo", EncryptionAlgorithm::default().name()));
    env.push(entry("sig_algo", SigningAlgorithm::default().name()));
    pack(&Value::Map(env))
}

/// Decodes the master's reply to a clear request: the handler's value as is.
///
/// # Errors
/// [`EnvelopeError::Malformed`] if the frame is not one msgpack document.
pub fn open_clear_reply(frame: &[u8]) -> Result<Value, EnvelopeError> {
    Value::decode(frame).map_err(|_| EnvelopeError::Malformed {
        what: "reply is not msgpack",
    })
}

/// Decodes the master's reply to a v3 aes request: a msgpack byte string
/// whose Crypticle plaintext is `pickle::` ‖ the request's nonce ‖
/// msgpack(value). A nil or empty reply is [`Value::Nil`], as Salt passes
/// it through.
///
/// # Errors
/// [`EnvelopeError::Refused`] when the master sent a short clear string such
/// as `"bad load"` instead; [`EnvelopeError::Crypto`] if the HMAC does not
/// match ([`EnvelopeError::is_reauth`]), the nonce differs
/// ([`CryptoError::NonceMismatch`]) or the plaintext is malformed;
/// [`EnvelopeError::Malformed`] for anything that is not a byte string.
pub fn open_aes_reply(
    frame: &[u8],
    session: &Crypticle,
    nonce: &str,
) -> Result<Value, EnvelopeError> {
    let ciphertext = match open_clear_reply(frame)? {
        Value::Nil => return Ok(Value::Nil),
        Value::Str(text) if text.len() < MIN_CIPHERTEXT => {
            return if text.is_empty() {
                Ok(Value::Nil)
            } else {
                Err(EnvelopeError::Refused(text))
            };
        }
        Value::Str(text) => text.into_bytes(),
        Value::Bytes(bytes) if bytes.is_empty() => return Ok(Value::Nil),
        Value::Bytes(bytes) => bytes,
        _ => {
            return Err(EnvelopeError::Malformed {
                what: "aes reply is not a byte string",
            });
        }
    };
    session
        .loads(&ciphertext, Some(nonce))
        .map_err(EnvelopeError::Crypto)
}
