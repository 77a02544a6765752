//! Request protocol version 2 (Salt 3006.0–3006.11 minions) against a
//! running master, with frames shaped as 3006 sends them: `_auth` in a
//! `version: 2` envelope, aes requests encrypted with the master's AES key
//! with a `nonce` in the load and no envelope `id`, `tok` only on events.
//! The real 3006 minion runs in `minion/tests/salt_interop.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use brine_master::decode_event_data;
use brine_master::keys::KeyStore;
use brine_protocol::auth::{AuthOutcome, AuthRequest, handle_signin_response};
use brine_protocol::crypto::gen_nonce;
use brine_protocol::envelope::{open_aes_reply, open_private_pillar};
use brine_protocol::jid::gen_jid;
use brine_protocol::{Crypticle, PublicKey, Serialization, Value};
use bytes::Bytes;
use support::*;

const TRANSPORT: &str = "tcp";

/// Re-packs a v3 clear frame (ours) as 3006 sends it: `version: 2`.
fn as_version_2(frame: &[u8]) -> Bytes {
    let mut envelope = Value::decode(frame).unwrap();
    envelope.insert("version", 2);
    Bytes::from(envelope.to_channel_bytes().unwrap())
}

/// Signs in with a v2 `_auth`; the master's public key on success.
async fn auth_v2(minion: &mut RawMinion) -> Result<PublicKey, Value> {
    let nonce = gen_nonce().unwrap();
    let request = AuthRequest::new(&minion.id, &minion.key, None, &nonce).unwrap();
    let reply = minion.raw(as_version_2(&request.to_frame().unwrap())).await;
    match handle_signin_response(&reply, &request, &minion.key) {
        Ok(AuthOutcome::Accepted(creds)) => {
            let master_pub = PublicKey::from_pem(creds.new_master_pub.as_deref().unwrap()).unwrap();
            minion.creds = Some(creds);
            Ok(master_pub)
        }
        _ => Err(reply),
    }
}

/// A v2 aes frame around `load` (which gets a fresh nonce) and that nonce.
fn v2_frame(mut load: Value, aes: &Crypticle) -> (Bytes, String) {
    let nonce = gen_nonce().unwrap();
    load.insert("nonce", nonce.as_str());
    let envelope = map(&[
        ("enc", "aes".into()),
        ("load", Value::Bytes(aes.dumps(&load, None).unwrap())),
        ("version", 2.into()),
        ("enc_algo", "OAEP-SHA1".into()),
        ("sig_algo", "PKCS1v15-SHA1".into()),
    ]);
    (Bytes::from(envelope.to_channel_bytes().unwrap()), nonce)
}

/// Sends a v2 request; the reply opened with the AES key, or the clear
/// refusal as an error.
async fn v2_request(minion: &RawMinion, load: Value) -> Result<Value, Value> {
    let aes = minion.aes();
    let (frame, nonce) = v2_frame(load, &aes);
    let reply = minion.client.request(frame, TIMEOUT).await.unwrap();
    open_aes_reply(&reply, &aes, &nonce).map_err(|_| Value::decode(&reply).unwrap_or(Value::Nil))
}

fn event_load(minion: &RawMinion, tok: bool) -> Value {
    let mut load = map(&[
        ("id", minion.id.as_str().into()),
        ("cmd", "_minion_event".into()),
        ("pretag", Value::Nil),
        ("tag", "custom/v2".into()),
        ("data", map(&[("x", 1.into())])),
    ]);
    if tok {
        load.insert("tok", minion.tok.as_bytes());
    }
    load
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_minion_is_served() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.auto_accept = true;
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let client = local_client(&master).await;
    let mut events = master.event_bus().subscribe("custom/v2");
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    let master_pub = auth_v2(&mut m1).await.unwrap();
    let aes = m1.aes();

    // `_return` (no tok in 3006): stored, acknowledged under the AES key.
    let jid = gen_jid();
    let (frame, nonce) = v2_frame(m1.return_load(&jid, 5.into()), &aes);
    let reply = m1.client.request(frame.clone(), TIMEOUT).await.unwrap();
    assert_eq!(open_aes_reply(&reply, &aes, &nonce).unwrap(), Value::Nil);
    let returns = client.get_cache_returns(&jid).await.unwrap();
    assert_eq!(returns["m1"].ret, Value::from(5));
    // The same frame again: a replay.
    assert_eq!(m1.raw(frame).await, Value::from("bad load"));

    // Events need their tok.
    assert_eq!(
        v2_request(&m1, event_load(&m1, false)).await.unwrap(),
        Value::Bool(false)
    );
    assert_eq!(
        v2_request(&m1, event_load(&m1, true)).await.unwrap(),
        Value::Nil
    );
    let event = tokio::time::timeout(TIMEOUT, events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.tag, "custom/v2");
    // The whole load is fired (as Salt does), without `tok` and `nonce`.
    let data = decode_event_data(&event).unwrap();
    assert_eq!(
        data.get("data").and_then(|d| d.get("x")),
        Some(&Value::from(1))
    );
    assert!(data.get("tok").is_none() && data.get("nonce").is_none());

    // A file-server request carries no id.
    let files = map(&[
        ("saltenv", "base".into()),
        ("prefix", "".into()),
        ("cmd", "_file_list".into()),
    ]);
    assert_eq!(v2_request(&m1, files).await.unwrap(), Value::Array(vec![]));

    // `_pillar`: the private reply, encrypted to m1's accepted key.
    let (frame, nonce) = v2_frame(
        map(&[
            ("id", "m1".into()),
            ("grains", map(&[("role", "db".into())])),
            ("saltenv", Value::Nil),
            ("ver", "2".into()),
            ("cmd", "_pillar".into()),
        ]),
        &aes,
    );
    let reply = m1.raw(frame).await;
    let pillar =
        open_private_pillar(&reply, &m1.key, &master_pub, &nonce, Serialization::Msgpack).unwrap();
    assert_eq!(pillar, Value::map());

    // An id with no accepted key is refused, whoever holds the AES key.
    assert_eq!(
        v2_request(&m1, map(&[("cmd", "_return".into()), ("id", "m9".into())]))
            .await
            .unwrap_err(),
        Value::from("bad load")
    );
    // A v3 minion is served beside it.
    let mut m2 = RawMinion::connect(&transport, master.ret_addr(), "m2").await;
    assert_eq!(m2.auth().await, "accepted");
    assert_eq!(
        m2.request(m2.return_load(&gen_jid(), true.into()))
            .await
            .unwrap(),
        Value::Nil
    );
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_the_old_key_gets_bad_load_until_the_minion_signs_in() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.auto_accept = true;
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let mut rotations = master.event_bus().subscribe("key");
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    let mut m2 = RawMinion::connect(&transport, master.ret_addr(), "m2").await;
    auth_v2(&mut m1).await.unwrap();
    assert_eq!(m2.auth().await, "accepted");
    let jid = gen_jid();
    assert_eq!(
        v2_request(&m1, m1.return_load(&jid, 1.into())).await,
        Ok(Value::Nil)
    );

    KeyStore::new(&config.pki_dir).delete("m2").unwrap();
    loop {
        let event = tokio::time::timeout(TIMEOUT, rotations.next())
            .await
            .unwrap()
            .unwrap();
        if event.tag == "key" {
            break;
        }
    }
    // 3006 reads `bad load` as an authentication error: it signs in again
    // and resends with the new key.
    assert_eq!(
        v2_request(&m1, m1.return_load(&jid, 2.into())).await,
        Err(Value::from("bad load"))
    );
    auth_v2(&mut m1).await.unwrap();
    assert_eq!(
        v2_request(&m1, m1.return_load(&gen_jid(), 3.into())).await,
        Ok(Value::Nil)
    );
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimum_auth_version_3_refuses_version_2() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.auto_accept = true;
    config.minimum_auth_version = 3;
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    // A 3006.0–3006.11 minion cannot sign in…
    assert_eq!(auth_v2(&mut m1).await.unwrap_err(), Value::from("bad load"));
    assert!(
        KeyStore::new(&config.pki_dir)
            .state_of("m1")
            .unwrap()
            .is_none()
    );
    // …nor send aes requests with an AES key it got otherwise.
    assert_eq!(m1.auth().await, "accepted");
    assert_eq!(
        v2_request(&m1, m1.return_load(&gen_jid(), 1.into())).await,
        Err(Value::from("bad load"))
    );
    // Version 3 is served.
    assert_eq!(
        m1.request(m1.return_load(&gen_jid(), 1.into()))
            .await
            .unwrap(),
        Value::Nil
    );
    master.shutdown().await;
}
