//! The minion side of `_auth` (`salt/crypt.py:AsyncAuth`).

use std::fmt;

use bytes::Bytes;

use super::AuthError;
use crate::crypto::{
    Crypticle, EncryptionAlgorithm, PrivateKey, PublicKey, SigningAlgorithm, Zeroizing, sha256_hex,
};
use crate::envelope::package_clear;
use crate::keys::validate_minion_id;
use crate::serial::{Serialization, Value};

/// Separator of the `auth_mode >= 2` form of `aes`: `<aes>_|-<token>`.
const AES_TOKEN_SEPARATOR: &str = "_|-";

/// One sign-in attempt: the clear `_auth` load and what is needed to check
/// the answer. Build it with [`AuthRequest::new`], send
/// [`AuthRequest::to_frame`], then pass the reply to [`handle_signin_response`].
pub struct AuthRequest {
    id: String,
    nonce: String,
    token: Option<Zeroizing<String>>,
    master_pub: Option<PublicKey>,
    enc_algo: EncryptionAlgorithm,
    sig_algo: SigningAlgorithm,
    serial: Serialization,
    load: Value,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("id", &self.id)
            .field("knows_master", &self.master_pub.is_some())
            .finish_non_exhaustive()
    }
}

impl AuthRequest {
    /// The `_auth` load of `minion_sign_in_payload`, with a fresh token:
    /// `cmd`, `id`, `nonce`, `enc_algo`, `sig_algo`, then `token` (the
    /// token OAEP-encrypted to the master, only when `master_pub` — the
    /// contents of `minion_master.pub` — is known) and `pub` (our key,
    /// [`clean_key`](crate::crypto::clean_key) form).
    ///
    /// # Errors
    /// [`AuthError::InvalidId`], or [`AuthError::Crypto`] for an unusable
    /// master key, an RNG failure or a key that cannot be encoded.
    pub fn new(
        id: &str,
        minion_key: &PrivateKey,
        master_pub: Option<&str>,
        nonce: &str,
    ) -> Result<AuthRequest, AuthError> {
        let token = Crypticle::generate_key_string()?;
        AuthRequest::with_token(id, minion_key, master_pub, nonce, &token)
    }

    /// [`AuthRequest::new`] with a caller-held token (Salt keeps one token
    /// per `AsyncAuth` and reuses it across retries).
    ///
    /// # Errors
    /// As [`AuthRequest::new`].
    pub fn with_token(
        id: &str,
        minion_key: &PrivateKey,
        master_pub: Option<&str>,
        nonce: &str,
        token: &str,
    ) -> Result<AuthRequest, AuthError> {
        validate_minion_id(id).map_err(|_| AuthError::InvalidId)?;
        let master_pub = master_pub.map(PublicKey::from_pem).transpose()?;
        let mut request = AuthRequest {
            id: id.to_owned(),
            nonce: nonce.to_owned(),
            token: master_pub
                .is_some()
                .then(|| Zeroizing::new(token.to_owned())),
            master_pub,
            enc_algo: EncryptionAlgorithm::default(),
            sig_algo: SigningAlgorithm::default(),
            serial: Serialization::Msgpack,
            load: Value::Nil,
        };
        request.load = request.build_load(minion_key, None)?;
        Ok(request)
    }

    /// Adds `autosign_grains` (the configured grains' values) to the load.
    ///
    /// # Errors
    /// As [`AuthRequest::new`].
    pub fn with_autosign_grains(
        mut self,
        minion_key: &PrivateKey,
        grains: Value,
    ) -> Result<AuthRequest, AuthError> {
        self.load = self.build_load(minion_key, Some(grains))?;
        Ok(self)
    }

    /// Announces this minion's `serial` (Brine): the load gets a `serial`
    /// key unless it is msgpack, so a default request stays Salt's byte for
    /// byte. [`handle_signin_response`] then holds the master to the same choice.
    pub fn with_serialization(mut self, serial: Serialization) -> AuthRequest {
        self.serial = serial;
        if serial == Serialization::Msgpack {
            self.load.remove("serial");
        } else {
            self.load.insert("serial", serial.name());
        }
        self
    }

    /// The serialization this request announces.
    pub fn serial(&self) -> Serialization {
        self.serial
    }

    fn build_load(
        &self,
        minion_key: &PrivateKey,
        grains: Option<Value>,
    ) -> Result<Value, AuthError> {
        let mut load: Vec<(Value, Value)> = vec![
            ("cmd".into(), "_auth".into()),
            ("id".into(), self.id.as_str().into()),
            ("nonce".into(), self.nonce.as_str().into()),
            ("enc_algo".into(), self.enc_algo.name().into()),
            ("sig_algo".into(), self.sig_algo.name().into()),
        ];
        if let Some(grains) = grains {
            load.push(("autosign_grains".into(), grains));
        }
        if let (Some(master), Some(token)) = (&self.master_pub, &self.token) {
            let sealed = master.encrypt_with(self.enc_algo, token.as_bytes())?;
            load.push(("token".into(), Value::Bytes(sealed)));
        }
        let public = minion_key.public_key().to_clean_pem()?;
        load.push(("pub".into(), public.into()));
        if self.serial != Serialization::Msgpack {
            load.push(("serial".into(), self.serial.name().into()));
        }
        Ok(Value::Map(load))
    }

    /// The clear `_auth` load.
    pub fn load(&self) -> &Value {
        &self.load
    }

    /// The nonce the reply must echo.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The request frame (`{"enc": "clear", "load": …, "version": 3}`).
    ///
    /// # Errors
    /// [`AuthError::Pack`] if the load cannot be packed.
    pub fn to_frame(&self) -> Result<Bytes, AuthError> {
        package_clear(self.load.clone()).map_err(|e| match e {
            crate::envelope::EnvelopeError::Pack(source) => AuthError::Pack(source),
            _ => AuthError::Malformed {
                what: "request load",
            },
        })
    }
}

/// The session credentials an accepted minion keeps. Debug output is redacted.
pub struct Credentials {
    /// The master's AES key string (for publishes).
    pub aes: Zeroizing<String>,
    /// This minion's session key string (for v3 requests and replies).
    pub session: Zeroizing<String>,
    /// The master's publish port.
    pub publish_port: u16,
    /// On first contact, the master's public key (clean form) to write to
    /// `minion_master.pub`; `None` when it was already known.
    pub new_master_pub: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("publish_port", &self.publish_port)
            .field("new_master_pub", &self.new_master_pub.is_some())
            .finish_non_exhaustive()
    }
}

/// The master's answer to `_auth`.
#[derive(Debug)]
pub enum AuthOutcome {
    /// Accepted, with the keys to use.
    Accepted(Credentials),
    /// The key waits for acceptance: retry after `acceptance_wait_time`.
    Pending,
    /// The key was rejected or denied (Salt's minion exits with 77 unless
    /// `rejected_retry`).
    Rejected,
    /// The master has `max_minions` connected: retry later.
    Full,
}

fn malformed(what: &'static str) -> AuthError {
    AuthError::Malformed { what }
}

fn bytes_of<'a>(map: &'a Value, key: &'static str) -> Result<&'a [u8], AuthError> {
    map.get(key).and_then(Value::as_bytes).ok_or(malformed(key))
}

/// Python truthiness, for `ret`.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::UInt(u) => *u != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Bytes(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Ext(..) => true,
    }
}

/// Checks the master's reply to `request` as `AsyncAuth.handle_signin_response`
/// and `verify_master` do:
///
/// * `"bad enc algo"` / `"bad sig algo"` → [`AuthError::BadAlgorithm`];
/// * the reply's `load` is msgpack bytes, signed (`sig`, PKCS#1 v1.5) by
///   the master: the signature is checked with `minion_master.pub`
///   whenever it is known, and on first contact with the key the master
///   presents (trust on first use, as Salt writes that key and then checks);
/// * with `pub_key` (accepted): a known master key must equal it
///   ([`AuthError::MasterKeyChanged`]); `aes` and `session` are decrypted
///   with our key; `sig` must X9.31-recover the SHA-256 hex of the AES key;
///   if we sent a token, the echoed `token` must decrypt to it;
/// * the `nonce` must be ours;
/// * `ret`: (Brine) `"bad serial"` → [`AuthError::SerialMismatch`] naming
///   the master's `serial`; falsy → [`AuthOutcome::Rejected`], `"full"` →
///   [`AuthOutcome::Full`], other → [`AuthOutcome::Pending`];
/// * accepted: (Brine) the master's `serial` (none: msgpack) must be the
///   one the request announced ([`AuthError::SerialMismatch`]).
///
/// # Errors
/// An [`AuthError`] naming the failed check; nothing is to be written then.
pub fn handle_signin_response(
    reply: &Value,
    request: &AuthRequest,
    minion_key: &PrivateKey,
) -> Result<AuthOutcome, AuthError> {
    let load = reply.get("load").ok_or(malformed("reply"))?;
    if let Some(ret) = load.get("ret").and_then(Value::as_str)
        && matches!(ret, "bad enc algo" | "bad sig algo")
    {
        return Err(AuthError::BadAlgorithm(ret.to_owned()));
    }
    let signed = load.as_bytes().ok_or(malformed("load"))?;
    let signature = bytes_of(reply, "sig")?;
    let inner = Value::decode(signed).map_err(|_| malformed("load"))?;
    if !matches!(inner, Value::Map(_)) {
        return Err(malformed("load"));
    }

    // Which master key to trust: the stored one, or (first contact) the
    // presented one.
    let presented = match inner.get("pub_key") {
        Some(pem) => Some(pem.as_str().ok_or(malformed("pub_key"))?),
        None => None,
    };
    if presented.is_some() && inner.contains_key("pub_sig") {
        return Err(AuthError::UnverifiedMasterKeySignature);
    }
    let mut new_master_pub = None;
    let presented_key = presented.map(PublicKey::from_pem).transpose()?;
    let master = match (&request.master_pub, presented_key) {
        (Some(known), Some(presented)) if *known != presented => {
            return Err(AuthError::MasterKeyChanged);
        }
        (Some(known), _) => Some(known.clone()),
        (None, Some(key)) => {
            new_master_pub = presented.map(str::to_owned);
            Some(key)
        }
        (None, None) => None,
    };
    if let Some(master) = &master {
        master
            .verify_with(request.sig_algo, signed, signature)
            .map_err(|_| AuthError::BadSignature)?;
    }
    if inner.get("nonce").and_then(Value::as_str) != Some(request.nonce.as_str()) {
        return Err(AuthError::NonceMismatch);
    }
    let master_serial = match inner.get("serial") {
        None => Serialization::Msgpack,
        Some(name) => name
            .as_str()
            .and_then(|n| n.parse().ok())
            .ok_or(malformed("serial"))?,
    };
    let mismatch = AuthError::SerialMismatch {
        master: master_serial,
        minion: request.serial,
    };
    if let Some(ret) = inner.get("ret") {
        if ret.as_str() == Some(super::BAD_SERIAL) {
            return Err(mismatch);
        }
        return Ok(if !is_truthy(ret) {
            AuthOutcome::Rejected
        } else if ret.as_str() == Some("full") {
            AuthOutcome::Full
        } else {
            AuthOutcome::Pending
        });
    }
    if master_serial != request.serial {
        return Err(mismatch);
    }
    let master = master.ok_or(malformed("pub_key"))?;
    let (aes, session) = extract_keys(&inner, request, minion_key, &master)?;
    let publish_port = inner
        .get("publish_port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(malformed("publish_port"))?;
    Ok(AuthOutcome::Accepted(Credentials {
        aes,
        session,
        publish_port,
        new_master_pub,
    }))
}

/// `decrypt_aes` + `extract_aes` + the session key.
fn extract_keys(
    inner: &Value,
    request: &AuthRequest,
    minion_key: &PrivateKey,
    master: &PublicKey,
) -> Result<(Zeroizing<String>, Zeroizing<String>), AuthError> {
    let decrypt = |key: &'static str| -> Result<Zeroizing<String>, AuthError> {
        let plain = minion_key.decrypt_with(request.enc_algo, bytes_of(inner, key)?)?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| malformed(key))
    };
    let aes_field = decrypt("aes")?;
    let sig = inner
        .get("sig")
        .and_then(Value::as_bytes)
        .ok_or(AuthError::BadAesSignature)?;
    let digest = master
        .x931_recover(sig)
        .map_err(|_| AuthError::BadAesSignature)?;
    if digest != sha256_hex(aes_field.as_bytes()).as_bytes() {
        return Err(AuthError::BadAesSignature);
    }
    let (aes, echoed) = match aes_field.split_once(AES_TOKEN_SEPARATOR) {
        Some((aes, token)) => (
            Zeroizing::new(aes.to_owned()),
            Some(Zeroizing::new(token.to_owned())),
        ),
        None => (aes_field.clone(), None),
    };
    if let Some(sent) = &request.token {
        let echoed = match echoed {
            Some(token) => token,
            None => decrypt("token").map_err(|_| AuthError::TokenMismatch)?,
        };
        if echoed.as_bytes() != sent.as_bytes() {
            return Err(AuthError::TokenMismatch);
        }
    }
    let session = decrypt("session")?;
    Crypticle::new(&aes)?;
    Crypticle::new(&session)?;
    Ok((aes, session))
}
