use thiserror::Error;

use crate::crypto::CryptoError;
use crate::serial::{SerialError, Serialization};

/// Why an `_auth` request could not be built or parsed, or why the
/// minion refused the master's answer.
///
/// Messages never include key material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A required key is missing or has the wrong type.
    #[error("malformed auth message: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// The minion id is not valid.
    #[error("invalid minion id")]
    InvalidId,
    /// The master does not support our `enc_algo` / `sig_algo` (its reply
    /// was `"bad enc algo"` or `"bad sig algo"`).
    #[error("master refused the algorithms: {0}")]
    BadAlgorithm(String),
    /// The master presented a public key other than `minion_master.pub`:
    /// Salt's "The master key has changed, the salt master could have been
    /// subverted, verify salt master's public key". Authentication must not
    /// proceed; an operator removes the stored key if the change is legitimate.
    #[error(
        "the master key has changed, the master could have been subverted; verify the master's public key"
    )]
    MasterKeyChanged,
    /// The master signed its public key (`pub_sig`), which this minion does
    /// not verify (Salt's `check_auth_deps` failure).
    #[error("the master sent a public-key signature this minion is not set up to verify")]
    UnverifiedMasterKeySignature,
    /// The `sig` over the AES key's SHA-256 did not verify with the master's key.
    #[error("the master's AES key signature did not verify")]
    BadAesSignature,
    /// The master did not echo the token we sent, so it does not hold the
    /// private key for `minion_master.pub`.
    #[error("the master failed to decrypt the minion token")]
    TokenMismatch,
    /// The PKCS#1 v1.5 signature over the reply's `load` did not verify.
    #[error("the auth reply signature did not verify")]
    BadSignature,
    /// The reply's nonce is not the one we sent.
    #[error("the auth reply nonce did not match")]
    NonceMismatch,
    /// (Brine) The master packs the AES layer with another serialization
    /// than this minion's `serial` key: it refused the sign-in with
    /// `"bad serial"`, or accepted it naming another one (a master that
    /// names none uses msgpack, as stock Salt does). Both ends must agree;
    /// retrying cannot help.
    #[error("the master uses {master}, this minion is configured with serial: {minion}")]
    SerialMismatch {
        /// The master's serialization.
        master: Serialization,
        /// This minion's.
        minion: Serialization,
    },
    /// An RSA or Crypticle operation failed (wrong key, bad PEM, bad key string, RNG).
    #[error("crypto failure during auth")]
    Crypto(#[source] CryptoError),
    /// A message could not be packed.
    #[error("could not pack the auth message")]
    Pack(#[source] SerialError),
}

impl From<CryptoError> for AuthError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Pack(source) => AuthError::Pack(source),
            other => AuthError::Crypto(other),
        }
    }
}
