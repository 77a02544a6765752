//! Decoding frames captured from a real stock Salt 3007.8 session
//! (`fixtures/salt_frames/`, recorded by `fixtures/salt_frames/capture.py`
//! on loopback between a stock salt-master and salt-minion, throwaway
//! keys): the minion's `_auth` requests and the master's pending and
//! accepting replies, the private `_pillar` reply, the `minion_start`
//! event, a publish and the minion's `_return`, each opened the way a
//! Brine master or minion opens it. Everything is derived from the frames
//! and the throwaway minion key: the session and AES keys come out of the
//! captured accept reply.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use brine_protocol::auth::{
    AuthLoad, AuthOutcome, AuthRequest, Credentials, handle_signin_response,
};
use brine_protocol::crypto::clean_key;
use brine_protocol::envelope::{
    OpenedRequest, ReplayGuard, ReturnLoad, minion_event_fires, open_aes_reply,
    open_private_pillar, open_request, unwrap_publish,
};
use brine_protocol::{Crypticle, PrivateKey, PublicKey, Serialization, Value};

macro_rules! frame {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/salt_frames/", $name, ".msgpack")).as_slice()
    };
}

fn text(bytes: &'static [u8]) -> &'static str {
    std::str::from_utf8(bytes).unwrap()
}

fn minion_key() -> PrivateKey {
    PrivateKey::from_pem(text(include_bytes!("fixtures/salt_frames/minion.pem")).trim()).unwrap()
}

fn minion_pub_text() -> &'static str {
    text(include_bytes!("fixtures/salt_frames/minion.pub"))
}

fn master_pub_text() -> &'static str {
    text(include_bytes!("fixtures/salt_frames/master.pub"))
}

fn master_pub() -> PublicKey {
    PublicKey::from_pem(master_pub_text().trim()).unwrap()
}

/// A string from `capture.yaml`.
fn capture(key: &str) -> Value {
    let doc = brine_protocol::load_yaml(text(include_bytes!("fixtures/salt_frames/capture.yaml")))
        .unwrap();
    doc.get(key)
        .cloned()
        .unwrap_or_else(|| panic!("{key} not in capture.yaml"))
}

fn capture_str(key: &str) -> String {
    capture(key).as_str().unwrap().to_owned()
}

/// The clear `_auth` load of a captured request.
fn auth_load(frame: &[u8]) -> Value {
    let envelope = Value::decode(frame).unwrap();
    assert_eq!(envelope.get("enc").and_then(Value::as_str), Some("clear"));
    assert_eq!(envelope.get("version").and_then(Value::as_i64), Some(3));
    envelope.get("load").unwrap().clone()
}

/// Checks the reply to `request_frame` as a Brine minion does.
fn sign_in(request_frame: &[u8], reply_frame: &[u8]) -> AuthOutcome {
    let load = AuthLoad::parse(&auth_load(request_frame)).unwrap();
    // The stock minion's first sign-ins carry no token (it did not know the
    // master's key yet), so neither does the request we check against.
    assert!(load.token.is_none());
    let request =
        AuthRequest::with_token(&load.id, &minion_key(), None, &load.nonce, "unused").unwrap();
    let reply = Value::decode(reply_frame).unwrap();
    handle_signin_response(&reply, &request, &minion_key()).unwrap()
}

fn credentials() -> Credentials {
    match sign_in(frame!("auth_request"), frame!("auth_reply_accept")) {
        AuthOutcome::Accepted(creds) => creds,
        other => panic!("not accepted: {other:?}"),
    }
}

fn session() -> Crypticle {
    Crypticle::new(&credentials().session).unwrap()
}

/// Opens a captured aes request as the Brine master does.
fn open(frame: &[u8]) -> (String, String, Value) {
    // The request's own `ts` is the clock to judge it by.
    let plain = Value::decode(frame).unwrap();
    let ciphertext = plain.get("load").and_then(Value::as_bytes).unwrap();
    let ts = session()
        .loads(ciphertext, None)
        .unwrap()
        .get("ts")
        .and_then(Value::as_i64)
        .unwrap();
    let public = minion_key().public_key();
    let lookup = |id: &str| (id == capture_str("minion_id")).then(|| (session(), public.clone()));
    match open_request(frame, lookup, ts, &mut ReplayGuard::default()).unwrap() {
        OpenedRequest::Aes { id, nonce, load } => (id, nonce, load),
        other => panic!("not an aes request: {other:?}"),
    }
}

#[test]
fn the_auth_request_is_what_brine_expects() {
    for frame in [frame!("auth_request_pending"), frame!("auth_request")] {
        let load = auth_load(frame);
        assert_eq!(load.get("cmd").and_then(Value::as_str), Some("_auth"));
        let parsed = AuthLoad::parse(&load).unwrap();
        assert_eq!(parsed.id, capture_str("minion_id"));
        assert_eq!(parsed.pub_pem, clean_key(minion_pub_text()));
        assert_eq!(
            (parsed.enc_algo.as_str(), parsed.sig_algo.as_str()),
            ("OAEP-SHA1", "PKCS1v15-SHA1")
        );
        assert!(brine_protocol::crypto::is_nonce(&parsed.nonce));
    }
}

#[test]
fn the_pending_reply_is_signed_and_says_pending() {
    assert!(matches!(
        sign_in(frame!("auth_request_pending"), frame!("auth_reply_pending")),
        AuthOutcome::Pending
    ));
    // Signed with the master's key, over the load bytes.
    let reply = Value::decode(frame!("auth_reply_pending")).unwrap();
    let load = reply.get("load").and_then(Value::as_bytes).unwrap();
    let sig = reply.get("sig").and_then(Value::as_bytes).unwrap();
    master_pub().verify(load, sig).unwrap();
}

#[test]
fn the_accept_reply_hands_over_the_keys() {
    let creds = credentials();
    assert_eq!(
        creds.new_master_pub.as_deref(),
        Some(clean_key(master_pub_text()).as_str())
    );
    let port = capture("publish_port").as_i64().unwrap();
    assert_eq!(i64::from(creds.publish_port), port);
    assert_ne!(*creds.aes, *creds.session);
}

#[test]
fn the_publish_unwraps_with_the_aes_key_and_verifies() {
    let aes = Crypticle::new(&credentials().aes).unwrap();
    let job = unwrap_publish(frame!("publish"), &aes, &master_pub(), true).unwrap();
    assert_eq!(job.jid(), capture_str("jid"));
    assert_eq!(job.fun().as_str(), Some("test.arg"));
    assert_eq!(job.tgt().as_str(), Some(capture_str("minion_id").as_str()));
    assert_eq!(job.tgt_type(), "glob");
    let (args, kwargs) = job.split_args();
    assert_eq!(args, [Value::from(1), Value::from("two")]);
    assert_eq!(kwargs, [(Value::from("k"), Value::from("v"))]);
    // Signed over the ciphertext: another key refuses it.
    let impostor = PrivateKey::generate(1024).unwrap().public_key();
    assert!(unwrap_publish(frame!("publish"), &aes, &impostor, true).is_err());
}

#[test]
fn the_return_opens_and_its_reply_is_none() {
    let (id, nonce, load) = open(frame!("return_request"));
    assert_eq!(id, capture_str("minion_id"));
    assert!(load.get("tok").is_none() && load.get("nonce").is_none());
    let ret = ReturnLoad::parse(load).unwrap();
    assert_eq!(ret.id(), id);
    assert_eq!(ret.jid(), capture_str("jid"));
    assert_eq!(ret.fun().and_then(Value::as_str), Some("test.arg"));
    assert_eq!((ret.retcode(), ret.success()), (Some(0), Some(true)));
    let returned = ret.ret();
    assert_eq!(
        returned.get("args"),
        Some(&Value::Array(vec![Value::from(1), Value::from("two")]))
    );
    assert_eq!(
        returned.get("kwargs").and_then(|k| k.get("k")),
        Some(&Value::from("v"))
    );
    // The master's reply: None, sealed with the session key and our nonce.
    assert_eq!(
        open_aes_reply(frame!("return_reply"), &session(), &nonce).unwrap(),
        Value::Nil
    );
    let other = brine_protocol::crypto::gen_nonce().unwrap();
    assert!(open_aes_reply(frame!("return_reply"), &session(), &other).is_err());
}

#[test]
fn the_minion_start_event_opens() {
    let (id, nonce, load) = open(frame!("minion_event_request"));
    let fires = minion_event_fires(&load).unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].0, "minion_start");
    let data = fires[0].1.get("data").and_then(Value::as_str).unwrap();
    assert!(
        data.starts_with(&format!("Minion {id} started at ")),
        "{data}"
    );
    assert_eq!(
        open_aes_reply(frame!("minion_event_reply"), &session(), &nonce).unwrap(),
        Value::Nil
    );
}

#[test]
fn the_private_pillar_reply_opens_to_an_empty_pillar() {
    let reply = Value::decode(frame!("pillar_reply")).unwrap();
    let nonce = capture_str("pillar_nonce");
    let pillar = open_private_pillar(
        &reply,
        &minion_key(),
        &master_pub(),
        &nonce,
        Serialization::Msgpack,
    )
    .unwrap();
    assert_eq!(pillar, Value::map());
    let other = brine_protocol::crypto::gen_nonce().unwrap();
    assert!(
        open_private_pillar(
            &reply,
            &minion_key(),
            &master_pub(),
            &other,
            Serialization::Msgpack
        )
        .is_err()
    );
}

#[test]
fn binary_fields_travel_as_msgpack_str() {
    // Salt packs bytes with use_bin_type=False: ciphertexts and signatures
    // are msgpack str (not bin) holding non-UTF-8 data.
    for (frame, key) in [
        (frame!("return_request"), &b"\xa4load"[..]),
        (frame!("publish"), b"\xa4load"),
        (frame!("publish"), b"\xa3sig"),
        (frame!("auth_reply_accept"), b"\xa3sig"),
    ] {
        let at = frame
            .windows(key.len())
            .position(|w| w == key)
            .expect("the key is in the frame");
        let marker = frame[at + key.len()];
        assert!(
            matches!(marker, 0xd9..=0xdb),
            "{key:?} is packed with marker {marker:#04x}"
        );
    }
    let reply = Value::decode(frame!("auth_reply_accept")).unwrap();
    let sig = reply.get("sig").and_then(Value::as_bytes).unwrap();
    assert!(std::str::from_utf8(sig).is_err());
}
