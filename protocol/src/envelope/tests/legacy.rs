//! Version-2 requests (Salt 3006.0–3006.11), with frames built the way
//! 3006's `AsyncReqChannel` builds them: the caller's load gets a `nonce`
//! (`_crypted_transfer`, `crypted_transfer_decode_dictentry`), is
//! encrypted with the master's AES key, and the envelope is
//! `{"enc": "aes", "load", "version": 2, "enc_algo", "sig_algo"}` (no
//! `id`). `tok` is in the load only where 3006's caller put it.

use std::sync::Arc;

use super::{Session, keys_of, map, minion_key, other_key};
use crate::crypto::{Crypticle, CryptoError, PublicKey};
use crate::envelope::{
    Legacy, NonceLedger, OpenedRequest, ReplayError, ReplayGuard, RequestError, Tok,
    open_aes_reply, open_request, open_request_with_legacy, package_aes, seal_aes_reply,
};
use crate::serial::{Value, to_channel_bytes};

const NOW: i64 = 1_795_637_459;
const NONCE: &str = "6f0e1d4654d04fc8a722929b2d104c36";

/// The v2 envelope 3006's `_package_load` makes around `load` (which
/// already holds its nonce).
fn v2_frame(load: &Value, aes: &Crypticle) -> Vec<u8> {
    let envelope = map([
        ("enc", "aes".into()),
        ("load", Value::Bytes(aes.dumps(load, None).unwrap())),
        ("version", 2.into()),
        ("enc_algo", "OAEP-SHA1".into()),
        ("sig_algo", "PKCS1v15-SHA1".into()),
    ]);
    to_channel_bytes(&envelope).unwrap()
}

fn with_nonce(mut load: Value, nonce: &str) -> Value {
    load.insert("nonce", nonce);
    load
}

/// `Minion._return_pub`'s load: no `tok`.
fn return_load() -> Value {
    map([
        ("cmd", "_return".into()),
        ("id", "m1".into()),
        ("success", true.into()),
        ("return", true.into()),
        ("jid", "20261205044736890063".into()),
        ("fun", "test.ping".into()),
    ])
}

/// `Minion._fire_master`'s load: with `tok`.
fn event_load(tok: &[u8]) -> Value {
    map([
        ("id", "m1".into()),
        ("cmd", "_minion_event".into()),
        ("pretag", Value::Nil),
        ("tok", Value::Bytes(tok.to_vec())),
        ("data", "Minion m1 started".into()),
        ("tag", "minion_start".into()),
    ])
}

/// A master knowing minion `m1`'s accepted key, with its AES key.
struct Master {
    aes: Arc<Crypticle>,
    generation: u64,
    accepted: Arc<PublicKey>,
    ledger: NonceLedger,
}

impl Master {
    fn new() -> Master {
        Master {
            aes: Arc::new(Crypticle::generate().unwrap()),
            generation: 1,
            accepted: Arc::new(minion_key().public_key()),
            ledger: NonceLedger::new(100),
        }
    }

    fn open(&mut self, frame: &[u8]) -> Result<OpenedRequest, RequestError> {
        let accepted = Arc::clone(&self.accepted);
        let legacy = Legacy {
            aes: &self.aes,
            generation: self.generation,
            accepted: move |id: &str| (id == "m1").then_some(accepted),
            nonces: &mut self.ledger,
        };
        open_request_with_legacy(
            frame,
            |_| None::<(Crypticle, Arc<PublicKey>)>,
            Some(legacy),
            NOW,
            &mut ReplayGuard::default(),
        )
    }
}

#[test]
fn a_return_without_tok_opens_with_its_claimed_id() {
    let mut master = Master::new();
    let frame = v2_frame(&with_nonce(return_load(), NONCE), &master.aes);
    let opened = master.open(&frame).unwrap();
    assert_eq!(opened.cmd(), Some("_return"));
    assert!(!opened.is_auth());
    let OpenedRequest::AesV2 {
        id,
        authenticated,
        nonce,
        load,
    } = opened
    else {
        panic!("not a v2 request");
    };
    assert_eq!(
        (id.as_deref(), authenticated, nonce.as_str()),
        (Some("m1"), false, NONCE)
    );
    assert_eq!(load, return_load(), "the nonce is removed, nothing else");
}

#[test]
fn an_event_with_tok_is_authenticated_and_tok_is_removed() {
    let mut master = Master::new();
    let tok = Tok::new(minion_key()).unwrap();
    let frame = v2_frame(&with_nonce(event_load(tok.as_bytes()), NONCE), &master.aes);
    let OpenedRequest::AesV2 {
        id,
        authenticated,
        load,
        ..
    } = master.open(&frame).unwrap()
    else {
        panic!("not a v2 request");
    };
    assert_eq!((id.as_deref(), authenticated), (Some("m1"), true));
    assert_eq!(
        keys_of(&load),
        ["id", "cmd", "pretag", "data", "tag"],
        "tok and nonce removed"
    );
}

#[test]
fn a_file_server_request_has_no_id() {
    // `RemoteClient.file_list`: {"saltenv", "prefix", "cmd"}, nothing else.
    let mut master = Master::new();
    let load = map([
        ("saltenv", "base".into()),
        ("prefix", "".into()),
        ("cmd", "_file_list".into()),
    ]);
    let frame = v2_frame(&with_nonce(load.clone(), NONCE), &master.aes);
    let opened = master.open(&frame).unwrap();
    assert_eq!(
        opened,
        OpenedRequest::AesV2 {
            id: None,
            authenticated: false,
            nonce: NONCE.to_owned(),
            load,
        }
    );
}

#[test]
fn the_reply_is_sealed_with_the_aes_key_and_the_nonce() {
    // 3006 reads it with `auth.crypticle.loads(data, nonce=nonce)`.
    let master = Master::new();
    let minion_side = Crypticle::new(master.aes.key_string()).unwrap();
    let reply = seal_aes_reply(&Value::Nil, &master.aes, NONCE).unwrap();
    assert_eq!(
        open_aes_reply(&reply, &minion_side, NONCE).unwrap(),
        Value::Nil
    );
    let plain = minion_side
        .decrypt(Value::decode(&reply).unwrap().as_bytes().unwrap())
        .unwrap();
    assert_eq!(&plain[..8 + 32], format!("pickle::{NONCE}").as_bytes());
}

#[test]
fn a_replay_is_refused_while_the_key_lives() {
    let mut master = Master::new();
    let frame = v2_frame(&with_nonce(return_load(), NONCE), &master.aes);
    master.open(&frame).unwrap();
    let err = master.open(&frame).unwrap_err();
    assert!(
        matches!(err, RequestError::Replay(ReplayError::Replayed)),
        "{err:?}"
    );
    assert_eq!(err.reply(), Value::from("bad load"));
    // the same load with a new nonce (a 3006 retry makes one) passes
    let other = "0123456789abcdef0123456789abcdef";
    master
        .open(&v2_frame(&with_nonce(return_load(), other), &master.aes))
        .unwrap();
    // after a rotation the capture no longer decrypts
    master.aes = Arc::new(Crypticle::generate().unwrap());
    master.generation += 1;
    assert!(matches!(
        master.open(&frame),
        Err(RequestError::Decrypt(CryptoError::BadHmac))
    ));
    assert_eq!(master.ledger.len(), 2, "not cleared by a failed request");
    master
        .open(&v2_frame(&with_nonce(return_load(), NONCE), &master.aes))
        .unwrap();
    assert_eq!(master.ledger.len(), 1, "a new key starts a new ledger");
}

#[test]
fn a_full_ledger_refuses_and_asks_for_a_rotation() {
    let mut master = Master::new();
    master.ledger = NonceLedger::new(1);
    let first = v2_frame(&with_nonce(return_load(), NONCE), &master.aes);
    master.open(&first).unwrap();
    assert!(master.ledger.is_full());
    let second = v2_frame(
        &with_nonce(return_load(), "0123456789abcdef0123456789abcdef"),
        &master.aes,
    );
    assert!(matches!(
        master.open(&second),
        Err(RequestError::Replay(ReplayError::LedgerFull {
            capacity: 1
        }))
    ));
}

#[test]
fn identity_checks() {
    let mut master = Master::new();
    let tok = Tok::new(minion_key()).unwrap();
    let other_tok = Tok::new(other_key()).unwrap();
    let mut n = 0u32;
    let mut check = |load: Value, want: fn(&RequestError) -> bool| {
        n += 1;
        let frame = v2_frame(&with_nonce(load, &format!("{n:032x}")), &master.aes);
        let err = master.open(&frame).unwrap_err();
        assert!(want(&err), "{err:?}");
        assert_eq!(err.reply(), Value::from("bad load"));
    };
    // a tok made with another key
    check(event_load(other_tok.as_bytes()), |e| {
        matches!(e, RequestError::BadToken)
    });
    // a tok that is not bytes
    let mut load = event_load(tok.as_bytes());
    load.insert("tok", 5);
    check(load, |e| matches!(e, RequestError::BadToken));
    // a tok without an id
    let mut load = event_load(tok.as_bytes());
    load.remove("id");
    check(load, |e| matches!(e, RequestError::BadToken));
    // an id without an accepted key
    let mut load = return_load();
    load.insert("id", "m2");
    check(
        load,
        |e| matches!(e, RequestError::UnknownMinion { id } if id == "m2"),
    );
    // an id that is not a valid minion id
    let mut load = return_load();
    load.insert("id", "../m1");
    check(load, |e| matches!(e, RequestError::InvalidId));
}

#[test]
fn nonce_and_load_shape_are_checked() {
    let mut master = Master::new();
    let aes = Arc::clone(&master.aes);
    // no nonce (3006 always sends one; Brine needs it against replays)
    let err = master.open(&v2_frame(&return_load(), &aes)).unwrap_err();
    assert!(matches!(err, RequestError::BadNonce), "{err:?}");
    let err = master
        .open(&v2_frame(&with_nonce(return_load(), "not-hex"), &aes))
        .unwrap_err();
    assert!(matches!(err, RequestError::BadNonce), "{err:?}");
    // not a map; an id that is not text
    let err = master.open(&v2_frame(&Value::from("x"), &aes)).unwrap_err();
    assert_eq!(err.reply(), Value::from("payload and load must be a dict"));
    let err = master
        .open(&v2_frame(&with_nonce(map([("id", 5.into())]), NONCE), &aes))
        .unwrap_err();
    assert_eq!(err.reply(), Value::from("bad load: id is not a string"));
    // another AES key (the master rotated): bad load, the minion signs in again
    let stale = Crypticle::generate().unwrap();
    let err = master
        .open(&v2_frame(&with_nonce(return_load(), NONCE), &stale))
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Decrypt(CryptoError::BadHmac)),
        "{err:?}"
    );
    assert!(
        master.ledger.is_empty(),
        "only opened requests are remembered"
    );
}

#[test]
fn versions_other_than_2_and_3_are_refused() {
    let mut master = Master::new();
    let frame = v2_frame(&with_nonce(return_load(), NONCE), &master.aes);
    // without `legacy` (open_request, or minimum_auth_version: 3)
    let err = open_request(
        &frame,
        |_| None::<(Crypticle, PublicKey)>,
        NOW,
        &mut ReplayGuard::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, RequestError::UnsupportedVersion(2)),
        "{err:?}"
    );
    // versions 0 and 1 (or none): no nonce to protect against replays
    for version in [Value::from(1), Value::from(0), Value::Nil] {
        let mut envelope = Value::decode(&frame).unwrap();
        if version.is_nil() {
            envelope.remove("version");
        } else {
            envelope.insert("version", version);
        }
        let err = master
            .open(&to_channel_bytes(&envelope).unwrap())
            .unwrap_err();
        assert!(
            matches!(err, RequestError::UnsupportedVersion(0 | 1)),
            "{err:?}"
        );
    }
}

#[test]
fn version_3_is_unchanged_with_legacy_on() {
    let session = Session::new();
    let tok = Tok::new(minion_key()).unwrap();
    let (frame, nonce) =
        package_aes(return_load(), "m1", &session.minion_side(), &tok, NOW).unwrap();
    let mut ledger = NonceLedger::default();
    let aes = Crypticle::generate().unwrap();
    let legacy = Legacy {
        aes: &aes,
        generation: 0,
        accepted: |_: &str| -> Option<Arc<PublicKey>> { panic!("v3 does not use it") },
        nonces: &mut ledger,
    };
    let opened = open_request_with_legacy(
        &frame,
        session.lookup("m1"),
        Some(legacy),
        NOW,
        &mut ReplayGuard::default(),
    )
    .unwrap();
    assert!(matches!(opened, OpenedRequest::Aes { nonce: n, .. } if n == nonce));
    assert!(ledger.is_empty());
    // a v3 frame relabelled as v2 does not decrypt with the AES key
    let mut envelope = Value::decode(&frame).unwrap();
    envelope.insert("version", 2);
    let mut master = Master::new();
    let err = master
        .open(&to_channel_bytes(&envelope).unwrap())
        .unwrap_err();
    assert!(matches!(err, RequestError::Decrypt(_)), "{err:?}");
}
