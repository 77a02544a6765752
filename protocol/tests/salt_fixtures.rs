//! Cross-checks against stock Salt 3007.8.
//!
//! Salt → Brine: `tests/fixtures/` holds files Salt's own code made with a
//! throwaway key (`fixtures/make_fixtures.py` documents how); each test here
//! decodes or verifies them, and where the operation is deterministic
//! (PEM encoding, msgpack, PKCS#1 v1.5, X9.31) checks that Brine produces
//! the very same bytes.
//!
//! Brine → Salt: `salt_accepts_our_outputs` writes Brine-made files to a
//! temp dir and has Salt's Python check them (`fixtures/verify_ours.py`).
//! It needs the Salt venv (`scripts/salt-venv.sh`, or `BRINE_SALT_PYTHON`
//! pointing at a Python with Salt) and is skipped with a note otherwise.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::Command;

use brine_protocol::crypto::{Crypticle, CryptoError, PrivateKey, PublicKey, sha256_hex};
use brine_protocol::serial::{Value, to_channel_bytes, to_event_bytes};

// --- constants mirrored from fixtures/make_fixtures.py -----------------------

const NONCE: &str = "5d6c3b2a19f84e7d9c0b1a2f3e4d5c6b";
const ENVELOPE_ID: &str = "fixture-minion";

fn x931_long() -> Vec<u8> {
    vec![0x42; 254]
}

fn s(v: &str) -> Value {
    Value::from(v)
}

/// PAYLOAD, as Salt decodes it (dict order is insertion order).
fn payload() -> Value {
    [
        ("fun", s("test.arg")),
        (
            "arg",
            Value::Array(vec![
                Value::from(1),
                s("two"),
                [("__kwarg__", Value::from(true)), ("k", s("v"))]
                    .into_iter()
                    .collect(),
            ]),
        ),
        ("tgt", s("*")),
        ("jid", s("20261125201059974475")),
        ("ret", s("")),
        ("tgt_type", s("glob")),
        ("user", s("root")),
        ("raw", Value::Bytes(vec![0xff, 0x00, 0x80])),
        ("big", Value::UInt(u64::MAX)),
        ("neg", Value::from(-70000)),
        ("f", Value::Float(1.5)),
        ("none", Value::Nil),
    ]
    .into_iter()
    .collect()
}

/// EVENT, as Brine decodes Salt's use_bin_type=True packing.
fn event() -> Value {
    Value::Map(vec![
        (s("_stamp"), s("2026-11-25T20:10:59.142494")),
        (
            s("when"),
            Value::Ext(78, b"20261125T20:10:59.142494".to_vec()),
        ),
        (s("blob"), Value::Bytes(vec![0xfe, 0xff])),
        (s("huge"), s("1180591620717411303424")),
        (Value::from(7), s("int key")),
        (
            s("nested"),
            [(
                "list",
                Value::Array(vec![
                    Value::from(true),
                    Value::from(false),
                    Value::Nil,
                    Value::from(-1),
                    Value::from(255),
                    Value::from(65536),
                ]),
            )]
            .into_iter()
            .collect(),
        ),
    ])
}

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name)).as_slice()
    };
}

fn fixture_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn salt_key() -> PrivateKey {
    PrivateKey::from_pem(fixture_str(fixture!("key.pem"))).unwrap()
}

fn crypticle_key() -> &'static str {
    fixture_str(fixture!("crypticle.key"))
}

// --- Salt → Brine -------------------------------------------------------------

#[test]
fn salt_keys_load_and_reencode_identically() {
    let key = salt_key();
    assert_eq!(key.size(), 256);
    assert_eq!(key.to_pem().unwrap().as_bytes(), fixture!("key.pem"));
    let public = PublicKey::from_pem(fixture_str(fixture!("key.pub"))).unwrap();
    assert_eq!(public, key.public_key());
    assert_eq!(public.to_pem().unwrap().as_bytes(), fixture!("key.pub"));
    assert_eq!(
        public.to_clean_pem().unwrap().as_bytes(),
        fixture!("key_clean.pub")
    );
    // the clean form (as sent in `pub`, no final newline) loads too
    let clean = PublicKey::from_pem(fixture_str(fixture!("key_clean.pub"))).unwrap();
    assert_eq!(clean, public);
}

#[test]
fn salt_crypticle_ciphertexts_load() {
    let c = Crypticle::new(crypticle_key()).unwrap();
    assert_eq!(
        c.loads(fixture!("crypticle_nonce.bin"), Some(NONCE))
            .unwrap(),
        payload()
    );
    assert!(matches!(
        c.loads(
            fixture!("crypticle_nonce.bin"),
            Some("00000000000000000000000000000000")
        ),
        Err(CryptoError::NonceMismatch)
    ));
    assert_eq!(
        c.loads(fixture!("crypticle_no_nonce.bin"), None).unwrap(),
        payload()
    );
    let reply = fixture!("crypticle_none_reply.bin");
    assert_eq!(c.decrypt(reply).unwrap().len(), 41);
    assert_eq!(c.loads(reply, Some(NONCE)).unwrap(), Value::Nil);

    // serial 7: accepted once, removed from the result, then stale
    assert_eq!(c.last_serial(), 0);
    assert_eq!(
        c.loads(fixture!("crypticle_serial.bin"), None).unwrap(),
        payload()
    );
    assert_eq!(c.last_serial(), 7);
    assert!(matches!(
        c.loads(fixture!("crypticle_serial.bin"), None),
        Err(CryptoError::Stale { serial: 7, last: 7 })
    ));

    // another key fails the HMAC
    let other = Crypticle::generate().unwrap();
    assert!(matches!(
        other.loads(fixture!("crypticle_no_nonce.bin"), None),
        Err(CryptoError::BadHmac)
    ));
}

#[test]
fn salt_msgpack_decodes_and_repacks_identically() {
    let packed = fixture!("payload.msgpack");
    let value = Value::decode(packed).unwrap();
    assert_eq!(value, payload());
    assert_eq!(to_channel_bytes(&value).unwrap(), packed);

    // channel envelope: the load is a non-UTF-8 msgpack str
    let packed = fixture!("channel.msgpack");
    let env = Value::decode(packed).unwrap();
    assert_eq!(env.get("enc").and_then(Value::as_str), Some("aes"));
    assert_eq!(env.get("version"), Some(&Value::from(3)));
    assert_eq!(env.get("id").and_then(Value::as_str), Some(ENVELOPE_ID));
    let Some(Value::Bytes(load)) = env.get("load") else {
        panic!("load should decode as bytes: {:?}", env.get("load"));
    };
    let c = Crypticle::new(crypticle_key()).unwrap();
    assert_eq!(c.loads(load, None).unwrap(), payload());
    assert_eq!(to_channel_bytes(&env).unwrap(), packed);

    // event body: bin, ext 78, stringified huge int, int key
    let packed = fixture!("event.msgpack");
    let value = Value::decode(packed).unwrap();
    assert_eq!(value, event());
    assert_eq!(to_event_bytes(&value).unwrap(), packed);
}

#[test]
fn salt_x931_signatures_recover_and_match_ours() {
    let key = salt_key();
    let public = key.public_key();
    let tok = fixture!("x931_tok.bin");
    assert_eq!(public.x931_recover(tok).unwrap(), b"salt");
    // X9.31 is deterministic: our signature is Salt's (OpenSSL's) signature
    assert_eq!(key.x931_sign(b"salt").unwrap(), tok);

    let digest = sha256_hex(crypticle_key().as_bytes());
    let sig = fixture!("x931_digest.bin");
    assert_eq!(public.x931_recover(sig).unwrap(), digest.as_bytes());
    assert_eq!(key.x931_sign(digest.as_bytes()).unwrap(), sig);

    let long = fixture!("x931_long.bin");
    assert_eq!(public.x931_recover(long).unwrap(), x931_long());
    assert_eq!(key.x931_sign(&x931_long()).unwrap(), long);
}

#[test]
fn salt_oaep_and_pkcs1v15_interoperate() {
    let key = salt_key();
    assert_eq!(
        &key.decrypt(fixture!("oaep.bin")).unwrap()[..],
        crypticle_key().as_bytes()
    );
    let sig = fixture!("pkcs1v15.bin");
    let signed = fixture!("payload.msgpack");
    key.public_key().verify(signed, sig).unwrap();
    assert!(key.public_key().verify(b"tampered", sig).is_err());
    // PKCS#1 v1.5 is deterministic too
    assert_eq!(key.sign(signed).unwrap(), sig);
}

#[test]
fn garbage_against_salt_key_is_an_error() {
    let key = salt_key();
    let public = key.public_key();
    let mut tok = fixture!("x931_tok.bin").to_vec();
    tok[0] ^= 0x01;
    assert!(public.x931_recover(&tok).is_err());
    let mut ct = fixture!("oaep.bin").to_vec();
    ct[200] ^= 0x80;
    assert!(key.decrypt(&ct).is_err());
    let mut wire = fixture!("crypticle_nonce.bin").to_vec();
    wire[40] ^= 0x01;
    let c = Crypticle::new(crypticle_key()).unwrap();
    assert!(matches!(
        c.loads(&wire, Some(NONCE)),
        Err(CryptoError::BadHmac)
    ));
}

// --- Brine → Salt -------------------------------------------------------------

fn salt_python() -> Option<PathBuf> {
    let python = std::env::var_os("BRINE_SALT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(".venv")
                .join("bin")
                .join("python")
        });
    let works = Command::new(&python)
        .args(["-c", "import salt.crypt, salt.payload"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    works.then_some(python)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn salt_accepts_our_outputs() {
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

    let key = PrivateKey::generate(PrivateKey::DEFAULT_BITS).unwrap();
    let public = key.public_key();
    write(out, "ours.pem", key.to_pem().unwrap().as_bytes());
    write(out, "ours.pub", public.to_pem().unwrap().as_bytes());
    write(
        out,
        "ours_clean.pub",
        public.to_clean_pem().unwrap().as_bytes(),
    );

    let crypticle = Crypticle::generate().unwrap();
    let key_string = crypticle.key_string().to_owned();
    write(out, "crypticle.key", key_string.as_bytes());

    write(out, "x931_tok.bin", &key.x931_sign(b"salt").unwrap());
    let digest = sha256_hex(key_string.as_bytes());
    write(
        out,
        "x931_digest.bin",
        &key.x931_sign(digest.as_bytes()).unwrap(),
    );
    write(out, "x931_long.bin", &key.x931_sign(&x931_long()).unwrap());
    write(
        out,
        "oaep.bin",
        &public.encrypt(key_string.as_bytes()).unwrap(),
    );
    write(
        out,
        "oaep_to_fixture.bin",
        &salt_key()
            .public_key()
            .encrypt(key_string.as_bytes())
            .unwrap(),
    );

    let packed = to_channel_bytes(&payload()).unwrap();
    write(out, "payload.msgpack", &packed);
    write(out, "pkcs1v15.bin", &key.sign(&packed).unwrap());

    write(
        out,
        "crypticle_nonce.bin",
        &crypticle.dumps(&payload(), Some(NONCE)).unwrap(),
    );
    let plain = crypticle.dumps(&payload(), None).unwrap();
    write(out, "crypticle_no_nonce.bin", &plain);
    let mut with_serial = payload();
    with_serial.insert("serial", 7);
    write(
        out,
        "crypticle_serial.bin",
        &crypticle.dumps(&with_serial, None).unwrap(),
    );
    write(
        out,
        "crypticle_none_reply.bin",
        &crypticle.dumps(&Value::Nil, Some(NONCE)).unwrap(),
    );

    let envelope: Value = [
        ("enc", s("aes")),
        ("load", Value::Bytes(plain)),
        ("version", Value::from(3)),
        ("id", s(ENVELOPE_ID)),
        ("enc_algo", s("OAEP-SHA1")),
        ("sig_algo", s("PKCS1v15-SHA1")),
    ]
    .into_iter()
    .collect();
    write(
        out,
        "channel.msgpack",
        &to_channel_bytes(&envelope).unwrap(),
    );
    write(out, "event.msgpack", &to_event_bytes(&event()).unwrap());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/verify_ours.py");
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
        "Salt rejected our outputs:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
