//! Salt's cryptography, byte-compatible with `salt/crypt.py` 3007.
//!
//! | operation | here | Salt | used for |
//! | --- | --- | --- | --- |
//! | RSA-OAEP, SHA-1 + MGF1-SHA-1, empty label | [`PublicKey::encrypt`] / [`PrivateKey::decrypt`] | `PublicKey.encrypt` / `PrivateKey.decrypt` | `aes`, `session`, `token` in auth; private pillar `key` |
//! | RSASSA-PKCS1-v1_5 with SHA-1 | [`PrivateKey::sign`] / [`PublicKey::verify`] | `PrivateKey.sign` / `PublicKey.verify` | signed `_auth` replies, publish `sig`, pillar `sig` |
//! | raw RSA with ANSI X9.31 padding | [`PrivateKey::x931_sign`] / [`PublicKey::x931_recover`] | `PrivateKey.encrypt` / `PublicKey.decrypt` (`rsax931`) | the minion `tok`, the auth reply's `sig` over the AES key digest |
//! | AES-192-CBC + HMAC-SHA256, `pickle::` framing | [`Crypticle`] | `Crypticle` | every encrypted load (session and AES keys) |
//!
//! Keys are RSA-2048, e = 65537; private keys are written as PKCS#1 PEM
//! (`BEGIN RSA PRIVATE KEY`) and public keys as SPKI PEM (`BEGIN PUBLIC
//! KEY`), as Salt writes them. Public keys are compared after [`clean_key`].
//! The RSA arithmetic is OpenSSL's libcrypto (blinded private-key
//! operations); key material this crate copies out is zeroized on drop.
//! RSA work that a burst could pile up (sign-ins, publish signatures) goes
//! through [`offload`]: the blocking pool, one job per core.

mod crypticle;
mod error;
mod nonce;
mod offload;
mod rsa_key;
mod x931;

pub use crypticle::{Crypticle, PICKLE_PREFIX};
pub use error::CryptoError;
pub use nonce::{NONCE_LEN, gen_nonce, is_nonce};
pub use offload::offload;
pub use rsa_key::{EncryptionAlgorithm, PrivateKey, PublicKey, SigningAlgorithm, clean_key};
/// Wrapper that wipes secrets (key strings, private PEMs, decrypted
/// plaintexts) from memory on drop; derefs to the inner value. Re-exported
/// so callers need no `zeroize` dependency of their own.
pub use zeroize::Zeroizing;

use sha2::{Digest, Sha256};

/// Fills `buf` from the operating system's CSPRNG.
fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|e| CryptoError::Random(e.to_string()))
}

/// Lowercase hex of SHA-256 over `data`: what the master X9.31-signs in the
/// auth reply's `sig` (the digest of the AES key string), and what the
/// minion expects to recover from it.
pub fn sha256_hex(data: &[u8]) -> String {
    nonce::to_hex(&Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_hex_known_answer() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
