//! End to end, the `serial` key: a master and a minion that both use
//! bincode run jobs; when they disagree the master refuses the sign-in
//! (and says so on `salt/auth`), and the minion stops with an error that
//! names both choices instead of retrying.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e_support;

use brine_master::decode_event_data;
use brine_minion::daemon::{MinionError, MinionState, error_chain};
use brine_protocol::{AuthError, Serialization, Value};
use e2e_support::*;

fn s(v: &str) -> Value {
    Value::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bincode_peers_run_jobs() {
    init_tracing();
    let dir = tempdir();
    let mut config = master_config(dir.path(), "tcp");
    config.serial = Serialization::Bincode;
    let master = start_master(&config).await;
    let mut m1 = with_role(minion_config(dir.path(), "m1", &master), "web");
    m1.serial = Serialization::Bincode;
    let m1 = running_minion(m1).await;
    let client = client_of(&master).await;

    let pinged = cmd(&client, "m1", "glob", "test.ping", vec![]).await;
    assert_eq!(pinged.returns["m1"].ret, Value::Bool(true));
    // the grains arrived in the (bincode) `_pillar` load
    let by_grain = cmd(&client, "role:web", "grain", "test.ping", vec![]).await;
    assert_eq!(returned(&by_grain), ["m1"]);

    let hi = cmd(&client, "m1", "glob", "cmd.run", vec![s("echo héllo")]).await;
    assert_eq!(hi.returns["m1"].ret, s("héllo"));
    assert_eq!(hi.returns["m1"].retcode, Some(0));

    // every kind of value there and back
    let rich = Value::Array(vec![
        Value::Int(-1),
        Value::Nil,
        Value::UInt(u64::MAX),
        Value::Float(0.5),
        Value::Bool(false),
        Value::Array(vec![s("nested")]),
    ]);
    let echoed = cmd(&client, "m1", "glob", "test.echo", vec![rich.clone()]).await;
    assert_eq!(echoed.returns["m1"].ret, rich);

    m1.shutdown().await.unwrap();
    master.shutdown().await;
}

/// Starts a master with `master_serial` and a minion with `minion_serial`;
/// the minion must end `Failed` naming both, and the master must fire a
/// refused `salt/auth`.
async fn mismatch(master_serial: Serialization, minion_serial: Serialization) {
    init_tracing();
    let dir = tempdir();
    let mut config = master_config(dir.path(), "tcp");
    config.serial = master_serial;
    let master = start_master(&config).await;
    let mut auth_events = master.event_bus().subscribe("salt/auth");
    let mut minion_config = minion_config(dir.path(), "m1", &master);
    minion_config.serial = minion_serial;
    let minion = start_minion(minion_config).await;

    let expected = format!(
        "the master uses {master_serial}, this minion is configured with serial: {minion_serial}"
    );
    let MinionState::Failed(reason) = wait_state(&minion, MinionState::is_final).await else {
        panic!("the minion did not fail: {:?}", minion.state());
    };
    assert!(reason.contains(&expected), "{reason}");

    let event = tokio::time::timeout(PATIENCE, auth_events.next())
        .await
        .expect("salt/auth in time")
        .expect("an event");
    let data = decode_event_data(&event).unwrap();
    assert_eq!(data.get("id"), Some(&s("m1")));
    assert_eq!(data.get("result"), Some(&Value::Bool(false)));
    assert_eq!(data.get("act"), Some(&s("reject")));
    // no key was stored for a minion that cannot talk to this master
    let keys = brine_master::keys::KeyStore::new(&config.pki_dir);
    assert!(keys.list().unwrap().is_empty());

    let err = minion.wait().await.unwrap_err();
    assert!(
        matches!(
            &err,
            MinionError::Auth(AuthError::SerialMismatch { master, minion })
                if *master == master_serial && *minion == minion_serial
        ),
        "{err:?}"
    );
    assert_ne!(err.exit_code(), 0);
    assert!(error_chain(&err).contains(&expected));
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_msgpack_master_refuses_a_bincode_minion() {
    mismatch(Serialization::Msgpack, Serialization::Bincode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bincode_master_refuses_a_msgpack_minion() {
    mismatch(Serialization::Bincode, Serialization::Msgpack).await;
}
