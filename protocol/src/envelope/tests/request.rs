//! Request envelopes: client packing → master opening → replies.

use super::{Session, keys_of, map, minion_key, other_key};
use crate::crypto::{Crypticle, CryptoError};
use crate::envelope::{
    EnvelopeError, OpenedRequest, ReplayError, ReplayGuard, RequestError, Tok, open_aes_reply,
    open_clear_reply, open_request, package_aes, package_aes_with_nonce, package_clear,
    seal_aes_reply, seal_clear_reply,
};
use crate::serial::{Value, to_channel_bytes};

const NOW: i64 = 1_795_637_459;
const NONCE: &str = "5d6c3b2a19f84e7d9c0b1a2f3e4d5c6b";

fn tok() -> Tok {
    Tok::new(minion_key()).unwrap()
}

fn return_load() -> Value {
    map([
        ("cmd", "_return".into()),
        ("id", "m1".into()),
        ("return", true.into()),
    ])
}

fn guard() -> ReplayGuard {
    ReplayGuard::new(60, 1000)
}

fn open(
    session: &Session,
    frame: &[u8],
    replay: &mut ReplayGuard,
) -> Result<OpenedRequest, RequestError> {
    open_request(frame, session.lookup("m1"), NOW, replay)
}

#[test]
fn tok_is_deterministic_and_verifies() {
    let tok = tok();
    assert_eq!(tok, Tok::new(minion_key()).unwrap());
    minion_key()
        .public_key()
        .x931_verify(b"salt", tok.as_bytes())
        .unwrap();
    assert_eq!(format!("{tok:?}"), "Tok(..)");
}

#[test]
fn clear_requests_round_trip() {
    let load = map([("cmd", "_auth".into()), ("id", "m1".into())]);
    let frame = package_clear(load.clone()).unwrap();
    let env = Value::decode(&frame).unwrap();
    assert_eq!(keys_of(&env), ["enc", "load", "version"]);
    let opened = open_request(
        &frame,
        |_| None::<(Crypticle, crate::PublicKey)>,
        NOW,
        &mut guard(),
    )
    .unwrap();
    assert!(opened.is_auth());
    assert_eq!(opened.cmd(), Some("_auth"));
    assert_eq!(opened, OpenedRequest::Clear { load, version: 3 });
}

#[test]
fn aes_requests_round_trip_and_replies_carry_the_nonce() {
    let session = Session::new();
    let minion = session.minion_side();
    let (frame, nonce) = package_aes(return_load(), "m1", &minion, &tok(), NOW).unwrap();
    let env = Value::decode(&frame).unwrap();
    assert_eq!(
        keys_of(&env),
        ["enc", "load", "version", "id", "enc_algo", "sig_algo"]
    );
    assert_eq!(env.get("enc_algo"), Some(&"OAEP-SHA1".into()));
    // the plaintext: caller's keys (id stays in place), then nonce, ts, tok
    let plain = session
        .crypticle
        .loads(env.get("load").unwrap().as_bytes().unwrap(), None)
        .unwrap();
    assert_eq!(
        keys_of(&plain),
        ["cmd", "id", "return", "nonce", "ts", "tok"]
    );

    let mut replay = guard();
    let OpenedRequest::Aes {
        id,
        nonce: got,
        load,
    } = open(&session, &frame, &mut replay).unwrap()
    else {
        panic!("not aes");
    };
    assert_eq!((id.as_str(), got.as_str()), ("m1", nonce.as_str()));
    assert_eq!(keys_of(&load), ["cmd", "id", "return", "ts"]);
    assert_eq!(load.get("ts"), Some(&NOW.into()));

    let reply = seal_aes_reply(&Value::Nil, &session.crypticle, &got).unwrap();
    assert_eq!(open_aes_reply(&reply, &minion, &nonce).unwrap(), Value::Nil);
    let reply = seal_aes_reply(&map([("ok", true.into())]), &session.crypticle, &got).unwrap();
    assert_eq!(
        open_aes_reply(&reply, &minion, &nonce).unwrap(),
        map([("ok", true.into())])
    );
    assert!(matches!(
        open_aes_reply(&reply, &minion, NONCE),
        Err(EnvelopeError::Crypto(CryptoError::NonceMismatch))
    ));
}

#[test]
fn id_is_appended_when_the_caller_has_none() {
    let session = Session::new();
    let frame = package_aes_with_nonce(
        map([("cmd", "_pillar".into())]),
        "m1",
        &session.minion_side(),
        &tok(),
        NOW,
        NONCE,
    )
    .unwrap();
    let opened = open(&session, &frame, &mut guard()).unwrap();
    assert_eq!(keys_of(opened.load()), ["cmd", "ts", "id"]);
}

#[test]
fn packing_refuses_bad_input() {
    let s = Crypticle::generate().unwrap();
    assert!(matches!(
        package_aes(Value::from(1), "m1", &s, &tok(), NOW),
        Err(EnvelopeError::LoadNotAMap)
    ));
    assert!(matches!(
        package_aes_with_nonce(Value::map(), "m1", &s, &tok(), NOW, "short"),
        Err(EnvelopeError::Crypto(CryptoError::InvalidNonce))
    ));
}

fn reenvelope(frame: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut env = Value::decode(frame).unwrap();
    edit(&mut env);
    to_channel_bytes(&env).unwrap()
}

#[test]
fn every_aes_failure_is_typed_and_answered() {
    let session = Session::new();
    let minion = session.minion_side();
    let good = |load: Value, tok: &Tok, ts: i64| {
        package_aes_with_nonce(load, "m1", &minion, tok, ts, NONCE).unwrap()
    };
    let check = |frame: &[u8], want: fn(&RequestError) -> bool| {
        let err = open(&session, frame, &mut guard()).unwrap_err();
        assert!(want(&err), "{err:?}");
        assert_eq!(err.reply(), Value::from("bad load"), "{err:?}");
    };

    // tok made with another key
    let forged = Tok::new(other_key()).unwrap();
    check(&good(return_load(), &forged, NOW), |e| {
        matches!(e, RequestError::BadToken)
    });
    // tok missing: encrypt a load without the channel's additions
    let mut bare = return_load();
    bare.insert("nonce", NONCE);
    bare.insert("ts", NOW);
    let no_tok = reenvelope(&good(return_load(), &tok(), NOW), |env| {
        env.insert("load", Value::Bytes(minion.dumps(&bare, None).unwrap()));
    });
    check(&no_tok, |e| matches!(e, RequestError::BadToken));
    // the load claims another id than the envelope
    check(
        &reenvelope(&good(return_load(), &tok(), NOW), |env| {
            env.insert(
                "load",
                Value::Bytes(
                    minion
                        .dumps(
                            &{
                                let mut l = session
                                    .crypticle
                                    .loads(env.get("load").unwrap().as_bytes().unwrap(), None)
                                    .unwrap();
                                l.insert("id", "m2");
                                l
                            },
                            None,
                        )
                        .unwrap(),
                ),
            );
        }),
        |e| matches!(e, RequestError::IdMismatch),
    );
    // ts outside the window, both sides
    for ts in [NOW - 61, NOW + 61] {
        check(&good(return_load(), &tok(), ts), |e| {
            matches!(e, RequestError::Replay(ReplayError::OutOfWindow { .. }))
        });
    }
    // encrypted with another session key: HMAC failure
    let stranger = Crypticle::generate().unwrap();
    let frame = package_aes_with_nonce(return_load(), "m1", &stranger, &tok(), NOW, NONCE).unwrap();
    check(&frame, |e| {
        matches!(e, RequestError::Decrypt(CryptoError::BadHmac))
    });
    // unknown minion, invalid envelope id, old version, unknown enc
    let frame = good(return_load(), &tok(), NOW);
    check(
        &reenvelope(&frame, |e| {
            e.insert("id", "m9");
        }),
        |e| matches!(e, RequestError::UnknownMinion { id } if id == "m9"),
    );
    check(
        &reenvelope(&frame, |e| {
            e.insert("id", "../m1");
        }),
        |e| matches!(e, RequestError::InvalidId),
    );
    check(
        &reenvelope(&frame, |e| {
            e.remove("id");
        }),
        |e| matches!(e, RequestError::InvalidId),
    );
    check(
        &reenvelope(&frame, |e| {
            e.insert("version", 2);
        }),
        |e| matches!(e, RequestError::UnsupportedVersion(2)),
    );
    check(
        &reenvelope(&frame, |e| {
            e.insert("enc", "pub");
        }),
        |e| matches!(e, RequestError::UnknownEnc),
    );
    check(
        &reenvelope(&frame, |e| {
            e.insert("load", 5);
        }),
        |e| matches!(e, RequestError::Decrypt(_)),
    );
    check(b"\xc1", |e| matches!(e, RequestError::NotAnEnvelope));
    check(
        &to_channel_bytes(&map([("enc", "aes".into())])).unwrap(),
        |e| matches!(e, RequestError::NotAnEnvelope),
    );
}

#[test]
fn a_replayed_request_is_refused() {
    let session = Session::new();
    let (frame, _) = package_aes(return_load(), "m1", &session.minion_side(), &tok(), NOW).unwrap();
    let mut replay = guard();
    open(&session, &frame, &mut replay).unwrap();
    let err = open(&session, &frame, &mut replay).unwrap_err();
    assert!(
        matches!(err, RequestError::Replay(ReplayError::Replayed)),
        "{err:?}"
    );
    assert_eq!(err.reply(), Value::from("bad load"));
    // a fresh request from the same minion still passes
    let (frame, _) = package_aes(return_load(), "m1", &session.minion_side(), &tok(), NOW).unwrap();
    open(&session, &frame, &mut replay).unwrap();
}

#[test]
fn load_shape_errors_get_salts_replies() {
    let cases = [
        (Value::from("x"), "payload and load must be a dict"),
        (
            map([("id", "a\0b".into())]),
            "bad load: id contains a null byte",
        ),
        (map([("id", 5.into())]), "bad load: id is not a string"),
    ];
    for (load, want) in cases {
        let frame = package_clear(load).unwrap();
        let err = open_request(
            &frame,
            |_| None::<(Crypticle, crate::PublicKey)>,
            NOW,
            &mut guard(),
        )
        .unwrap_err();
        assert_eq!(err.reply(), Value::from(want));
        let reply = seal_clear_reply(&err.reply()).unwrap();
        assert_eq!(open_clear_reply(&reply).unwrap(), Value::from(want));
    }
}

#[test]
fn clear_error_replies_to_aes_requests_mean_reauth() {
    let minion = Crypticle::generate().unwrap();
    let reply = seal_clear_reply(&"bad load".into()).unwrap();
    let err = open_aes_reply(&reply, &minion, NONCE).unwrap_err();
    assert!(matches!(&err, EnvelopeError::Refused(m) if m == "bad load"));
    assert!(err.is_reauth());
    // a reply under another key: HMAC failure, also reauth
    let other = Crypticle::generate().unwrap();
    let reply = seal_aes_reply(&Value::Nil, &other, NONCE).unwrap();
    let err = open_aes_reply(&reply, &minion, NONCE).unwrap_err();
    assert!(matches!(err, EnvelopeError::Crypto(CryptoError::BadHmac)) && err.is_reauth());
    // nil and empty replies pass through; other shapes are malformed
    assert_eq!(
        open_aes_reply(&seal_clear_reply(&Value::Nil).unwrap(), &minion, NONCE).unwrap(),
        Value::Nil
    );
    assert_eq!(
        open_aes_reply(&seal_clear_reply(&"".into()).unwrap(), &minion, NONCE).unwrap(),
        Value::Nil
    );
    let err =
        open_aes_reply(&seal_clear_reply(&Value::map()).unwrap(), &minion, NONCE).unwrap_err();
    assert!(matches!(err, EnvelopeError::Malformed { .. }) && !err.is_reauth());
    assert!(matches!(
        open_clear_reply(b""),
        Err(EnvelopeError::Malformed { .. })
    ));
}
