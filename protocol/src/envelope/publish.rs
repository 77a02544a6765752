//! The publish channel: one encrypted, optionally signed frame per job.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::{LoadError, PublishError, PublishLoad, entry, get_str};
use crate::crypto::{Crypticle, CryptoError, PrivateKey, PublicKey, SigningAlgorithm};
use crate::serial::{Value, to_channel_bytes};

/// The master's publish serial for its current AES key (Salt's
/// `SMaster.get_serial`): 1 for the first publish, then strictly
/// increasing; [`reset`](Self::reset) it whenever the AES key rotates.
/// Minions drop a publish whose serial is not above the last one they
/// accepted with that key, so a captured publish cannot be replayed.
///
/// Lock-free and `Sync`: workers that wrap publishes concurrently share it.
#[derive(Debug, Default)]
pub struct SerialCounter {
    last: AtomicU64,
}

impl SerialCounter {
    /// The highest serial handed out; Salt's `sys.maxsize`.
    pub const MAX: u64 = i64::MAX.unsigned_abs();

    /// A counter whose first serial is 1.
    pub fn new() -> SerialCounter {
        SerialCounter::default()
    }

    /// A counter whose next serial is `last + 1` (e.g. restoring a
    /// master's state for an AES key that outlived a restart).
    pub fn starting_after(last: u64) -> SerialCounter {
        SerialCounter {
            last: AtomicU64::new(last.min(Self::MAX)),
        }
    }

    /// The next serial, or `None` once [`Self::MAX`] was handed out (rotate
    /// the AES key then, as Salt does).
    pub fn next_serial(&self) -> Option<u64> {
        self.last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                (last < Self::MAX).then_some(last + 1)
            })
            .ok()
            .map(|previous| previous + 1)
    }

    /// The last serial handed out (0 if none since the last reset).
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    /// Starts over at 1: call when the AES key rotates.
    pub fn reset(&self) {
        self.last.store(0, Ordering::Release);
    }
}

/// Wraps a publish load into the single frame every minion receives, as
/// `PubServerChannel.wrap_payload` does: the load gets the next `serial`,
/// is encrypted with the master's AES key (no nonce) and, if `sign` (Salt's
/// `sign_pub_messages`, master default true), the ciphertext is signed
/// with PKCS#1 v1.5-SHA1: `{"enc": "aes", "load": <ciphertext>[, "sig_algo", "sig"]}`.
///
/// One encryption and one signature per job, whatever the number of minions.
///
/// # Errors
/// [`PublishError::Load`] unless the load is a map,
/// [`PublishError::SerialExhausted`] when the counter is spent,
/// [`PublishError::Wrap`] if encryption, signing or packing fails.
pub fn wrap_publish(
    load: &Value,
    aes: &Crypticle,
    master_key: &PrivateKey,
    sign: bool,
    serials: &SerialCounter,
) -> Result<Bytes, PublishError> {
    if !matches!(load, Value::Map(_)) {
        return Err(PublishError::Load(LoadError::NotAMap));
    }
    let serial = serials.next_serial().ok_or(PublishError::SerialExhausted)?;
    wrap_publish_with_serial(load, aes, master_key, sign, serial)
}

/// [`wrap_publish`] with a serial the caller reserved: a publisher that
/// signs several publishes at once reserves serials in order and sends the
/// frames in that order, since a minion drops a serial lower than the last
/// one it accepted.
///
/// # Errors
/// As [`wrap_publish`], but for [`PublishError::SerialExhausted`].
pub fn wrap_publish_with_serial(
    load: &Value,
    aes: &Crypticle,
    master_key: &PrivateKey,
    sign: bool,
    serial: u64,
) -> Result<Bytes, PublishError> {
    if !matches!(load, Value::Map(_)) {
        return Err(PublishError::Load(LoadError::NotAMap));
    }
    let mut load = load.clone();
    load.insert("serial", serial);
    let ciphertext = aes.dumps(&load, None).map_err(PublishError::Wrap)?;
    let mut envelope = vec![entry("enc", "aes")];
    if sign {
        let algorithm = SigningAlgorithm::default();
        let sig = master_key
            .sign_with(algorithm, &ciphertext)
            .map_err(PublishError::Wrap)?;
        envelope.push(entry("load", Value::Bytes(ciphertext)));
        envelope.push(entry("sig_algo", algorithm.name()));
        envelope.push(entry("sig", Value::Bytes(sig)));
    } else {
        envelope.push(entry("load", Value::Bytes(ciphertext)));
    }
    to_channel_bytes(&Value::Map(envelope))
        .map(Bytes::from)
        .map_err(|e| PublishError::Wrap(CryptoError::Pack(e)))
}

/// Opens a publish frame on the minion, as `AsyncPubChannel._decode_payload`
/// and `Minion._target_load` do: if `verify_sig` (the minion's
/// `sign_pub_messages`, Salt default false) the `sig` must verify with the
/// master's public key; the load is decrypted with the AES key, whose
/// [`Crypticle`] enforces the strictly increasing `serial`; the load must
/// hold `tgt`, `jid`, `fun` and `arg`.
///
/// Target matching and jid de-duplication are the caller's next steps.
///
/// # Errors
/// [`PublishError::BadHmac`] (re-authenticate, then retry this frame once
/// with the new key), [`PublishError::Stale`] (drop silently),
/// [`PublishError::MissingSignature`] / [`PublishError::BadSignature`]
/// (drop and log), [`PublishError::Load`] for a load without the required
/// keys, [`PublishError::Malformed`] / [`PublishError::Decrypt`] for garbage.
pub fn unwrap_publish(
    frame: &[u8],
    aes: &Crypticle,
    master_pub: &PublicKey,
    verify_sig: bool,
) -> Result<PublishLoad, PublishError> {
    let malformed = |what| PublishError::Malformed { what };
    let envelope = Value::decode(frame).map_err(|_| malformed("not msgpack"))?;
    if get_str(&envelope, "enc") != Some("aes") {
        return Err(malformed("enc is not aes"));
    }
    let ciphertext = envelope
        .get("load")
        .and_then(Value::as_bytes)
        .ok_or_else(|| malformed("load is not a byte string"))?;
    if verify_sig {
        let sig = envelope
            .get("sig")
            .and_then(Value::as_bytes)
            .filter(|s| !s.is_empty())
            .ok_or(PublishError::MissingSignature)?;
        let algorithm = match get_str(&envelope, "sig_algo") {
            Some(name) => name.parse().map_err(|_| PublishError::BadSignature)?,
            None => SigningAlgorithm::default(),
        };
        master_pub
            .verify_with(algorithm, ciphertext, sig)
            .map_err(|_| PublishError::BadSignature)?;
    }
    let load = aes.loads(ciphertext, None).map_err(|e| match e {
        CryptoError::BadHmac => PublishError::BadHmac,
        CryptoError::Stale { serial, last } => PublishError::Stale { serial, last },
        other => PublishError::Decrypt(other),
    })?;
    PublishLoad::from_value(load).map_err(PublishError::Load)
}
