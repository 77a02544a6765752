use thiserror::Error;

use crate::serial::SerialError;

/// Why a cryptographic operation failed.
///
/// Messages never include key material or payload bytes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A Crypticle's HMAC did not match: wrong key (e.g. the master rotated
    /// its AES key) or a tampered message. Salt's `AuthenticationError`;
    /// clients re-authenticate and retry once.
    #[error("message authentication failed (HMAC mismatch)")]
    BadHmac,
    /// The decrypted Crypticle plaintext ends in an impossible padding byte.
    #[error("invalid padding in decrypted message")]
    BadPadding,
    /// The Crypticle plaintext does not start with `pickle::`.
    #[error("decrypted message lacks the pickle:: prefix")]
    MissingPrefix,
    /// The reply's nonce is not the one the request carried (Salt's
    /// "Nonce verification error").
    #[error("nonce verification failed")]
    NonceMismatch,
    /// A nonce to embed is not 32 ASCII hex characters.
    #[error("a nonce must be 32 hex characters")]
    InvalidNonce,
    /// The message's `serial` is not above the last one this Crypticle
    /// accepted: a replay or an out-of-order publish. Salt drops it silently.
    #[error("stale serial {serial} (last accepted {last})")]
    Stale {
        /// The serial the message carried.
        serial: i128,
        /// The highest serial accepted so far.
        last: u64,
    },
    /// The input is too short, has the wrong length, or carries a field of the wrong type.
    #[error("malformed {what}")]
    Malformed {
        /// What was malformed.
        what: &'static str,
    },
    /// The decrypted payload does not unpack with the Crypticle's
    /// serialization: garbage, or (source
    /// [`SerialError::SerializationMismatch`]) packed with the other one.
    #[error("decrypted payload could not be unpacked")]
    Payload(#[source] SerialError),
    /// A Crypticle key string is not base64 of 56 bytes.
    #[error("invalid crypticle key string (expected base64 of 56 bytes)")]
    BadKeyString,
    /// A PEM document could not be parsed as an RSA key of the expected kind.
    #[error("invalid {kind} key PEM: {reason}")]
    BadPem {
        /// `private` or `public`.
        kind: &'static str,
        /// The parser's message (never the key itself).
        reason: String,
    },
    /// A key could not be encoded to PEM.
    #[error("could not encode key: {0}")]
    Encode(String),
    /// RSA key generation failed.
    #[error("RSA key generation failed: {0}")]
    KeyGeneration(String),
    /// RSA decryption failed (wrong key or corrupted ciphertext).
    #[error("RSA decryption failed")]
    Decrypt,
    /// RSA encryption failed (e.g. plaintext too long for the key).
    #[error("RSA encryption failed: {0}")]
    Encrypt(String),
    /// A signature did not verify, or an X9.31 block did not decode.
    #[error("signature verification failed")]
    BadSignature,
    /// A job given to [`offload`](super::offload) panicked or was
    /// cancelled by a runtime shutting down.
    #[error("the crypto worker failed: {0}")]
    Worker(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The message does not fit the key for X9.31 signing.
    #[error("message of {len} bytes too long for a {key_bytes}-byte key")]
    MessageTooLong {
        /// Message length.
        len: usize,
        /// Modulus length in bytes.
        key_bytes: usize,
    },
    /// An algorithm name Salt does not define (`enc_algo`, `sig_algo`).
    #[error("unknown algorithm {0:?}")]
    UnknownAlgorithm(String),
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// The payload could not be packed for encryption.
    #[error("could not pack payload")]
    Pack(#[source] SerialError),
}
