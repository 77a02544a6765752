//! Brine → Salt: `salt_accepts_our_envelopes` writes Brine-made envelopes
//! (auth request, accept and pending replies, an aes request and its reply,
//! a signed publish) with fresh keys to a temp dir and has stock Salt
//! 3007.8's own channel code open them (`fixtures/verify_channel.py`). It
//! needs the Salt venv (`scripts/salt-venv.sh`, or `BRINE_SALT_PYTHON`) and
//! is skipped with a note otherwise.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod channel_support;

use std::path::Path;
use std::process::Command;

use brine_protocol::Serialization;
use brine_protocol::auth::{
    AuthLoad, AuthPolicy, AuthRequest, KeyOnFile, build_auth_reply, decide,
};
use brine_protocol::crypto::{Crypticle, PrivateKey};
use brine_protocol::envelope::{
    SerialCounter, Tok, package_aes_with_nonce, seal_aes_reply, seal_clear_reply, wrap_publish,
};
use channel_support::*;

#[test]
fn salt_accepts_our_envelopes() {
    let Some(python) = salt_python() else {
        // CI creates the venv (scripts/test.sh), so there a missing Salt is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "no Python with Salt under CI (scripts/salt-venv.sh failed?)"
        );
        eprintln!(
            "skipped: no Python with Salt (run scripts/salt-venv.sh or set BRINE_SALT_PYTHON)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let minion = PrivateKey::generate(PrivateKey::DEFAULT_BITS).unwrap();
    let master = PrivateKey::generate(PrivateKey::DEFAULT_BITS).unwrap();
    let (session, aes) = (
        Crypticle::generate().unwrap(),
        Crypticle::generate().unwrap(),
    );
    let token = Crypticle::generate_key_string().unwrap();
    write(out, "minion.pem", minion.to_pem().unwrap().as_bytes());
    write(
        out,
        "minion.pub",
        minion.public_key().to_pem().unwrap().as_bytes(),
    );
    write(out, "master.pem", master.to_pem().unwrap().as_bytes());
    let master_pub = master.public_key().to_pem().unwrap();
    write(out, "master.pub", master_pub.as_bytes());
    write(out, "session.key", session.key_string().as_bytes());
    write(out, "aes.key", aes.key_string().as_bytes());
    write(out, "token.txt", token.as_bytes());

    // _auth: our request, our accept reply to it, our pending reply
    let request =
        AuthRequest::with_token(MINION_ID, &minion, Some(&master_pub), AUTH_NONCE, &token).unwrap();
    write(out, "auth_request.msgpack", &request.to_frame().unwrap());
    let load = AuthLoad::parse(request.load()).unwrap();
    let on_file = KeyOnFile::Accepted(load.pub_pem.clone());
    let accept = decide(&AuthPolicy::default(), &candidate(&load, &on_file));
    let reply = build_auth_reply(
        &accept,
        &load,
        &master,
        aes.key_string(),
        session.key_string(),
        PUBLISH_PORT,
    )
    .unwrap();
    write(
        out,
        "auth_accept.msgpack",
        &seal_clear_reply(&reply).unwrap(),
    );
    let mut pending_load = load.clone();
    pending_load.id = PENDING_ID.to_owned();
    let pend = decide(
        &AuthPolicy::default(),
        &candidate(&pending_load, &KeyOnFile::None),
    );
    let reply = build_auth_reply(&pend, &pending_load, &master, "", "", PUBLISH_PORT).unwrap();
    write(
        out,
        "auth_pending.msgpack",
        &seal_clear_reply(&reply).unwrap(),
    );

    // a Brine master with `serial: bincode` refusing this (stock-shaped) request
    let bincode_master = AuthPolicy {
        serial: Serialization::Bincode,
        ..AuthPolicy::default()
    };
    let mismatch = decide(&bincode_master, &candidate(&load, &on_file));
    let reply = build_auth_reply(&mismatch, &load, &master, "", "", PUBLISH_PORT).unwrap();
    write(
        out,
        "auth_bad_serial.msgpack",
        &seal_clear_reply(&reply).unwrap(),
    );

    // an aes request and its reply
    let tok = Tok::new(&minion).unwrap();
    let frame = package_aes_with_nonce(return_load(), MINION_ID, &session, &tok, TS, REQUEST_NONCE)
        .unwrap();
    write(out, "aes_request.msgpack", &frame);
    write(
        out,
        "aes_reply.msgpack",
        &seal_aes_reply(&reply_value(), &session, REQUEST_NONCE).unwrap(),
    );

    // a signed publish
    let frame = wrap_publish(
        &publish_job().to_load(),
        &aes,
        &master,
        true,
        &SerialCounter::new(),
    )
    .unwrap();
    write(out, "publish.msgpack", &frame);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/verify_channel.py");
    let result = Command::new(&python)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(&script)
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    println!("{stdout}");
    assert!(
        result.status.success(),
        "Salt rejected our envelopes:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
