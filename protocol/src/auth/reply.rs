//! The master side of `_auth`: reading the request and building the
//! signed reply (`ReqServerChannel._auth` / `_clear_signed`).

use super::{AuthAct, AuthError, Decision};
use crate::crypto::{EncryptionAlgorithm, PrivateKey, PublicKey, SigningAlgorithm, sha256_hex};
use crate::serial::{Serialization, Value, to_channel_bytes};

/// A minion's `_auth` load as the master reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthLoad {
    /// The id it claims (validated by [`decide`](super::decide)).
    pub id: String,
    /// The public key it presents, as sent.
    pub pub_pem: String,
    /// The nonce to echo in the signed reply.
    pub nonce: String,
    /// `enc_algo` as sent (`OAEP-SHA1` when absent).
    pub enc_algo: String,
    /// `sig_algo` as sent (`PKCS1v15-SHA1` when absent).
    pub sig_algo: String,
    /// The minion's token, OAEP-encrypted to the master, if it knew the
    /// master's key.
    pub token: Option<Vec<u8>>,
    /// `autosign_grains`, if sent (for the caller's autosign check).
    pub autosign_grains: Option<Value>,
    /// (Brine) `serial`, as sent: a Brine minion sends it only when it is
    /// not msgpack, so `None` means msgpack (and every stock Salt minion).
    pub serial: Option<String>,
}

fn malformed(what: &'static str) -> AuthError {
    AuthError::Malformed { what }
}

impl AuthLoad {
    /// Reads a clear `_auth` load.
    ///
    /// # Errors
    /// [`AuthError::Malformed`] unless `id`, `pub` and `nonce` are text
    /// (a v3 reply must echo the nonce), `token`, if present, is bytes and
    /// `serial`, if present, is text.
    pub fn parse(load: &Value) -> Result<AuthLoad, AuthError> {
        let text = |key: &'static str| {
            load.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(malformed(key))
        };
        let optional_text = |key: &'static str, default: &str| match load.get(key) {
            None => Ok(default.to_owned()),
            Some(v) => v.as_str().map(str::to_owned).ok_or(malformed(key)),
        };
        let token = match load.get("token") {
            None => None,
            Some(t) => Some(t.as_bytes().ok_or(malformed("token"))?.to_vec()),
        };
        Ok(AuthLoad {
            id: text("id")?,
            pub_pem: text("pub")?,
            nonce: text("nonce")?,
            enc_algo: optional_text("enc_algo", EncryptionAlgorithm::default().name())?,
            sig_algo: optional_text("sig_algo", SigningAlgorithm::default().name())?,
            token,
            autosign_grains: load.get("autosign_grains").cloned(),
            serial: match load.get("serial") {
                None => None,
                Some(v) => Some(v.as_str().ok_or(malformed("serial"))?.to_owned()),
            },
        })
    }
}

/// The unsigned reply Salt sends when it cannot use the requested
/// algorithm: `{"enc": "clear", "load": {"ret": "bad enc algo"}}` (or `bad sig algo`).
fn bad_algorithm(ret: &str) -> Value {
    [
        ("enc", Value::from("clear")),
        ("load", [("ret", Value::from(ret))].into_iter().collect()),
    ]
    .into_iter()
    .collect()
}

/// `_clear_signed`: `{"enc": "clear", "load": msgpack(inner), "sig": PKCS1v15(load)}`.
fn clear_signed(
    inner: &Value,
    master_key: &PrivateKey,
    algorithm: SigningAlgorithm,
) -> Result<Value, AuthError> {
    let packed = to_channel_bytes(inner).map_err(AuthError::Pack)?;
    let sig = master_key.sign_with(algorithm, &packed)?;
    Ok([
        ("enc", Value::from("clear")),
        ("load", Value::Bytes(packed)),
        ("sig", Value::Bytes(sig)),
    ]
    .into_iter()
    .collect())
}

/// Builds the master's reply to `request` for `decision`, as Salt 3007
/// does for a v3 request (always signed):
///
/// * not accepted: `{"enc": "clear", "load": msgpack({"ret": …, "nonce"}), "sig"}`
///   with `ret` from [`Decision::ret`]; (Brine) a [`AuthAct::SerialMismatch`]
///   adds `"serial"`, the master's [`Decision::serial`];
/// * accepted: the same wrapping around `{"enc": "pub", "pub_key",
///   "publish_port", ["token",] "aes", "session", "sig", "nonce"}` where
///   `aes`, `session` and the re-encrypted `token` are OAEP-encrypted to
///   the minion's key and `sig` is the X9.31 signature of the AES key
///   string's SHA-256 hex. A token that does not decrypt is left out (the
///   minion will then refuse, as with Salt); a `pub` that does not parse
///   gets `ret: false`; (Brine) a `serial` key follows when the master's is
///   not msgpack, so a minion can tell it talks to a master that agrees;
/// * an unknown `sig_algo` (or, when accepting, `enc_algo`) gets the
///   unsigned `"bad sig algo"` / `"bad enc algo"` reply.
///
/// Seal the value with [`seal_clear_reply`](crate::envelope::seal_clear_reply).
///
/// # Errors
/// [`AuthError::Crypto`] / [`AuthError::Pack`] if signing, encryption or
/// packing fails on the master's side.
pub fn build_auth_reply(
    decision: &Decision,
    request: &AuthLoad,
    master_key: &PrivateKey,
    aes_key: &str,
    session_key: &str,
    publish_port: u16,
) -> Result<Value, AuthError> {
    let Ok(sig_algo) = request.sig_algo.parse::<SigningAlgorithm>() else {
        return Ok(bad_algorithm("bad sig algo"));
    };
    let refuse = |ret: Value| {
        let mut inner: Value = [("ret", ret), ("nonce", Value::from(request.nonce.as_str()))]
            .into_iter()
            .collect();
        if decision.act == AuthAct::SerialMismatch {
            inner.insert("serial", decision.serial.name());
        }
        clear_signed(&inner, master_key, sig_algo)
    };
    if decision.act != AuthAct::Accept {
        return refuse(decision.ret());
    }
    let Ok(enc_algo) = request.enc_algo.parse::<EncryptionAlgorithm>() else {
        return Ok(bad_algorithm("bad enc algo"));
    };
    let Ok(minion_pub) = PublicKey::from_pem(&request.pub_pem) else {
        return refuse(Value::from(false));
    };
    let mut inner = vec![
        ("enc".into(), Value::from("pub")),
        (
            "pub_key".into(),
            master_key.public_key().to_clean_pem()?.into(),
        ),
        ("publish_port".into(), Value::from(publish_port)),
    ];
    if let Some(sealed) = &request.token
        && let Ok(token) = master_key.decrypt_with(enc_algo, sealed)
    {
        let resealed = minion_pub.encrypt_with(enc_algo, &token)?;
        inner.push(("token".into(), Value::Bytes(resealed)));
    }
    let aes = minion_pub.encrypt_with(enc_algo, aes_key.as_bytes())?;
    let session = minion_pub.encrypt_with(enc_algo, session_key.as_bytes())?;
    let digest = sha256_hex(aes_key.as_bytes());
    let sig = master_key.x931_sign(digest.as_bytes())?;
    inner.push(("aes".into(), Value::Bytes(aes)));
    inner.push(("session".into(), Value::Bytes(session)));
    inner.push(("sig".into(), Value::Bytes(sig)));
    inner.push(("nonce".into(), request.nonce.as_str().into()));
    if decision.serial != Serialization::Msgpack {
        inner.push(("serial".into(), decision.serial.name().into()));
    }
    clear_signed(&Value::Map(inner), master_key, sig_algo)
}
