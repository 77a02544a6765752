//! The private pillar reply (`_pillar` with `ver: "2"`), as Salt's
//! `ReqServerChannel._encrypt_private` builds it and
//! `crypted_transfer_decode_dictentry` reads it.
//!
//! ```text
//! reply  = {"key": OAEP(minion pub, K), "pillar": Crypticle(K).dumps(signed)}
//! signed = {"data": D, "sig": PKCS1v15-SHA1(master key, D)}
//! D      = msgpack({"key": <reply.key bytes>, "pillar": {…}, "nonce": <request nonce>})
//! ```
//!
//! `K` is a fresh key string per reply. The reply travels in clear (it is
//! not wrapped with the session key). Both the body and `D` are packed with
//! the session's [`Serialization`] (msgpack unless both peers use
//! `serial: bincode`), like everything else inside the AES layer.

use super::{EnvelopeError, entry};
use crate::crypto::{Crypticle, CryptoError, PrivateKey, PublicKey};
use crate::serial::{Serialization, Value};

/// Builds the private pillar reply for `pillar` (Salt sends `{}` for
/// `False`), encrypted to `minion_pub`, signed with `master_key` and bound
/// to the request's `nonce`; packed with `serial` (the session's).
///
/// # Errors
/// [`EnvelopeError::Crypto`] if key generation, encryption or signing
/// fails, [`EnvelopeError::Pack`] if the pillar cannot be packed.
pub fn seal_private_pillar(
    pillar: &Value,
    minion_pub: &PublicKey,
    master_key: &PrivateKey,
    nonce: &str,
    serial: Serialization,
) -> Result<Value, EnvelopeError> {
    let pillar = match pillar {
        Value::Bool(false) | Value::Nil => Value::map(),
        other => other.clone(),
    };
    let key_string = Crypticle::generate_key_string().map_err(EnvelopeError::Crypto)?;
    let pcrypt = Crypticle::new(&key_string)
        .map_err(EnvelopeError::Crypto)?
        .with_serialization(serial);
    let sealed_key = minion_pub
        .encrypt(key_string.as_bytes())
        .map_err(EnvelopeError::Crypto)?;
    let data = Value::Map(vec![
        entry("key", Value::Bytes(sealed_key.clone())),
        entry("pillar", pillar),
        entry("nonce", nonce),
    ]);
    let data = serial.encode_value(&data).map_err(EnvelopeError::Pack)?;
    let sig = master_key.sign(&data).map_err(EnvelopeError::Crypto)?;
    let signed = Value::Map(vec![
        entry("data", Value::Bytes(data)),
        entry("sig", Value::Bytes(sig)),
    ]);
    let body = pcrypt.dumps(&signed, None).map_err(|e| match e {
        CryptoError::Pack(source) => EnvelopeError::Pack(source),
        other => EnvelopeError::Crypto(other),
    })?;
    Ok(Value::Map(vec![
        entry("key", Value::Bytes(sealed_key)),
        entry("pillar", Value::Bytes(body)),
    ]))
}

/// Opens a private pillar reply on the minion: decrypts the one-time key
/// with `minion_key`, decrypts the body, verifies the master's signature
/// with `master_pub`, and checks that the signed key and nonce are the
/// reply's and the request's. Returns the pillar. `serial` is the session's
/// serialization, as the master used it in [`seal_private_pillar`].
///
/// # Errors
/// [`EnvelopeError::Malformed`] for a reply without `key` (Salt's cue to
/// re-authenticate) or with the wrong shape, [`EnvelopeError::Crypto`] for
/// a key or body that does not decrypt or a signature that does not
/// verify, [`EnvelopeError::Refused`] when the signed key or nonce differ.
pub fn open_private_pillar(
    reply: &Value,
    minion_key: &PrivateKey,
    master_pub: &PublicKey,
    nonce: &str,
    serial: Serialization,
) -> Result<Value, EnvelopeError> {
    let malformed = |what| EnvelopeError::Malformed { what };
    let sealed_key = reply
        .get("key")
        .and_then(Value::as_bytes)
        .ok_or(malformed("private reply has no key"))?;
    let body = reply
        .get("pillar")
        .and_then(Value::as_bytes)
        .ok_or(malformed("private reply has no pillar"))?;
    let key_string = minion_key
        .decrypt(sealed_key)
        .map_err(EnvelopeError::Crypto)?;
    let key_string =
        std::str::from_utf8(&key_string).map_err(|_| malformed("pillar key is not text"))?;
    let pcrypt = Crypticle::new(key_string)
        .map_err(EnvelopeError::Crypto)?
        .with_serialization(serial);
    let signed = pcrypt.loads(body, None).map_err(EnvelopeError::Crypto)?;
    let data = signed
        .get("data")
        .and_then(Value::as_bytes)
        .ok_or(malformed("signed pillar has no data"))?;
    let sig = signed
        .get("sig")
        .and_then(Value::as_bytes)
        .ok_or(malformed("signed pillar has no sig"))?;
    master_pub
        .verify(data, sig)
        .map_err(EnvelopeError::Crypto)?;
    let mut data = serial
        .decode_value(data)
        .map_err(|_| malformed("signed pillar data does not unpack"))?;
    if data.get("key").and_then(Value::as_bytes) != Some(sealed_key) {
        return Err(EnvelopeError::Refused(
            "pillar key verification failed".into(),
        ));
    }
    if data.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(EnvelopeError::Refused(
            "pillar nonce verification failed".into(),
        ));
    }
    Ok(data.remove("pillar").unwrap_or_else(Value::map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::gen_nonce;

    #[test]
    fn private_pillar_round_trips_and_binds_nonce_and_key() {
        let master = PrivateKey::generate(1024).unwrap();
        let minion = PrivateKey::generate(1024).unwrap();
        let nonce = gen_nonce().unwrap();
        let pillar: Value = [("role", Value::from("web"))].into_iter().collect();
        for serial in Serialization::ALL {
            let seal = |p: &Value| {
                seal_private_pillar(p, &minion.public_key(), &master, &nonce, serial).unwrap()
            };
            let open = |reply: &Value, master_pub: &PublicKey, nonce: &str| {
                open_private_pillar(reply, &minion, master_pub, nonce, serial)
            };
            assert_eq!(
                open(&seal(&pillar), &master.public_key(), &nonce).unwrap(),
                pillar
            );

            // False travels as {}.
            let reply = seal(&Value::Bool(false));
            let opened = open(&reply, &master.public_key(), &nonce).unwrap();
            assert_eq!(opened, Value::map());

            // Another nonce, another master, a reply without key: refused.
            let other_nonce = gen_nonce().unwrap();
            assert!(open(&reply, &master.public_key(), &other_nonce).is_err());
            let impostor = PrivateKey::generate(1024).unwrap();
            assert!(open(&reply, &impostor.public_key(), &nonce).is_err());
            let mut keyless = reply.clone();
            keyless.remove("key");
            assert!(matches!(
                open(&keyless, &master.public_key(), &nonce),
                Err(EnvelopeError::Malformed { .. })
            ));
        }
        // The other serialization cannot open it.
        let reply = seal_private_pillar(
            &pillar,
            &minion.public_key(),
            &master,
            &nonce,
            Serialization::Bincode,
        )
        .unwrap();
        assert!(matches!(
            open_private_pillar(
                &reply,
                &minion,
                &master.public_key(),
                &nonce,
                Serialization::Msgpack
            ),
            Err(EnvelopeError::Crypto(CryptoError::Payload(_)))
        ));
    }
}
