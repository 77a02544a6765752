//! RSA key pairs and the three RSA operations Salt uses.
//!
//! The arithmetic is OpenSSL's libcrypto, the library Salt itself reaches
//! through `cryptography`: an RSA-2048 private operation costs ~0.3 ms there
//! against ~1.7 ms in the pure-Rust `rsa` crate, and every publish is signed
//! and every sign-in takes two private operations on each side. Padding
//! rules Salt relies on (X9.31, the `min(s, n - s)` output) stay ours.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use openssl::bn::{BigNum, BigNumRef};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{Signer, Verifier};
use zeroize::Zeroizing;

use super::{CryptoError, x931};

/// Salt's `clean_key`: strip surrounding whitespace and join the lines with
/// `\n` (no trailing newline). Public keys are compared, stored under
/// `minions/<id>` and sent as `pub`/`pub_key` in this form.
pub fn clean_key(key: &str) -> String {
    key.trim().lines().collect::<Vec<_>>().join("\n")
}

/// The `enc_algo` of a request: how RSA encryption is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncryptionAlgorithm {
    /// `OAEP-SHA1` (Salt's default): OAEP with SHA-1 and MGF1-SHA-1.
    #[default]
    OaepSha1,
    /// `OAEP-SHA224`: OAEP with SHA-224 and MGF1-SHA-224.
    OaepSha224,
}

impl EncryptionAlgorithm {
    fn digest(self) -> &'static MdRef {
        match self {
            EncryptionAlgorithm::OaepSha1 => Md::sha1(),
            EncryptionAlgorithm::OaepSha224 => Md::sha224(),
        }
    }

    /// Salt's name for it.
    pub fn name(self) -> &'static str {
        match self {
            EncryptionAlgorithm::OaepSha1 => "OAEP-SHA1",
            EncryptionAlgorithm::OaepSha224 => "OAEP-SHA224",
        }
    }
}

impl FromStr for EncryptionAlgorithm {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        match s {
            "OAEP-SHA1" => Ok(EncryptionAlgorithm::OaepSha1),
            "OAEP-SHA224" => Ok(EncryptionAlgorithm::OaepSha224),
            other => Err(CryptoError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// The `sig_algo` of a request: how RSA signatures are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlgorithm {
    /// `PKCS1v15-SHA1` (Salt's default).
    #[default]
    Pkcs1v15Sha1,
    /// `PKCS1v15-SHA224`.
    Pkcs1v15Sha224,
}

impl SigningAlgorithm {
    fn digest(self) -> MessageDigest {
        match self {
            SigningAlgorithm::Pkcs1v15Sha1 => MessageDigest::sha1(),
            SigningAlgorithm::Pkcs1v15Sha224 => MessageDigest::sha224(),
        }
    }

    /// Salt's name for it.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Pkcs1v15Sha1 => "PKCS1v15-SHA1",
            SigningAlgorithm::Pkcs1v15Sha224 => "PKCS1v15-SHA224",
        }
    }
}

impl FromStr for SigningAlgorithm {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        match s {
            "PKCS1v15-SHA1" => Ok(SigningAlgorithm::Pkcs1v15Sha1),
            "PKCS1v15-SHA224" => Ok(SigningAlgorithm::Pkcs1v15Sha224),
            other => Err(CryptoError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// Normalizes line endings and guarantees the final newline PEM parsers want.
fn normalize_pem(pem: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(clean_key(pem));
    out.push('\n');
    out
}

/// Moduli Brine loads, as Salt's `load_pem_public_key` users expect.
const MODULUS_BITS: std::ops::RangeInclusive<i32> = 1024..=8192;

/// Refuses keys whose size or exponent would make them insecure or
/// expensive to use (a huge public exponent turns every verification into
/// seconds of CPU: a cheap denial of service through a submitted key).
fn check_shape(n: &BigNumRef, e: &BigNumRef) -> Result<(), String> {
    let bits = n.num_bits();
    if !MODULUS_BITS.contains(&bits) {
        return Err(format!(
            "a {bits}-bit modulus (accepted: {} to {} bits)",
            MODULUS_BITS.start(),
            MODULUS_BITS.end()
        ));
    }
    if e.num_bits() > 33 || !e.is_bit_set(0) || e.num_bits() < 2 {
        return Err("an unusable public exponent".to_owned());
    }
    Ok(())
}

/// A cheap consistency check of a loaded private key: p × q = n.
/// (OpenSSL's `check_key` also tests p and q for primality, ~30 ms a key:
/// minutes for a 10,000-minion swarm loading its cached keys.)
fn primes_match(rsa: &Rsa<Private>) -> bool {
    let (Some(p), Some(q)) = (rsa.p(), rsa.q()) else {
        return false;
    };
    let product = || -> Result<BigNum, ErrorStack> {
        let mut ctx = openssl::bn::BigNumContext::new()?;
        let mut product = BigNum::new()?;
        product.checked_mul(p, q, &mut ctx)?;
        Ok(product)
    };
    product().is_ok_and(|product| *product == *rsa.n())
}

/// OpenSSL's message for an error stack (never key material).
fn reason(e: &ErrorStack) -> String {
    let text = e.to_string();
    if text.is_empty() {
        "rejected by OpenSSL".to_owned()
    } else {
        text
    }
}

/// An RSA private key (master.pem, minion.pem). Debug output is redacted.
#[derive(Clone)]
pub struct PrivateKey {
    rsa: Rsa<Private>,
    pkey: PKey<Private>,
    /// The last X9.31 signature, by message: X9.31 is deterministic, and
    /// the master signs the same AES-key digest for every minion that signs
    /// in until the key rotates (a third of its RSA work in a sign-in herd).
    last_x931: LastPair<()>,
}

/// The last message and signature a key made or accepted (with a tag such
/// as the algorithm), shared by the key's clones. Signing and verifying are
/// pure functions of key, message and signature, so a repeat of the same
/// pair can take the earlier answer.
#[derive(Clone)]
struct LastPair<T>(Arc<Mutex<Option<Pair<T>>>>);

/// A tag, a message and its signature.
type Pair<T> = (T, Vec<u8>, Vec<u8>);

impl<T> Default for LastPair<T> {
    fn default() -> Self {
        LastPair(Arc::default())
    }
}

impl<T: PartialEq> LastPair<T> {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Pair<T>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The signature remembered for `msg` under `tag`.
    fn signature_of(&self, tag: &T, msg: &[u8]) -> Option<Vec<u8>> {
        match &*self.slot() {
            Some((t, m, sig)) if t == tag && m == msg => Some(sig.clone()),
            _ => None,
        }
    }

    /// Whether `msg` and `sig` under `tag` are the pair remembered.
    fn holds(&self, tag: &T, msg: &[u8], sig: &[u8]) -> bool {
        matches!(&*self.slot(), Some((t, m, s)) if t == tag && m == msg && s == sig)
    }

    fn remember(&self, tag: T, msg: &[u8], sig: &[u8]) {
        *self.slot() = Some((tag, msg.to_vec(), sig.to_vec()));
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &self.rsa.n().num_bits())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Salt's default `keysize`.
    pub const DEFAULT_BITS: usize = 2048;

    fn from_rsa(rsa: Rsa<Private>) -> Result<PrivateKey, String> {
        check_shape(rsa.n(), rsa.e())?;
        let pkey = PKey::from_rsa(rsa.clone()).map_err(|e| reason(&e))?;
        Ok(PrivateKey {
            rsa,
            pkey,
            last_x931: LastPair::default(),
        })
    }

    /// Generates a fresh key pair with e = 65537 ([`Self::DEFAULT_BITS`] is Salt's size).
    ///
    /// # Errors
    /// [`CryptoError::KeyGeneration`] for sizes outside 1024–8192 bits or an RNG failure.
    pub fn generate(bits: usize) -> Result<PrivateKey, CryptoError> {
        let bits = i32::try_from(bits)
            .ok()
            .filter(|b| MODULUS_BITS.contains(b))
            .ok_or_else(|| {
                CryptoError::KeyGeneration(format!("{bits} bits (accepted: 1024 to 8192)"))
            })?;
        let rsa = Rsa::generate(bits.unsigned_abs())
            .map_err(|e| CryptoError::KeyGeneration(reason(&e)))?;
        PrivateKey::from_rsa(rsa).map_err(CryptoError::KeyGeneration)
    }

    /// Parses a private key PEM: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what Salt
    /// writes) or unencrypted PKCS#8 (`BEGIN PRIVATE KEY`). CRLF line ends and
    /// surrounding whitespace are tolerated.
    ///
    /// # Errors
    /// [`CryptoError::BadPem`] if it is neither, or not a usable RSA key.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, CryptoError> {
        let pem = normalize_pem(pem);
        let parsed = if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----")
            || pem.starts_with("-----BEGIN PRIVATE KEY-----")
        {
            // an empty passphrase: an encrypted key fails instead of
            // OpenSSL prompting on the terminal
            PKey::private_key_from_pem_passphrase(pem.as_bytes(), b"")
                .and_then(|pkey| pkey.rsa())
                .map_err(|e| reason(&e))
                .and_then(|rsa| {
                    if primes_match(&rsa) {
                        Ok(rsa)
                    } else {
                        Err("inconsistent RSA key (p × q is not n)".to_owned())
                    }
                })
                .and_then(PrivateKey::from_rsa)
        } else {
            Err("expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY".to_owned())
        };
        parsed.map_err(|reason| CryptoError::BadPem {
            kind: "private",
            reason,
        })
    }

    /// The key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), `\n` line ends and a
    /// final newline: the bytes Salt writes to `master.pem`.
    ///
    /// # Errors
    /// [`CryptoError::Encode`] if the key cannot be encoded.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, CryptoError> {
        let bytes = Zeroizing::new(
            self.rsa
                .private_key_to_pem()
                .map_err(|e| CryptoError::Encode(reason(&e)))?,
        );
        std::str::from_utf8(&bytes)
            .map(|text| Zeroizing::new(text.to_owned()))
            .map_err(|_| CryptoError::Encode("PEM is not ASCII".to_owned()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        // n and e of a loaded key always copy and always form a key; the
        // fallbacks only keep this infallible signature honest
        let rsa = self
            .rsa
            .n()
            .to_owned()
            .and_then(|n| Ok((n, self.rsa.e().to_owned()?)))
            .and_then(|(n, e)| Rsa::from_public_components(n, e));
        match rsa.and_then(|rsa| Ok((PKey::from_rsa(rsa.clone())?, rsa))) {
            Ok((pkey, rsa)) => PublicKey {
                rsa,
                pkey,
                last_x931: LastPair::default(),
                last_verified: LastPair::default(),
            },
            Err(e) => unreachable!("copying a loaded RSA key's n and e: {e}"),
        }
    }

    /// Modulus length in bytes (256 for RSA-2048): the length of every
    /// ciphertext and signature.
    pub fn size(&self) -> usize {
        self.rsa.size() as usize
    }

    /// OAEP-SHA1 decryption (Salt's `PrivateKey.decrypt`).
    ///
    /// # Errors
    /// [`CryptoError::Decrypt`] for a wrong key or corrupted ciphertext.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.decrypt_with(EncryptionAlgorithm::OaepSha1, ciphertext)
    }

    /// OAEP decryption with the request's `enc_algo`.
    ///
    /// # Errors
    /// [`CryptoError::Decrypt`] for a wrong key or corrupted ciphertext.
    pub fn decrypt_with(
        &self,
        algorithm: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if ciphertext.len() != self.size() {
            return Err(CryptoError::Decrypt);
        }
        let mut plain = Zeroizing::new(Vec::new());
        let mut ctx = PkeyCtx::new(&self.pkey).map_err(|_| CryptoError::Decrypt)?;
        ctx.decrypt_init()
            .and_then(|()| ctx.set_rsa_padding(Padding::PKCS1_OAEP))
            .and_then(|()| ctx.set_rsa_oaep_md(algorithm.digest()))
            .and_then(|()| ctx.set_rsa_mgf1_md(algorithm.digest()))
            .and_then(|()| ctx.decrypt_to_vec(ciphertext, &mut plain))
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(plain)
    }

    /// PKCS#1 v1.5 signature with SHA-1 over `data` (Salt's `PrivateKey.sign`).
    ///
    /// # Errors
    /// [`CryptoError::Sign`] if the private operation fails.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.sign_with(SigningAlgorithm::Pkcs1v15Sha1, data)
    }

    /// PKCS#1 v1.5 signature with the request's `sig_algo`.
    ///
    /// # Errors
    /// [`CryptoError::Sign`] if the private operation fails.
    pub fn sign_with(
        &self,
        algorithm: SigningAlgorithm,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        Signer::new(algorithm.digest(), &self.pkey)
            .and_then(|mut signer| {
                signer.set_rsa_padding(Padding::PKCS1)?;
                signer.sign_oneshot_to_vec(data)
            })
            .map_err(|e| CryptoError::Sign(reason(&e)))
    }

    /// Raw RSA private-key operation with ANSI X9.31 padding — Salt's
    /// `PrivateKey.encrypt` (OpenSSL `RSA_private_encrypt` with
    /// `RSA_X931_PADDING`). No hashing: `msg` is embedded as is (`b"salt"`
    /// for the `tok`, a 64-char hex digest for the auth `sig`). The result
    /// is `min(s, n - s)` as [`Self::size`] bytes, as OpenSSL outputs it.
    ///
    /// # Errors
    /// [`CryptoError::MessageTooLong`] if `msg` does not fit the key
    /// (at most `size - 2` bytes, and not exactly `size - 3`, which OpenSSL
    /// cannot verify); [`CryptoError::Sign`] if the private operation fails.
    pub fn x931_sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if let Some(sig) = self.last_x931.signature_of(&(), msg) {
            return Ok(sig);
        }
        let sig = self.x931_sign_uncached(msg)?;
        self.last_x931.remember((), msg, &sig);
        Ok(sig)
    }

    fn x931_sign_uncached(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let k = self.size();
        let block = x931::pad(msg, k)?;
        let mut raw = Zeroizing::new(vec![0; k]);
        self.rsa
            .private_encrypt(&block, &mut raw, Padding::NONE)
            .map_err(|e| CryptoError::Sign(reason(&e)))?;
        let fold = || -> Result<Vec<u8>, ErrorStack> {
            let s = BigNum::from_slice(&raw)?;
            let mut n_minus_s = BigNum::new()?;
            n_minus_s.checked_sub(self.rsa.n(), &s)?;
            let smaller = if s.ucmp(&n_minus_s).is_gt() {
                &n_minus_s
            } else {
                &s
            };
            smaller.to_vec_padded(i32::try_from(k).unwrap_or(i32::MAX))
        };
        fold().map_err(|e| CryptoError::Sign(reason(&e)))
    }
}

/// An RSA public key (master.pub, minion.pub, `minions/<id>`).
#[derive(Clone)]
pub struct PublicKey {
    rsa: Rsa<Public>,
    pkey: PKey<Public>,
    /// The last X9.31 signature that verified, with its message: a
    /// minion's `tok` is the same bytes on every request it makes, and the
    /// master checks it on each (ten thousand returns of one job).
    last_x931: LastPair<()>,
    /// The last PKCS#1 v1.5 signature that verified: a process holding
    /// many minions (`brine-swarm`) shares its master's key among them, and
    /// each publish is then checked once, not once per simulated minion.
    last_verified: LastPair<SigningAlgorithm>,
}

/// Messages longer than this are never memoized (no large buffer is kept).
const MEMO_MAX: usize = 64 * 1024;

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.rsa.n() == other.rsa.n() && self.rsa.e() == other.rsa.e()
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &self.rsa.n().num_bits())
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Parses a public key PEM: SPKI (`BEGIN PUBLIC KEY`, what Salt writes
    /// and sends) or PKCS#1 (`BEGIN RSA PUBLIC KEY`), as Salt's
    /// `load_pem_public_key` accepts. CRLF line ends, surrounding whitespace
    /// and a missing final newline (the `pub` field) are tolerated. Moduli
    /// from 1024 to 8192 bits are accepted.
    ///
    /// # Errors
    /// [`CryptoError::BadPem`] if it is neither, or not a usable RSA key.
    pub fn from_pem(pem: &str) -> Result<PublicKey, CryptoError> {
        let pem = normalize_pem(pem);
        let parsed = if pem.starts_with("-----BEGIN PUBLIC KEY-----") {
            Rsa::public_key_from_pem(pem.as_bytes()).map_err(|e| reason(&e))
        } else if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
            Rsa::public_key_from_pem_pkcs1(pem.as_bytes()).map_err(|e| reason(&e))
        } else {
            Err("expected BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY".to_owned())
        };
        parsed
            .and_then(|rsa| {
                check_shape(rsa.n(), rsa.e())?;
                let pkey = PKey::from_rsa(rsa.clone()).map_err(|e| reason(&e))?;
                Ok(PublicKey {
                    rsa,
                    pkey,
                    last_x931: LastPair::default(),
                    last_verified: LastPair::default(),
                })
            })
            .map_err(|reason| CryptoError::BadPem {
                kind: "public",
                reason,
            })
    }

    /// The key as SPKI PEM (`BEGIN PUBLIC KEY`) with `\n` line ends and a
    /// final newline: the bytes Salt writes to `master.pub`.
    ///
    /// # Errors
    /// [`CryptoError::Encode`] if the key cannot be encoded.
    pub fn to_pem(&self) -> Result<String, CryptoError> {
        let bytes = self
            .rsa
            .public_key_to_pem()
            .map_err(|e| CryptoError::Encode(reason(&e)))?;
        String::from_utf8(bytes).map_err(|_| CryptoError::Encode("PEM is not ASCII".to_owned()))
    }

    /// [`Self::to_pem`] passed through [`clean_key`]: the form sent as
    /// `pub` / `pub_key` and compared by Salt.
    ///
    /// # Errors
    /// [`CryptoError::Encode`] if the key cannot be encoded.
    pub fn to_clean_pem(&self) -> Result<String, CryptoError> {
        Ok(clean_key(&self.to_pem()?))
    }

    /// Modulus length in bytes.
    pub fn size(&self) -> usize {
        self.rsa.size() as usize
    }

    /// OAEP-SHA1 encryption (Salt's `PublicKey.encrypt`).
    ///
    /// # Errors
    /// [`CryptoError::Encrypt`] if `data` is too long for the key
    /// (214 bytes for RSA-2048) or the RNG fails.
    pub fn encrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.encrypt_with(EncryptionAlgorithm::OaepSha1, data)
    }

    /// OAEP encryption with the given `enc_algo`.
    ///
    /// # Errors
    /// [`CryptoError::Encrypt`] if `data` is too long for the key or the RNG fails.
    pub fn encrypt_with(
        &self,
        algorithm: EncryptionAlgorithm,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::new();
        PkeyCtx::new(&self.pkey)
            .and_then(|mut ctx| {
                ctx.encrypt_init()?;
                ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
                ctx.set_rsa_oaep_md(algorithm.digest())?;
                ctx.set_rsa_mgf1_md(algorithm.digest())?;
                ctx.encrypt_to_vec(data, &mut out)
            })
            .map_err(|e| CryptoError::Encrypt(reason(&e)))?;
        Ok(out)
    }

    /// Verifies a PKCS#1 v1.5 SHA-1 signature (Salt's `PublicKey.verify`).
    ///
    /// # Errors
    /// [`CryptoError::BadSignature`] if it does not verify.
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        self.verify_with(SigningAlgorithm::Pkcs1v15Sha1, data, signature)
    }

    /// Verifies a PKCS#1 v1.5 signature made with `sig_algo`.
    ///
    /// # Errors
    /// [`CryptoError::BadSignature`] if it does not verify.
    pub fn verify_with(
        &self,
        algorithm: SigningAlgorithm,
        data: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        if signature.len() != self.size() {
            return Err(CryptoError::BadSignature);
        }
        if self.last_verified.holds(&algorithm, data, signature) {
            return Ok(());
        }
        let verified = Verifier::new(algorithm.digest(), &self.pkey).and_then(|mut verifier| {
            verifier.set_rsa_padding(Padding::PKCS1)?;
            verifier.verify_oneshot(signature, data)
        });
        match verified {
            Ok(true) => {
                if data.len() <= MEMO_MAX {
                    self.last_verified.remember(algorithm, data, signature);
                }
                Ok(())
            }
            Ok(false) | Err(_) => Err(CryptoError::BadSignature),
        }
    }

    /// Recovers the message from an X9.31 signature — Salt's
    /// `PublicKey.decrypt` (OpenSSL `RSA_public_decrypt` with
    /// `RSA_X931_PADDING`): r = s^e mod n; if the low nibble of r is not
    /// `0xC`, r = n - r; then the block is checked and the message returned.
    ///
    /// # Errors
    /// [`CryptoError::BadSignature`] if the signature has the wrong length,
    /// is not below the modulus, or does not decode to an X9.31 block.
    pub fn x931_recover(&self, signature: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let k = self.size();
        if signature.len() != k {
            return Err(CryptoError::BadSignature);
        }
        let recover = || -> Result<Vec<u8>, ErrorStack> {
            // OpenSSL refuses s >= n itself ("data too large for modulus")
            let mut raw = vec![0; k];
            self.rsa
                .public_decrypt(signature, &mut raw, Padding::NONE)?;
            let r = BigNum::from_slice(&raw)?;
            let r = if raw.last().is_some_and(|b| b & 0x0f == 0x0c) {
                r
            } else {
                let mut n_minus_r = BigNum::new()?;
                n_minus_r.checked_sub(self.rsa.n(), &r)?;
                n_minus_r
            };
            r.to_vec_padded(i32::try_from(k).unwrap_or(i32::MAX))
        };
        let block = recover().map_err(|_| CryptoError::BadSignature)?;
        x931::unpad(&block)
    }

    /// Checks that `signature` is an X9.31 signature of exactly `msg`
    /// (e.g. the `tok` must recover `b"salt"`).
    ///
    /// # Errors
    /// [`CryptoError::BadSignature`] otherwise.
    pub fn x931_verify(&self, msg: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        if self.last_x931.holds(&(), msg, signature) {
            return Ok(());
        }
        if self.x931_recover(signature)? == msg {
            self.last_x931.remember((), msg, signature);
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// One key for the whole module: generation costs up to a second in debug builds.
    pub(crate) fn key() -> &'static PrivateKey {
        static KEY: OnceLock<PrivateKey> = OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate(PrivateKey::DEFAULT_BITS).unwrap())
    }

    #[test]
    fn pem_round_trip_in_salt_formats() {
        let pem = key().to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END RSA PRIVATE KEY-----\n"));
        let again = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(again.public_key(), key().public_key());

        let public = key().public_key().to_pem().unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(public.ends_with("-----END PUBLIC KEY-----\n"));
        let clean = key().public_key().to_clean_pem().unwrap();
        assert_eq!(clean, public.trim_end());
        // the `pub` field has no final newline; CRLF files also load
        assert_eq!(PublicKey::from_pem(&clean).unwrap(), key().public_key());
        let crlf = public.replace('\n', "\r\n");
        assert_eq!(PublicKey::from_pem(&crlf).unwrap(), key().public_key());
        assert_eq!(
            PrivateKey::from_pem(&pem.replace('\n', "\r\n"))
                .unwrap()
                .public_key(),
            key().public_key()
        );
    }

    #[test]
    fn pkcs1_public_and_pkcs8_private_also_load() {
        let pkcs1_pub =
            String::from_utf8(key().public_key().rsa.public_key_to_pem_pkcs1().unwrap()).unwrap();
        assert!(pkcs1_pub.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&pkcs1_pub).unwrap(), key().public_key());
        let pkcs8 = String::from_utf8(key().pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
        assert_eq!(
            PrivateKey::from_pem(&pkcs8).unwrap().public_key(),
            key().public_key()
        );
    }

    #[test]
    fn an_inconsistent_private_key_is_refused() {
        let other = PrivateKey::generate(1024).unwrap();
        let k = &key().rsa;
        let copy = |b: &BigNumRef| b.to_owned().unwrap();
        let mismatched = Rsa::from_private_components(
            copy(other.rsa.n()),
            copy(k.e()),
            copy(k.d()),
            copy(k.p().unwrap()),
            copy(k.q().unwrap()),
            copy(k.dmp1().unwrap()),
            copy(k.dmq1().unwrap()),
            copy(k.iqmp().unwrap()),
        )
        .unwrap();
        let pem = String::from_utf8(mismatched.private_key_to_pem().unwrap()).unwrap();
        let err = PrivateKey::from_pem(&pem).unwrap_err();
        assert!(err.to_string().contains("p × q is not n"), "{err}");
        assert!(matches!(
            PrivateKey::generate(512),
            Err(CryptoError::KeyGeneration(_))
        ));
    }

    #[test]
    fn clean_key_matches_salt() {
        assert_eq!(clean_key("  a\r\nb\n\nc \n"), "a\nb\n\nc");
        assert_eq!(clean_key("x"), "x");
        assert_eq!(clean_key("\n\n"), "");
    }

    #[test]
    fn oaep_round_trip_and_wrong_key() {
        let public = key().public_key();
        for alg in [
            EncryptionAlgorithm::OaepSha1,
            EncryptionAlgorithm::OaepSha224,
        ] {
            let ct = public.encrypt_with(alg, b"session key string").unwrap();
            assert_eq!(ct.len(), 256);
            assert_eq!(
                &key().decrypt_with(alg, &ct).unwrap()[..],
                b"session key string"
            );
        }
        let ct = public.encrypt(&[7; 214]).unwrap();
        assert_eq!(key().decrypt(&ct).unwrap().len(), 214);
        assert!(public.encrypt(&[7; 215]).is_err());
        let mut tampered = public.encrypt(b"x").unwrap();
        tampered[100] ^= 1;
        assert!(matches!(
            key().decrypt(&tampered),
            Err(CryptoError::Decrypt)
        ));
        assert!(key().decrypt(&[]).is_err());
        assert!(key().decrypt(&[0xff; 256]).is_err());
    }

    #[test]
    fn pkcs1v15_sign_verify() {
        let public = key().public_key();
        let sig = key().sign(b"load bytes").unwrap();
        assert_eq!(sig.len(), 256);
        public.verify(b"load bytes", &sig).unwrap();
        assert!(matches!(
            public.verify(b"load bytez", &sig),
            Err(CryptoError::BadSignature)
        ));
        // the memo of the last good triple never vouches for another one
        public.verify(b"load bytes", &sig).unwrap();
        let mut forged = sig.clone();
        forged[255] ^= 1;
        assert!(public.clone().verify(b"load bytes", &forged).is_err());
        assert!(
            public
                .verify_with(SigningAlgorithm::Pkcs1v15Sha224, b"load bytes", &sig)
                .is_err()
        );
        let sig224 = key()
            .sign_with(SigningAlgorithm::Pkcs1v15Sha224, b"x")
            .unwrap();
        public
            .verify_with(SigningAlgorithm::Pkcs1v15Sha224, b"x", &sig224)
            .unwrap();
        assert!(public.verify(b"x", &sig224).is_err());
        assert!(public.verify(b"x", &[]).is_err());
    }

    #[test]
    fn x931_round_trip_and_min_rule() {
        let public = key().public_key();
        let tok = key().x931_sign(b"salt").unwrap();
        assert_eq!(tok.len(), 256);
        assert_eq!(public.x931_recover(&tok).unwrap(), b"salt");
        public.x931_verify(b"salt", &tok).unwrap();
        assert!(public.x931_verify(b"SALT", &tok).is_err());
        // the memo of the last good pair never vouches for another one
        public.x931_verify(b"salt", &tok).unwrap();
        let mut forged = tok.clone();
        forged[255] ^= 1;
        assert!(public.x931_verify(b"salt", &forged).is_err());
        assert!(public.clone().x931_verify(b"salt", &forged).is_err());
        // deterministic: the memoized tok is identical every time
        assert_eq!(key().x931_sign(b"salt").unwrap(), tok);
        // min(s, n - s): the output is at most half the modulus
        let s = BigNum::from_slice(&tok).unwrap();
        let mut n_minus_s = BigNum::new().unwrap();
        n_minus_s.checked_sub(public.rsa.n(), &s).unwrap();
        assert!(s <= n_minus_s);
        // a 64-char digest (the auth sig) and the longest message (6A form)
        let digest = [b'f'; 64];
        assert_eq!(
            public
                .x931_recover(&key().x931_sign(&digest).unwrap())
                .unwrap(),
            digest
        );
        let longest = vec![0x42; 254];
        assert_eq!(
            public
                .x931_recover(&key().x931_sign(&longest).unwrap())
                .unwrap(),
            longest
        );
        assert!(key().x931_sign(&[0; 253]).is_err());
        assert!(key().x931_sign(&[0; 255]).is_err());
    }

    #[test]
    fn x931_recover_rejects_garbage() {
        let public = key().public_key();
        let bad_inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![1; 255],
            vec![1; 257],
            vec![0xff; 256], // above the modulus
            vec![0; 256],
            {
                let mut v = vec![0; 256];
                v[255] = 1;
                v
            },
        ];
        for bad in &bad_inputs {
            assert!(public.x931_recover(bad).is_err());
        }
        let mut tok = key().x931_sign(b"salt").unwrap();
        tok[10] ^= 0x40;
        assert!(public.x931_recover(&tok).is_err());
    }

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn random_signatures_never_panic() {
        let public = key().public_key();
        let mut next = xorshift(0x1234_5678_9abc_def1);
        for _ in 0..64 {
            let len = if next().is_multiple_of(4) {
                usize::try_from(next() % 300).unwrap()
            } else {
                256
            };
            let sig: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            // a random 256-byte value decodes to a valid block with negligible probability
            assert!(public.x931_recover(&sig).is_err());
            assert!(public.verify(b"x", &sig).is_err());
            assert!(key().decrypt(&sig).is_err());
        }
    }

    #[test]
    fn random_pem_never_panics() {
        let mut next = xorshift(0xdead_beef_cafe_f00d);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n-";
        let armors = [
            ("-----BEGIN PUBLIC KEY-----\n", "\n-----END PUBLIC KEY-----"),
            (
                "-----BEGIN RSA PUBLIC KEY-----\n",
                "\n-----END RSA PUBLIC KEY-----",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\n",
                "\n-----END RSA PRIVATE KEY-----",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n",
                "\n-----END PRIVATE KEY-----",
            ),
            ("", ""),
        ];
        for round in 0..2000 {
            let len = usize::try_from(next() % 400).unwrap();
            let body: String = (0..len)
                .map(|_| {
                    let i = usize::try_from(next()).unwrap() % alphabet.len();
                    char::from(alphabet[i])
                })
                .collect();
            let (head, tail) = armors[round % armors.len()];
            let pem = format!("{head}{body}{tail}");
            assert!(PublicKey::from_pem(&pem).is_err());
            assert!(PrivateKey::from_pem(&pem).is_err());
        }
        // valid armor around a truncated real key
        let real = key().public_key().to_pem().unwrap();
        for cut in (30..real.len()).step_by(7) {
            let _ = PublicKey::from_pem(&real[..cut]);
        }
    }

    #[test]
    fn algorithm_names() {
        for alg in [
            EncryptionAlgorithm::OaepSha1,
            EncryptionAlgorithm::OaepSha224,
        ] {
            assert_eq!(alg.name().parse::<EncryptionAlgorithm>().unwrap(), alg);
        }
        for alg in [
            SigningAlgorithm::Pkcs1v15Sha1,
            SigningAlgorithm::Pkcs1v15Sha224,
        ] {
            assert_eq!(alg.name().parse::<SigningAlgorithm>().unwrap(), alg);
        }
        assert!(matches!(
            "OAEP-MD5".parse::<EncryptionAlgorithm>(),
            Err(CryptoError::UnknownAlgorithm(_))
        ));
        assert!("PSS".parse::<SigningAlgorithm>().is_err());
    }

    #[test]
    fn garbage_pem_is_an_error() {
        let cases = [
            "",
            "hello",
            "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----",
        ];
        for pem in cases {
            assert!(PublicKey::from_pem(pem).is_err(), "{pem}");
            assert!(PrivateKey::from_pem(pem).is_err(), "{pem}");
        }
        // a public key is not a private key and vice versa
        let public = key().public_key().to_pem().unwrap();
        assert!(PrivateKey::from_pem(&public).is_err());
        assert!(PublicKey::from_pem(&key().to_pem().unwrap()).is_err());
        assert!(format!("{:?}", key()).starts_with("PrivateKey { bits: 2048"));
    }
}
