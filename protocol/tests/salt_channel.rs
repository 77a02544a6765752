//! Channel-layer cross-checks against stock Salt 3007.8.
//!
//! Salt → Brine: `tests/fixtures/channel_*` are envelopes made by Salt's own
//! channel code with throwaway keys (`fixtures/make_channel_fixtures.py`
//! says how): an aes request a stock minion sends, the master's reply, the
//! `_auth` load, the master's signed accept and pending replies, a signed
//! publish. Brine opens and verifies each, and where Salt's output is
//! deterministic (plaintexts, the pending reply) produces the same bytes.
//!
//! The other direction (Salt opening Brine's envelopes) is
//! `salt_channel_ours.rs`.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod channel_support;

use brine_protocol::auth::{
    AuthAct, AuthLoad, AuthOutcome, AuthPolicy, AuthRequest, KeyOnFile, build_auth_reply, decide,
    handle_signin_response,
};
use brine_protocol::crypto::{PrivateKey, PublicKey};
use brine_protocol::envelope::{
    OpenedRequest, ReplayError, ReplayGuard, RequestError, SerialCounter, Tok, open_aes_reply,
    open_clear_reply, open_request, package_aes_with_nonce, seal_aes_reply, seal_clear_reply,
    unwrap_publish, wrap_publish,
};
use brine_protocol::serial::{Value, to_channel_bytes};
use channel_support::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name)).as_slice()
    };
}

// --- Salt → Brine -------------------------------------------------------------

#[test]
fn salt_aes_request_opens_and_ours_is_identical() {
    let frame = fixture!("channel_aes_request.msgpack");
    let public = minion_key().public_key();
    let lookup = |id: &str| (id == MINION_ID).then(|| (session(), public.clone()));
    let mut replay = ReplayGuard::default();
    let opened = open_request(frame, lookup, TS + 30, &mut replay).unwrap();
    let OpenedRequest::Aes { id, nonce, load } = opened else {
        panic!("not an aes request");
    };
    assert_eq!((id.as_str(), nonce.as_str()), (MINION_ID, REQUEST_NONCE));
    let mut want = return_load();
    want.insert("ts", TS);
    assert_eq!(load, want);

    // a replay of the same frame is refused; a stale one too
    let err = open_request(frame, lookup, TS + 30, &mut replay).unwrap_err();
    assert!(
        matches!(err, RequestError::Replay(ReplayError::Replayed)),
        "{err:?}"
    );
    let err = open_request(frame, lookup, TS + 3600, &mut ReplayGuard::default()).unwrap_err();
    assert!(matches!(
        err,
        RequestError::Replay(ReplayError::OutOfWindow { .. })
    ));

    // ours: same envelope bytes around the ciphertext, same plaintext bytes
    let tok = Tok::new(&minion_key()).unwrap();
    let ours = package_aes_with_nonce(
        return_load(),
        MINION_ID,
        &session(),
        &tok,
        TS,
        REQUEST_NONCE,
    )
    .unwrap();
    let (mut salt_env, mut our_env) =
        (Value::decode(frame).unwrap(), Value::decode(&ours).unwrap());
    let plain = |env: &mut Value| {
        session()
            .decrypt(&env.remove("load").unwrap().into_bytes().unwrap())
            .unwrap()
    };
    assert_eq!(
        *plain(&mut our_env),
        *plain(&mut salt_env),
        "plaintext differs from Salt's"
    );
    assert_eq!(
        to_channel_bytes(&our_env).unwrap(),
        to_channel_bytes(&salt_env).unwrap()
    );
}

#[test]
fn salt_aes_reply_opens() {
    let frame = fixture!("channel_aes_reply.msgpack");
    assert_eq!(
        open_aes_reply(frame, &session(), REQUEST_NONCE).unwrap(),
        reply_value()
    );
    assert!(open_aes_reply(frame, &session(), AUTH_NONCE).is_err());
    // and ours decrypts to the same plaintext bytes
    let ours = seal_aes_reply(&reply_value(), &session(), REQUEST_NONCE).unwrap();
    let salt_ct = open_clear_reply(frame).unwrap().into_bytes().unwrap();
    let our_ct = open_clear_reply(&ours).unwrap().into_bytes().unwrap();
    assert_eq!(
        *session().decrypt(&our_ct).unwrap(),
        *session().decrypt(&salt_ct).unwrap()
    );
}

fn our_request(id: &str, knows_master: bool) -> AuthRequest {
    let master = knows_master.then(master_pub_text);
    AuthRequest::with_token(id, &minion_key(), master, AUTH_NONCE, token()).unwrap()
}

#[test]
fn salt_auth_request_parses_and_ours_matches() {
    let env = open_clear_reply(fixture!("channel_auth_request.msgpack")).unwrap();
    assert_eq!(env.get("version"), Some(&Value::from(3)));
    let salt_load = env.get("load").unwrap().clone();
    let parsed = AuthLoad::parse(&salt_load).unwrap();
    assert_eq!(
        (parsed.id.as_str(), parsed.nonce.as_str()),
        (MINION_ID, AUTH_NONCE)
    );
    assert_eq!(
        parsed.pub_pem,
        minion_key().public_key().to_clean_pem().unwrap()
    );
    let sealed = parsed.token.as_deref().unwrap();
    assert_eq!(&*master_key().decrypt(sealed).unwrap(), token().as_bytes());

    let ours = our_request(MINION_ID, true);
    assert_eq!(keys_of(ours.load()), keys_of(&salt_load));
    let (mut a, mut b) = (ours.load().clone(), salt_load);
    a.remove("token");
    b.remove("token");
    assert_eq!(a, b);
}

#[test]
fn salt_accept_reply_is_accepted() {
    let reply = open_clear_reply(fixture!("channel_auth_accept.msgpack")).unwrap();
    for knows_master in [true, false] {
        let request = our_request(MINION_ID, knows_master);
        let outcome = handle_signin_response(&reply, &request, &minion_key()).unwrap();
        let AuthOutcome::Accepted(creds) = outcome else {
            panic!("not accepted: {outcome:?}");
        };
        assert_eq!(creds.aes.as_str(), aes().key_string());
        assert_eq!(creds.session.as_str(), session().key_string());
        assert_eq!(creds.publish_port, PUBLISH_PORT);
        assert_eq!(
            creds.new_master_pub.as_deref(),
            (!knows_master).then(master_pub_text)
        );
    }
    // a minion that knows another master refuses it
    let other = PrivateKey::from_pem(text(fixture!("key.pem"))).unwrap();
    let stranger = other.public_key().to_pem().unwrap();
    let request = AuthRequest::with_token(
        MINION_ID,
        &minion_key(),
        Some(&stranger),
        AUTH_NONCE,
        token(),
    )
    .unwrap();
    assert!(handle_signin_response(&reply, &request, &minion_key()).is_err());

    // our reply to Salt's request has Salt's shape
    let env = open_clear_reply(fixture!("channel_auth_request.msgpack")).unwrap();
    let load = AuthLoad::parse(env.get("load").unwrap()).unwrap();
    let on_file = KeyOnFile::Accepted(load.pub_pem.clone());
    let decision = decide(&AuthPolicy::default(), &candidate(&load, &on_file));
    assert_eq!(decision.act, AuthAct::Accept);
    let ours = build_auth_reply(
        &decision,
        &load,
        &master_key(),
        aes().key_string(),
        session().key_string(),
        PUBLISH_PORT,
    )
    .unwrap();
    assert_eq!(keys_of(&ours), keys_of(&reply));
    assert_eq!(keys_of(&inner(&ours)), keys_of(&inner(&reply)));
    assert_eq!(inner(&ours).get("pub_key"), inner(&reply).get("pub_key"));
}

#[test]
fn salt_pending_reply_is_pending_and_ours_is_byte_identical() {
    let frame = fixture!("channel_auth_pending.msgpack");
    let reply = open_clear_reply(frame).unwrap();
    let request = our_request(PENDING_ID, true);
    let outcome = handle_signin_response(&reply, &request, &minion_key()).unwrap();
    assert!(matches!(outcome, AuthOutcome::Pending), "{outcome:?}");

    let mut load = AuthLoad::parse(request.load()).unwrap();
    load.nonce = AUTH_NONCE.to_owned();
    let decision = decide(&AuthPolicy::default(), &candidate(&load, &KeyOnFile::None));
    assert_eq!(decision.act, AuthAct::Pend);
    let ours = build_auth_reply(
        &decision,
        &load,
        &master_key(),
        "unused",
        "unused",
        PUBLISH_PORT,
    )
    .unwrap();
    assert_eq!(seal_clear_reply(&ours).unwrap().as_ref(), frame);
}

#[test]
fn salt_publish_unwraps_and_ours_has_the_same_plaintext() {
    let frame = fixture!("channel_publish.msgpack");
    let master_pub = PublicKey::from_pem(master_pub_text()).unwrap();
    let minion_aes = aes();
    let load = unwrap_publish(frame, &minion_aes, &master_pub, true).unwrap();
    assert_eq!(load.as_value(), &publish_job().to_load());
    assert_eq!(minion_aes.last_serial(), 1);
    // replayed: stale serial
    assert!(unwrap_publish(frame, &minion_aes, &master_pub, true).is_err());

    let ours = wrap_publish(
        &publish_job().to_load(),
        &aes(),
        &master_key(),
        true,
        &SerialCounter::new(),
    )
    .unwrap();
    let (salt_env, our_env) = (Value::decode(frame).unwrap(), Value::decode(&ours).unwrap());
    assert_eq!(keys_of(&our_env), keys_of(&salt_env));
    let plain = |env: &Value| {
        aes()
            .decrypt(env.get("load").unwrap().as_bytes().unwrap())
            .unwrap()
    };
    assert_eq!(
        *plain(&our_env),
        *plain(&salt_env),
        "plaintext differs from Salt's"
    );
}
