//! Everything the minion must refuse.

use super::*;
use crate::crypto::PrivateKey;
use crate::envelope::tests::{map, master_key, minion_key, other_key};
use crate::serial::{Value, to_channel_bytes};

/// Re-signs an edited inner load, as a master with `key` would.
fn resign(inner: &Value, key: &PrivateKey) -> Value {
    let packed = to_channel_bytes(inner).unwrap();
    let sig = key.sign(&packed).unwrap();
    map([
        ("enc", "clear".into()),
        ("load", Value::Bytes(packed)),
        ("sig", Value::Bytes(sig)),
    ])
}

fn accepted_inner(master: &Master, request: &AuthRequest) -> Value {
    let (_, reply) = master.answer(request, &KeyOnFile::Accepted(minion_pem()), master_key());
    Value::decode(reply.get("load").unwrap().as_bytes().unwrap()).unwrap()
}

#[test]
fn the_minion_refuses_every_bad_reply() {
    let master = Master::new(AuthPolicy::default());
    let request = known_master();
    let check = |reply: &Value, want: fn(&AuthError) -> bool| {
        let err = handle_signin_response(reply, &request, minion_key()).unwrap_err();
        assert!(want(&err), "{err:?}");
    };
    // another master (its own key, correctly signed): the key changed
    let (_, impostor) = master.answer(&request, &KeyOnFile::Accepted(minion_pem()), other_key());
    check(&impostor, |e| matches!(e, AuthError::MasterKeyChanged));
    // a pending reply signed by another key
    let (_, forged) = master.answer(&request, &KeyOnFile::None, other_key());
    check(&forged, |e| matches!(e, AuthError::BadSignature));
    // tampered signature
    let (_, mut reply) = master.answer(&request, &KeyOnFile::None, master_key());
    reply.insert("sig", Value::Bytes(vec![1; 128]));
    check(&reply, |e| matches!(e, AuthError::BadSignature));
    // nonce mismatch
    let mut inner = accepted_inner(&master, &request);
    inner.insert("nonce", "00000000000000000000000000000000");
    check(&resign(&inner, master_key()), |e| {
        matches!(e, AuthError::NonceMismatch)
    });
    // AES key signature over another digest
    let mut inner = accepted_inner(&master, &request);
    inner.insert(
        "sig",
        Value::Bytes(master_key().x931_sign(b"0123").unwrap()),
    );
    check(&resign(&inner, master_key()), |e| {
        matches!(e, AuthError::BadAesSignature)
    });
    inner.remove("sig");
    check(&resign(&inner, master_key()), |e| {
        matches!(e, AuthError::BadAesSignature)
    });
    // token not echoed, or echoed wrong
    let mut inner = accepted_inner(&master, &request);
    inner.remove("token");
    check(&resign(&inner, master_key()), |e| {
        matches!(e, AuthError::TokenMismatch)
    });
    let wrong = minion_key().public_key().encrypt(b"not the token").unwrap();
    inner.insert("token", Value::Bytes(wrong));
    check(&resign(&inner, master_key()), |e| {
        matches!(e, AuthError::TokenMismatch)
    });
    // master signs its key, which this minion does not verify
    let mut inner = accepted_inner(&master, &request);
    inner.insert("pub_sig", "c2ln");
    check(&resign(&inner, master_key()), |e| {
        matches!(e, AuthError::UnverifiedMasterKeySignature)
    });
    // a bad publish port
    let mut inner = accepted_inner(&master, &request);
    inner.insert("publish_port", 70000);
    check(&resign(&inner, master_key()), |e| {
        matches!(
            e,
            AuthError::Malformed {
                what: "publish_port"
            }
        )
    });
    // algorithm refusals and junk
    let bad = map([
        ("enc", "clear".into()),
        ("load", map([("ret", "bad sig algo".into())])),
    ]);
    check(
        &bad,
        |e| matches!(e, AuthError::BadAlgorithm(m) if m == "bad sig algo"),
    );
    check(&Value::from("bad load"), |e| {
        matches!(e, AuthError::Malformed { .. })
    });
    check(&map([("load", Value::Bytes(vec![0xc1]))]), |e| {
        matches!(e, AuthError::Malformed { .. })
    });
}

#[test]
fn unknown_algorithms_get_salts_unsigned_replies() {
    let master = Master::new(auto_accept());
    let mut load = AuthLoad::parse(first_contact().load()).unwrap();
    let decision = decide(&master.policy, &candidate(&load, &KeyOnFile::None));
    load.enc_algo = "OAEP-MD5".to_owned();
    let reply = build_auth_reply(
        &decision,
        &load,
        master_key(),
        &master.aes,
        &master.session,
        1,
    )
    .unwrap();
    assert_eq!(
        reply.get("load").and_then(|l| l.get("ret")),
        Some(&"bad enc algo".into())
    );
    load.sig_algo = "PKCS1v15-MD5".to_owned();
    let reply = build_auth_reply(
        &decision,
        &load,
        master_key(),
        &master.aes,
        &master.session,
        1,
    )
    .unwrap();
    assert_eq!(
        reply.get("load").and_then(|l| l.get("ret")),
        Some(&"bad sig algo".into())
    );
    let err = handle_signin_response(&reply, &first_contact(), minion_key()).unwrap_err();
    assert!(matches!(err, AuthError::BadAlgorithm(_)));
    assert!(matches!(
        AuthLoad::parse(&map([("id", "m1".into())])),
        Err(AuthError::Malformed { what: "pub" })
    ));
}
