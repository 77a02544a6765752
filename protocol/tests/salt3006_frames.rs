//! Request protocol version 2: frames captured from a real stock Salt
//! 3006.9 minion talking to a stock 3007.8 master
//! (`fixtures/salt3006_frames/`, recorded by
//! `fixtures/salt3006_frames/capture.py` on loopback, throwaway keys).
//! Brine's master opens each of the minion's requests the way it opens
//! them from a 3006 minion, and its replies decrypt to the same plaintext
//! the stock master sent. The AES key comes out of the captured accept
//! reply with the throwaway minion key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use brine_protocol::auth::{
    AuthAct, AuthLoad, AuthOutcome, AuthPolicy, AuthRequest, Candidate, KeyOnFile,
    build_auth_reply, decide, handle_signin_response,
};
use brine_protocol::crypto::{PICKLE_PREFIX, clean_key};
use brine_protocol::envelope::{
    Legacy, NonceLedger, OpenedRequest, ReplayError, ReplayGuard, RequestError, ReturnLoad,
    minion_event_fires, open_private_pillar, open_request, open_request_with_legacy,
    seal_aes_reply, unwrap_publish,
};
use brine_protocol::{Crypticle, PrivateKey, PublicKey, Serialization, Value};

macro_rules! frame {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/salt3006_frames/", $name, ".msgpack")).as_slice()
    };
}

fn text(bytes: &'static [u8]) -> &'static str {
    std::str::from_utf8(bytes).unwrap()
}

fn minion_key() -> PrivateKey {
    PrivateKey::from_pem(text(include_bytes!("fixtures/salt3006_frames/minion.pem")).trim())
        .unwrap()
}

fn master_pub() -> PublicKey {
    PublicKey::from_pem(text(include_bytes!("fixtures/salt3006_frames/master.pub")).trim()).unwrap()
}

fn capture_str(key: &str) -> String {
    let doc = brine_protocol::load_yaml(text(include_bytes!(
        "fixtures/salt3006_frames/capture.yaml"
    )))
    .unwrap();
    doc.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{key} not in capture.yaml"))
        .to_owned()
}

fn auth_load() -> Value {
    let envelope = Value::decode(frame!("auth_request")).unwrap();
    envelope.get("load").unwrap().clone()
}

/// The master's AES key, from the accept reply (as the 3006 minion got it).
fn aes() -> Crypticle {
    let load = AuthLoad::parse(&auth_load()).unwrap();
    let request =
        AuthRequest::with_token(&load.id, &minion_key(), None, &load.nonce, "unused").unwrap();
    let reply = Value::decode(frame!("auth_reply_accept")).unwrap();
    match handle_signin_response(&reply, &request, &minion_key()).unwrap() {
        AuthOutcome::Accepted(creds) => Crypticle::new(&creds.aes).unwrap(),
        other => panic!("not accepted: {other:?}"),
    }
}

/// A Brine master holding the captured AES key, with the minion's key accepted.
struct Master {
    aes: Crypticle,
    ledger: NonceLedger,
}

impl Master {
    fn new() -> Master {
        Master {
            aes: aes(),
            ledger: NonceLedger::default(),
        }
    }

    fn open(&mut self, frame: &[u8]) -> Result<OpenedRequest, RequestError> {
        let minion = capture_str("minion_id");
        let public = Arc::new(minion_key().public_key());
        let legacy = Legacy {
            aes: &self.aes,
            generation: 0,
            accepted: |id: &str| (id == minion).then(|| Arc::clone(&public)),
            nonces: &mut self.ledger,
        };
        open_request_with_legacy(
            frame,
            |_| None::<(Crypticle, Arc<PublicKey>)>,
            Some(legacy),
            0,
            &mut ReplayGuard::default(),
        )
    }

    /// Opens a v2 request: (id, authenticated, nonce, load).
    fn open_v2(&mut self, frame: &[u8]) -> (Option<String>, bool, String, Value) {
        match self.open(frame).unwrap() {
            OpenedRequest::AesV2 {
                id,
                authenticated,
                nonce,
                load,
            } => (id, authenticated, nonce, load),
            other => panic!("not a v2 request: {other:?}"),
        }
    }
}

/// The plaintext of an aes reply frame.
fn reply_plaintext(frame: &[u8], aes: &Crypticle) -> Vec<u8> {
    let ciphertext = Value::decode(frame).unwrap().into_bytes().unwrap();
    aes.decrypt(&ciphertext).unwrap().to_vec()
}

/// Brine's reply to a request decrypts to the bytes the stock master's did.
fn assert_same_reply(captured: &[u8], value: &Value, nonce: &str) {
    let aes = aes();
    let ours = seal_aes_reply(value, &aes, nonce).unwrap();
    let theirs = reply_plaintext(captured, &aes);
    let head = [PICKLE_PREFIX, nonce.as_bytes()].concat();
    assert!(theirs.starts_with(&head), "the reply carries the nonce");
    assert_eq!(reply_plaintext(&ours, &aes), theirs);
}

#[test]
fn the_auth_request_is_version_2_and_brine_answers_it_like_3007() {
    let envelope = Value::decode(frame!("auth_request")).unwrap();
    assert_eq!(envelope.get("enc").and_then(Value::as_str), Some("clear"));
    assert_eq!(envelope.get("version").and_then(Value::as_i64), Some(2));
    let opened = open_request(
        frame!("auth_request"),
        |_| None::<(Crypticle, PublicKey)>,
        0,
        &mut ReplayGuard::default(),
    )
    .unwrap();
    assert!(opened.is_auth());
    assert!(matches!(opened, OpenedRequest::Clear { version: 2, .. }));
    let load = AuthLoad::parse(&auth_load()).unwrap();
    assert_eq!(load.id, capture_str("minion_id"));
    assert_eq!(
        load.pub_pem,
        clean_key(text(include_bytes!("fixtures/salt3006_frames/minion.pub")))
    );

    // Brine's accept reply carries what the stock master's carried
    // (3006 ignores `session`; it reads `aes`, `sig`, `nonce`, `pub_key`).
    let master_key = PrivateKey::generate(1024).unwrap();
    let on_file = KeyOnFile::Accepted(load.pub_pem.clone());
    let decision = decide(
        &AuthPolicy::default(),
        &Candidate {
            id: &load.id,
            pub_pem: &load.pub_pem,
            on_file: &on_file,
            autosign: false,
            autoreject: false,
            connected: 0,
            is_connected: true,
            serial: None,
        },
    );
    assert_eq!(decision.act, AuthAct::Accept);
    let (aes_key, session_key) = (
        Crypticle::generate_key_string().unwrap(),
        Crypticle::generate_key_string().unwrap(),
    );
    let ours =
        build_auth_reply(&decision, &load, &master_key, &aes_key, &session_key, 4505).unwrap();
    let inner = |reply: &Value| {
        let load = Value::decode(reply.get("load").unwrap().as_bytes().unwrap()).unwrap();
        load.as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let theirs = Value::decode(frame!("auth_reply_accept")).unwrap();
    assert_eq!(inner(&ours), inner(&theirs));
}

#[test]
fn the_return_opens_without_tok_and_brine_replies_as_the_stock_master() {
    let mut master = Master::new();
    let (id, authenticated, nonce, load) = master.open_v2(frame!("return_request"));
    assert_eq!(id.as_deref(), Some(capture_str("minion_id").as_str()));
    assert!(!authenticated, "3006 sends no tok with returns");
    assert!(load.get("nonce").is_none() && load.get("tok").is_none());
    let ret = ReturnLoad::parse(load).unwrap();
    assert_eq!(ret.jid(), capture_str("jid"));
    assert_eq!(ret.fun().and_then(Value::as_str), Some("test.arg"));
    assert_eq!((ret.retcode(), ret.success()), (Some(0), Some(true)));
    assert_same_reply(frame!("return_reply"), &Value::Nil, &nonce);

    // The same frame again is a replay.
    let err = master.open(frame!("return_request")).unwrap_err();
    assert!(
        matches!(err, RequestError::Replay(ReplayError::Replayed)),
        "{err:?}"
    );
}

#[test]
fn the_minion_start_event_is_authenticated_by_its_tok() {
    let mut master = Master::new();
    let (id, authenticated, nonce, load) = master.open_v2(frame!("minion_event_request"));
    let id = id.unwrap();
    assert_eq!(id, capture_str("minion_id"));
    assert!(authenticated);
    assert!(load.get("tok").is_none());
    let fires = minion_event_fires(&load).unwrap();
    assert_eq!(fires[0].0, "minion_start");
    let data = fires[0].1.get("data").and_then(Value::as_str).unwrap();
    assert!(
        data.starts_with(&format!("Minion {id} started at ")),
        "{data}"
    );
    assert_same_reply(frame!("minion_event_reply"), &Value::Nil, &nonce);

    // Under another accepted key for that id, the tok does not verify.
    let other = PrivateKey::generate(1024).unwrap().public_key();
    let mut ledger = NonceLedger::default();
    let aes = aes();
    let err = open_request_with_legacy(
        frame!("minion_event_request"),
        |_| None::<(Crypticle, PublicKey)>,
        Some(Legacy {
            aes: &aes,
            generation: 0,
            accepted: |_: &str| Some(other.clone()),
            nonces: &mut ledger,
        }),
        0,
        &mut ReplayGuard::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RequestError::BadToken), "{err:?}");
}

#[test]
fn a_file_server_request_carries_no_id() {
    let mut master = Master::new();
    let (id, authenticated, nonce, load) = master.open_v2(frame!("file_request"));
    assert_eq!((id, authenticated), (None, false));
    assert_eq!(load.get("cmd").and_then(Value::as_str), Some("_file_list"));
    assert_same_reply(frame!("file_reply"), &Value::Array(Vec::new()), &nonce);
}

#[test]
fn the_pillar_reply_and_the_publish_are_those_of_version_3() {
    // The private pillar reply is signed and bound to the nonce as for v3.
    let reply = Value::decode(frame!("pillar_reply")).unwrap();
    let pillar = open_private_pillar(
        &reply,
        &minion_key(),
        &master_pub(),
        &capture_str("pillar_nonce"),
        Serialization::Msgpack,
    )
    .unwrap();
    assert_eq!(pillar, Value::map());
    // The publish: AES key, serial, signature, as for 3007 minions.
    let job = unwrap_publish(frame!("publish"), &aes(), &master_pub(), true).unwrap();
    assert_eq!(job.jid(), capture_str("jid"));
    assert_eq!(job.fun().as_str(), Some("test.arg"));
}

#[test]
fn without_legacy_the_requests_get_bad_load() {
    for frame in [
        frame!("return_request"),
        frame!("minion_event_request"),
        frame!("file_request"),
    ] {
        let err = open_request(
            frame,
            |_| None::<(Crypticle, PublicKey)>,
            0,
            &mut ReplayGuard::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, RequestError::UnsupportedVersion(2)),
            "{err:?}"
        );
        assert_eq!(err.reply(), Value::from("bad load"));
    }
}
