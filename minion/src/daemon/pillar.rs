//! The `_pillar` request of the start-up sequence and its private reply
//! (reference §9: `server.py:_encrypt_private`,
//! `client.py:crypted_transfer_decode_dictentry`).

use brine_protocol::crypto::CryptoError;
use brine_protocol::envelope::{EnvelopeError, open_aes_reply};
use brine_protocol::{Crypticle, PrivateKey, Value};

use super::channel::Session;

/// The `_pillar` load (`ver: "2"`): it carries the minion's grains, which
/// the master caches for grain targeting.
pub(crate) fn pillar_load(id: &str, grains: &Value) -> Value {
    Value::Map(vec![
        (Value::from("cmd"), Value::from("_pillar")),
        (Value::from("id"), Value::from(id)),
        (Value::from("grains"), grains.clone()),
        (Value::from("saltenv"), Value::Nil),
        (Value::from("pillarenv"), Value::Nil),
        (Value::from("pillar_override"), Value::map()),
        (Value::from("extra_minion_data"), Value::map()),
        (Value::from("ver"), Value::from("2")),
    ])
}

fn malformed(what: &'static str) -> EnvelopeError {
    EnvelopeError::Malformed { what }
}

/// Reads the master's answer to `_pillar`:
///
/// * Salt's private reply `{"key": OAEP(minion pub, K), "pillar":
///   Crypticle(K).dumps({"data": D, "sig": PKCS1v15(master, D)})}` with
///   `D = msgpack({"key", "pillar", "nonce"})`: the key is decrypted with
///   our private key, the signature checked with `minion_master.pub`, and
///   `D.key` and `D.nonce` must be the reply's key and our nonce (the body
///   and `D` are packed with the session's `serial`, msgpack by default);
/// * an ordinary session-key reply (a byte string), as a master without
///   private pillar may send;
/// * nil or an empty map: no pillar.
///
/// # Errors
/// [`EnvelopeError::Crypto`] when a key, signature or nonce does not
/// check out; [`EnvelopeError::Malformed`] for anything else.
pub(crate) fn open_pillar_reply(
    frame: &[u8],
    session: &Session,
    nonce: &str,
    minion_key: &PrivateKey,
) -> Result<Value, EnvelopeError> {
    let reply = Value::decode(frame).map_err(|_| malformed("pillar reply is not msgpack"))?;
    match &reply {
        Value::Nil => return Ok(Value::map()),
        Value::Map(entries) if entries.is_empty() => return Ok(Value::map()),
        Value::Map(_) => {}
        _ => return open_aes_reply(frame, &session.session, nonce),
    }
    let sealed_key = reply
        .get("key")
        .and_then(Value::as_bytes)
        .ok_or(malformed("pillar reply key"))?;
    let ciphertext = reply
        .get("pillar")
        .and_then(Value::as_bytes)
        .ok_or(malformed("pillar reply pillar"))?;
    let key = minion_key
        .decrypt(sealed_key)
        .map_err(EnvelopeError::Crypto)?;
    let key = std::str::from_utf8(&key).map_err(|_| malformed("pillar key"))?;
    // Packed with the session's serialization, as everything inside the AES layer.
    let serial = session.session.serialization();
    let signed = Crypticle::new(key)
        .and_then(|c| c.with_serialization(serial).loads(ciphertext, None))
        .map_err(EnvelopeError::Crypto)?;
    let data = signed
        .get("data")
        .and_then(Value::as_bytes)
        .ok_or(malformed("pillar data"))?;
    let sig = signed
        .get("sig")
        .and_then(Value::as_bytes)
        .ok_or(malformed("pillar sig"))?;
    session
        .master_pub
        .verify(data, sig)
        .map_err(EnvelopeError::Crypto)?;
    let inner = serial
        .decode_value(data)
        .map_err(|_| malformed("pillar data does not unpack"))?;
    if inner.get("key").and_then(Value::as_bytes) != Some(sealed_key) {
        return Err(malformed("pillar key does not match"));
    }
    if inner.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(EnvelopeError::Crypto(CryptoError::NonceMismatch));
    }
    Ok(match inner.get("pillar") {
        Some(Value::Map(entries)) => Value::Map(entries.clone()),
        _ => Value::map(),
    })
}

#[cfg(test)]
mod tests {
    use brine_protocol::envelope::seal_private_pillar;
    use brine_protocol::{Serialization, crypto::gen_nonce};

    use super::*;

    fn session(master: &PrivateKey, serial: Serialization) -> Session {
        let key = |c: Crypticle| c.with_serialization(serial);
        Session {
            aes: key(Crypticle::generate().unwrap()),
            session: key(Crypticle::generate().unwrap()),
            publish_port: 4505,
            master_pub: master.public_key(),
            generation: 1,
        }
    }

    #[test]
    fn private_pillar_follows_the_session_serialization() {
        let master = PrivateKey::generate(1024).unwrap();
        let minion = PrivateKey::generate(1024).unwrap();
        let nonce = gen_nonce().unwrap();
        let pillar: Value = [("role", Value::from("web"))].into_iter().collect();
        for serial in Serialization::ALL {
            let reply = seal_private_pillar(&pillar, &minion.public_key(), &master, &nonce, serial)
                .unwrap();
            let frame = reply.to_channel_bytes().unwrap();
            let opened =
                open_pillar_reply(&frame, &session(&master, serial), &nonce, &minion).unwrap();
            assert_eq!(opened, pillar, "{serial}");
            let other = match serial {
                Serialization::Msgpack => Serialization::Bincode,
                _ => Serialization::Msgpack,
            };
            assert!(
                open_pillar_reply(&frame, &session(&master, other), &nonce, &minion).is_err(),
                "{serial} read as {other}"
            );
        }
    }
}
