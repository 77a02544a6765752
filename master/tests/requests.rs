//! The request handler against raw clients built from the protocol crate:
//! bad input is refused and the master keeps serving; `_auth` for every key
//! state; local publish authentication; job and return durability.

mod support;

use std::time::Duration;

use brine_master::decode_event_data;
use brine_master::keys::KeyStore;
use brine_protocol::envelope::{package_clear, unwrap_publish};
use brine_protocol::jid::gen_jid;
use brine_protocol::keys::KeyState;
use brine_protocol::{PublicKey, Value};
use brine_transport_api::{ClientOptions, Received};
use support::*;

const TRANSPORT: &str = "tcp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_the_master_keeps_serving() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.auto_accept = true;
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;

    // Garbage.
    assert_eq!(
        m1.raw(&b"\x00\xffnot msgpack"[..]).await,
        Value::from("bad load")
    );
    assert_eq!(
        m1.raw(&b"\x93\x01\x02\x03"[..]).await,
        Value::from("bad load")
    );
    // An unknown clear cmd gets an error reply.
    let unknown = package_clear(map(&[("cmd", "frobnicate".into())])).unwrap();
    assert!(m1.raw(unknown).await.get("error").is_some());
    // An aes request from a minion without a session.
    let aes_before_auth = map(&[
        ("enc", "aes".into()),
        ("load", Value::Bytes(vec![1; 64])),
        ("version", 3.into()),
        ("id", "m1".into()),
    ]);
    let frame = aes_before_auth.to_channel_bytes().unwrap();
    assert_eq!(m1.raw(frame).await, Value::from("bad load"));

    assert_eq!(m1.auth().await, "accepted");
    // A replayed request: the first is served, the copy refused.
    let jid = gen_jid();
    let (frame, nonce) = m1.aes_frame(m1.return_load(&jid, true.into()));
    let reply = m1.client.request(frame.clone(), TIMEOUT).await.unwrap();
    assert_eq!(
        brine_protocol::envelope::open_aes_reply(&reply, &m1.session(), &nonce).unwrap(),
        Value::Nil
    );
    assert_eq!(m1.raw(frame).await, Value::from("bad load"));
    // A request whose token was made with another key (a bad signature).
    let mut impostor = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    impostor.creds = m1.creds.take();
    let refused = impostor.request(m1_load("m1")).await;
    assert!(refused.is_err(), "a bad token must be refused");
    m1.creds = impostor.creds.take();
    // An unknown aes cmd answers False.
    assert_eq!(
        m1.request(map(&[("cmd", "_no_such_cmd".into())]))
            .await
            .unwrap(),
        Value::Bool(false)
    );
    // A local publish with a wrong root key.
    let publish = package_clear(map(&[
        ("cmd", "publish".into()),
        ("tgt", "*".into()),
        ("fun", "test.ping".into()),
        ("arg", Value::Array(vec![])),
        ("key", "not-the-root-key".into()),
    ]))
    .unwrap();
    let reply = m1.raw(publish).await;
    assert_eq!(
        reply.get("error").and_then(|e| e.get("name")),
        Some(&Value::from("AuthenticationError"))
    );
    let client = local_client(&master).await;
    assert!(client.get_load(&jid).await.unwrap().is_none());

    // Still serving: a fresh return is stored.
    let jid2 = gen_jid();
    assert_eq!(
        m1.request(m1.return_load(&jid2, 7.into())).await.unwrap(),
        Value::Nil
    );
    let returns = client.get_cache_returns(&jid2).await.unwrap();
    assert_eq!(returns["m1"].ret, Value::from(7));
    master.shutdown().await;
}

fn m1_load(id: &str) -> Value {
    map(&[
        ("cmd", "_minion_event".into()),
        ("id", id.into()),
        ("tag", "custom/tag".into()),
        ("data", map(&[("x", 1.into())])),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_follows_the_key_state() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let config = master_config(dir.path(), TRANSPORT);
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let keys = KeyStore::new(&config.pki_dir);
    let client = local_client(&master).await;
    let mut auth_events = master.event_bus().subscribe("salt/auth");

    // A new key is pending; a pending minion is not targeted.
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    assert_eq!(m1.auth().await, "pending");
    assert_eq!(keys.list().unwrap().pending, ["m1"]);
    let refused = client
        .pub_job(&brine_master::client::JobSpec::new("*", "test.ping"))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("could not resolve minions"),
        "{refused}"
    );
    assert_eq!(m1.auth().await, "pending");

    // Accepted by the operator.
    keys.accept("m1").unwrap();
    assert_eq!(m1.auth().await, "accepted");
    assert_eq!(m1.request(m1_load("m1")).await.unwrap(), Value::Nil);

    // Rejected by the operator.
    let mut m2 = RawMinion::connect(&transport, master.ret_addr(), "m2").await;
    assert_eq!(m2.auth().await, "pending");
    keys.reject("m2").unwrap();
    assert_eq!(m2.auth().await, "rejected");
    assert_eq!(keys.state_of("m2").unwrap(), Some(KeyState::Rejected));

    // Another key claiming the accepted id m1: denied, and an event says so.
    let mut thief = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    assert_eq!(thief.auth().await, "rejected");
    let denied = loop {
        let event = tokio::time::timeout(TIMEOUT, auth_events.next())
            .await
            .unwrap()
            .unwrap();
        let data = decode_event_data(&event).unwrap();
        if data.get("act") == Some(&Value::from("denied")) {
            break data;
        }
    };
    assert_eq!(denied.get("id"), Some(&Value::from("m1")));
    assert_eq!(denied.get("result"), Some(&Value::Bool(false)));
    assert!(config.pki_dir.join("minions_denied/m1").exists());
    // The real m1 is still accepted.
    assert_eq!(m1.auth().await, "accepted");
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_stored_before_it_is_published() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.auto_accept = true;
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    assert_eq!(m1.auth().await, "accepted");
    let master_pub =
        PublicKey::from_pem(&std::fs::read_to_string(config.pki_dir.join("master.pub")).unwrap())
            .unwrap();
    let sub = transport
        .subscribe(ClientOptions::new(master.publish_addr(), "m1"))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(TIMEOUT, sub.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Received::Connected => break,
            _ => continue,
        }
    }
    let client = local_client(&master).await;
    let published = client
        .pub_job(&brine_master::client::JobSpec::new("m*", "test.ping"))
        .await
        .unwrap();
    assert_eq!(published.minions, ["m1"]);
    let frame = loop {
        match tokio::time::timeout(TIMEOUT, sub.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Received::Frame(frame) => break frame,
            _ => continue,
        }
    };
    let load = unwrap_publish(&frame, &m1.aes(), &master_pub, true).unwrap();
    assert_eq!(load.jid(), published.jid);
    assert_eq!(load.fun(), &Value::from("test.ping"));
    // By the time a minion holds the publish, the job is in the cache.
    let stored = client.get_load(&published.jid).await.unwrap().unwrap();
    assert_eq!(
        stored.get("minions"),
        Some(&Value::Array(vec!["m1".into()]))
    );
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_is_stored_before_the_ack_and_survives_a_restart() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.auto_accept = true;
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    assert_eq!(m1.auth().await, "accepted");
    let mut rets = master.event_bus().subscribe("salt/job/");
    let jid = gen_jid();
    let load = m1.return_load(&jid, "hello".into());
    assert_eq!(m1.request(load.clone()).await.unwrap(), Value::Nil);
    let event = tokio::time::timeout(TIMEOUT, rets.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.tag, format!("salt/job/{jid}/ret/m1"));
    // A re-sent return is acknowledged again, stored once.
    assert_eq!(m1.request(load).await.unwrap(), Value::Nil);
    // A minion-initiated job (jid "req") gets a jid.
    assert_eq!(
        m1.request(m1.return_load("req", 1.into())).await.unwrap(),
        Value::Nil
    );
    master.shutdown().await;

    // Restart on the same cachedir: the return is there, and the minion's
    // session still works without a new _auth.
    let master = start(&config).await;
    let client = local_client(&master).await;
    let returns = client.get_cache_returns(&jid).await.unwrap();
    assert_eq!(returns.len(), 1);
    assert_eq!(returns["m1"].ret, Value::from("hello"));
    let m1b = RawMinion {
        client: transport
            .connect_requests(ClientOptions::new(master.ret_addr(), "m1"))
            .await
            .unwrap(),
        ..m1
    };
    let jid2 = gen_jid();
    assert_eq!(
        m1b.request(m1b.return_load(&jid2, 2.into())).await.unwrap(),
        Value::Nil
    );
    assert_eq!(
        client.get_cache_returns(&jid2).await.unwrap()["m1"].ret,
        Value::from(2)
    );
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_port_in_use() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.ret_port = taken.local_addr().unwrap().port();
    let err = brine_master::Master::start(
        config.clone(),
        &<brine_transport_api::Registry as brine_master::BuiltinTransports>::builtin(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, brine_master::MasterError::PortInUse { port } if port == config.ret_port),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 4);
    assert!(
        err.to_string()
            .contains("The ports are not available to bind")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_key_rotates_the_aes_key() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.auto_accept = true;
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let mut rotations = master.event_bus().subscribe("key");
    let mut key_events = master.event_bus().subscribe("salt/key");
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    let mut m2 = RawMinion::connect(&transport, master.ret_addr(), "m2").await;
    assert_eq!(m1.auth().await, "accepted");
    assert_eq!(m2.auth().await, "accepted");
    let old_aes = m1.creds.as_ref().unwrap().aes.to_string();
    KeyStore::new(&config.pki_dir).delete("m2").unwrap();
    let event = loop {
        let event = tokio::time::timeout(TIMEOUT, rotations.next())
            .await
            .unwrap()
            .unwrap();
        if event.tag == "key" {
            break event;
        }
    };
    assert_eq!(
        decode_event_data(&event).unwrap().get("rotate_aes_key"),
        Some(&Value::Bool(true))
    );
    // accept events for m1/m2 may come first, depending on poll timing
    loop {
        let event = tokio::time::timeout(TIMEOUT, key_events.next())
            .await
            .unwrap()
            .unwrap();
        let data = decode_event_data(&event).unwrap();
        if data.get("act") == Some(&Value::from("delete")) {
            assert_eq!(data.get("id"), Some(&Value::from("m2")));
            break;
        }
    }
    // m2's session is gone; m1 gets the new AES key on re-auth.
    assert!(m2.request(m1_load("m2")).await.is_err());
    assert_eq!(m1.auth().await, "accepted");
    assert_ne!(m1.creds.as_ref().unwrap().aes.to_string(), old_aes);
    tokio::time::sleep(Duration::from_millis(1)).await;
    master.shutdown().await;
}
