//! Shared by the channel cross-checks against Salt: the constants of
//! `fixtures/make_channel_fixtures.py`, the fixture keys, and helpers.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a subset

use std::path::{Path, PathBuf};
use std::process::Command;

use brine_protocol::auth::{AuthLoad, Candidate, KeyOnFile};
use brine_protocol::crypto::{Crypticle, PrivateKey};
use brine_protocol::envelope::PublishJob;
use brine_protocol::serial::Value;

// --- constants mirrored from fixtures/make_channel_fixtures.py ---------------

pub(crate) const MINION_ID: &str = "fixture-minion";
pub(crate) const PENDING_ID: &str = "fixture-pending";
pub(crate) const REQUEST_NONCE: &str = "5d6c3b2a19f84e7d9c0b1a2f3e4d5c6b";
pub(crate) const AUTH_NONCE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
pub(crate) const TS: i64 = 1_795_637_459;
pub(crate) const PUBLISH_PORT: u16 = 4505;

pub(crate) fn s(v: &str) -> Value {
    Value::from(v)
}

pub(crate) fn return_load() -> Value {
    [
        ("cmd", s("_return")),
        ("id", s(MINION_ID)),
        ("success", Value::from(true)),
        ("return", Value::from(true)),
        ("retcode", Value::from(0)),
        ("jid", s("20261125201059034956")),
        ("fun", s("test.ping")),
        ("fun_args", Value::Array(vec![])),
        ("user", s("root")),
    ]
    .into_iter()
    .collect()
}

pub(crate) fn reply_value() -> Value {
    [("ok", Value::from(true)), ("n", Value::from(3))]
        .into_iter()
        .collect()
}

pub(crate) fn publish_job() -> PublishJob {
    let mut job = PublishJob::new("test.arg", "*", "20261125201059974475");
    job.arg = vec![Value::from(1), s("two")];
    job.kwargs = vec![("k".to_owned(), s("v"))];
    job.user = Some("root".to_owned());
    job
}

pub(crate) fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap().trim()
}

pub(crate) fn minion_key() -> PrivateKey {
    PrivateKey::from_pem(text(include_bytes!("../fixtures/channel_minion.pem"))).unwrap()
}

pub(crate) fn master_key() -> PrivateKey {
    PrivateKey::from_pem(text(include_bytes!("../fixtures/channel_master.pem"))).unwrap()
}

pub(crate) fn master_pub_text() -> &'static str {
    text(include_bytes!("../fixtures/channel_master.pub"))
}

pub(crate) fn session() -> Crypticle {
    Crypticle::new(text(include_bytes!("../fixtures/channel_session.key"))).unwrap()
}

pub(crate) fn aes() -> Crypticle {
    Crypticle::new(text(include_bytes!("../fixtures/channel_aes.key"))).unwrap()
}

pub(crate) fn token() -> &'static str {
    text(include_bytes!("../fixtures/channel_token.txt"))
}

pub(crate) fn inner(reply: &Value) -> Value {
    Value::decode(reply.get("load").unwrap().as_bytes().unwrap()).unwrap()
}

pub(crate) fn keys_of(value: &Value) -> Vec<String> {
    value
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn candidate<'a>(load: &'a AuthLoad, on_file: &'a KeyOnFile) -> Candidate<'a> {
    Candidate {
        id: &load.id,
        pub_pem: &load.pub_pem,
        on_file,
        autosign: false,
        autoreject: false,
        connected: 0,
        is_connected: false,
        serial: load.serial.as_deref(),
    }
}

pub(crate) fn salt_python() -> Option<PathBuf> {
    let python = std::env::var_os("BRINE_SALT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import salt.channel.client, salt.channel.server"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    works.then_some(python)
}

pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}
