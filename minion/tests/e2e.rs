//! End to end: a real master and real minions in one process, on loopback
//! sockets, for each built-in transport. The same tests run over zeromq,
//! tcp and quic; only the `transport` key differs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e_support;

use std::time::Duration;

use brine_master::client::JobSpec;
use brine_master::decode_event_data;
use brine_master::keys::KeyStore;
use brine_minion::daemon::MinionState;
use brine_protocol::Value;
use bytes::Bytes;
use e2e_support::*;

fn s(v: &str) -> Value {
    Value::from(v)
}

/// Three minions (m2 has `role: web`); every target type; `cmd.run`.
async fn targeting(transport: &str) {
    init_tracing();
    let dir = tempdir();
    let mut config = master_config(dir.path(), transport);
    config.nodegroups = Value::Map(vec![(s("group1"), s("L@m1,m3"))]);
    let master = start_master(&config).await;
    let m1 = running_minion(minion_config(dir.path(), "m1", &master)).await;
    let m2 = running_minion(with_role(minion_config(dir.path(), "m2", &master), "web")).await;
    let m3 = running_minion(minion_config(dir.path(), "m3", &master)).await;
    let client = client_of(&master).await;

    let all = cmd(&client, "*", "glob", "test.ping", vec![]).await;
    assert_eq!(returned(&all), ["m1", "m2", "m3"]);
    assert!(all.returns.values().all(|r| r.ret == Value::Bool(true)));
    assert!(all.not_returned.is_empty());

    for (tgt, tgt_type, expected) in [
        ("m1,m3", "list", &["m1", "m3"][..]),
        ("m[12]", "glob", &["m1", "m2"]),
        ("role:web", "grain", &["m2"]),
        ("G@role:web or m1", "compound", &["m1", "m2"]),
        ("L@m2,m3 and not m3", "compound", &["m2"]),
        ("group1", "nodegroup", &["m1", "m3"]),
        ("m[23]$", "pcre", &["m2", "m3"]),
    ] {
        let result = cmd(&client, tgt, tgt_type, "test.ping", vec![]).await;
        assert_eq!(returned(&result), expected, "{tgt_type} {tgt}");
        assert_eq!(
            result.minions, expected,
            "expected minions of {tgt_type} {tgt}"
        );
    }

    let hi = cmd(&client, "m1", "glob", "cmd.run", vec![s("echo hi")]).await;
    assert_eq!(hi.returns["m1"].ret, s("hi"));
    assert_eq!(hi.returns["m1"].retcode, Some(0));

    let missing = cmd(&client, "m1", "glob", "no.such", vec![]).await;
    assert_eq!(missing.returns["m1"].ret, s("'no.such' is not available."));

    for minion in [m1, m2, m3] {
        minion.shutdown().await.unwrap();
    }
    master.shutdown().await;
}

/// A long job is not reported missing (find_job sees it); a stopped
/// minion is.
async fn long_jobs_and_stopped_minions(transport: &str) {
    init_tracing();
    let dir = tempdir();
    let master = start_master(&master_config(dir.path(), transport)).await;
    let m1 = running_minion(minion_config(dir.path(), "m1", &master)).await;
    let m2 = running_minion(minion_config(dir.path(), "m2", &master)).await;
    let client = client_of(&master).await;

    let job = JobSpec::new("m1", "test.sleep").args(vec![Value::Int(10)]);
    let slept = client
        .cmd(&job, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(slept.returns["m1"].ret, Value::Bool(true));
    assert!(slept.not_returned.is_empty());

    m2.shutdown().await.unwrap();
    let pinged = cmd(&client, "*", "glob", "test.ping", vec![]).await;
    assert_eq!(returned(&pinged), ["m1"]);
    assert_eq!(pinged.not_returned, ["m2"]);
    assert_eq!(pinged.minions, ["m1", "m2"]);

    m1.shutdown().await.unwrap();
    master.shutdown().await;
}

/// Pending runs nothing until accepted; rejected never runs; a second
/// key claiming an accepted id is denied, and `salt/auth` says so.
async fn key_states(transport: &str) {
    init_tracing();
    let dir = tempdir();
    let mut config = master_config(dir.path(), transport);
    config.auto_accept = false;
    let master = start_master(&config).await;
    let keys = KeyStore::new(&config.pki_dir);
    let client = client_of(&master).await;
    let mut auth_events = master.event_bus().subscribe("salt/auth");

    let pending = start_minion(minion_config(dir.path(), "p1", &master)).await;
    wait_state(&pending, |s| *s == MinionState::Pending).await;
    let refused = client.pub_job(&JobSpec::new("p1", "test.ping")).await;
    assert!(
        refused.is_err() || refused.as_ref().is_ok_and(|p| p.minions.is_empty()),
        "a pending minion is not targeted: {refused:?}"
    );
    assert!(pending.jobs().is_empty());

    keys.accept("p1").unwrap();
    wait_state(&pending, |s| *s == MinionState::Running).await;
    let pinged = cmd(&client, "p1", "glob", "test.ping", vec![]).await;
    assert_eq!(pinged.returns["p1"].ret, Value::Bool(true));

    let rejected = start_minion(minion_config(dir.path(), "r1", &master)).await;
    wait_state(&rejected, |s| *s == MinionState::Pending).await;
    keys.reject("r1").unwrap();
    assert_eq!(
        wait_state(&rejected, MinionState::is_final).await,
        MinionState::Rejected
    );
    let none = client.pub_job(&JobSpec::new("r1", "test.ping")).await;
    assert!(none.is_err() || none.as_ref().is_ok_and(|p| p.minions.is_empty()));

    let impostor = start_minion(minion_config_in(
        &dir.path().join("impostor"),
        "p1",
        &master,
    ))
    .await;
    let denied = loop {
        let event = tokio::time::timeout(PATIENCE, auth_events.next())
            .await
            .unwrap()
            .unwrap();
        let data = decode_event_data(&event).unwrap();
        if data.get("act") == Some(&s("denied")) {
            break data;
        }
    };
    assert_eq!(denied.get("id"), Some(&s("p1")));
    assert!(impostor.jobs().is_empty());
    // The real p1 is untouched.
    let again = cmd(&client, "p1", "glob", "test.ping", vec![]).await;
    assert_eq!(again.returns["p1"].ret, Value::Bool(true));

    drop(impostor);
    pending.shutdown().await.unwrap();
    master.shutdown().await;
}

/// A return made while the master is down is spooled and delivered when
/// it is back.
async fn returns_survive_a_master_restart(transport: &str) {
    init_tracing();
    let dir = tempdir();
    let mut config = master_config(dir.path(), transport);
    let master = start_master(&config).await;
    let mut m1_config = minion_config(dir.path(), "m1", &master);
    // give up on the master (and spool) sooner than Salt's defaults would
    m1_config.auth_timeout = Duration::from_secs(1);
    let m1 = running_minion(m1_config).await;
    let client = client_of(&master).await;
    let job = JobSpec::new("m1", "test.sleep").args(vec![Value::Int(2)]);
    let published = client.pub_job(&job).await.unwrap();
    assert_eq!(published.minions, ["m1"]);
    // Down before the job ends: the return cannot be delivered.
    config.publish_port = master.publish_addr().port();
    config.ret_port = master.ret_addr().port();
    master.shutdown().await;
    drop(client);
    let spool = brine_minion::daemon::Spool::under_cachedir(
        &dir.path().join("m1/cache"),
        brine_minion::daemon::SpoolLimits::default(),
    );
    eventually("the return is spooled", || async {
        (!spool.pending().unwrap_or_default().is_empty()).then_some(())
    })
    .await;

    let master = start_master(&config).await;
    let client = client_of(&master).await;
    let stored = eventually("the spooled return reaches the job cache", || async {
        client
            .get_cache_returns(&published.jid)
            .await
            .ok()
            .and_then(|mut r| r.remove("m1"))
    })
    .await;
    assert_eq!(stored.ret, Value::Bool(true));
    eventually("the spool is emptied", || async {
        spool.pending().unwrap_or_default().is_empty().then_some(())
    })
    .await;

    m1.shutdown().await.unwrap();
    master.shutdown().await;
}

/// Garbage, a publish whose signature does not verify and a replayed
/// publish reach the minion over the real publisher: each is refused, and
/// the minion keeps serving.
async fn forged_publishes_are_refused(transport: &str) {
    init_tracing();
    let dir = tempdir();
    let config = master_config(dir.path(), transport);
    let (registry, tap) = tapped_registry(transport);
    let master = start_master_with(&config, &registry).await;
    let m1 = running_minion(minion_config(dir.path(), "m1", &master)).await;
    let client = client_of(&master).await;
    let mut returns = master.event_bus().subscribe("salt/job/");

    let first = cmd(&client, "m1", "glob", "test.ping", vec![]).await;
    assert_eq!(first.returns["m1"].ret, Value::Bool(true));
    let frame = tap
        .frames()
        .last()
        .cloned()
        .expect("the publish was tapped");

    tap.inject(Bytes::from_static(b"\x81\xa3foo\xc1garbage"))
        .await;
    tap.inject(with_bad_signature(&frame)).await;
    tap.inject(frame).await;

    // The replay and the forgery run nothing: the next return on the bus is
    // the next job's.
    let second = cmd(&client, "m1", "glob", "test.echo", vec![s("still here")]).await;
    assert_eq!(second.returns["m1"].ret, s("still here"));
    loop {
        let event = tokio::time::timeout(PATIENCE, returns.next())
            .await
            .unwrap()
            .unwrap();
        if event.tag.ends_with("/ret/m1") {
            assert!(
                event.tag.contains(&first.jid) || event.tag.contains(&second.jid),
                "unexpected return {}",
                event.tag
            );
            if event.tag.contains(&second.jid) {
                break;
            }
        }
    }
    // Only one return for the first job, despite the replay.
    let stored = client.get_cache_returns(&first.jid).await.unwrap();
    assert_eq!(stored.len(), 1);

    m1.shutdown().await.unwrap();
    master.shutdown().await;
}

/// `frame` (a signed publish envelope) with one bit of its signature flipped.
fn with_bad_signature(frame: &Bytes) -> Bytes {
    let mut envelope = Value::decode(frame).unwrap();
    let mut sig = match envelope.get("sig") {
        Some(Value::Bytes(bytes)) => bytes.clone(),
        other => panic!("publish without a binary sig: {other:?}"),
    };
    sig[0] ^= 1;
    envelope.insert("sig", Value::Bytes(sig));
    Bytes::from(envelope.to_channel_bytes().unwrap())
}

macro_rules! over {
    ($transport:ident) => {
        mod $transport {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn targeting() {
                super::targeting(stringify!($transport)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn long_jobs_and_stopped_minions() {
                super::long_jobs_and_stopped_minions(stringify!($transport)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn key_states() {
                super::key_states(stringify!($transport)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn returns_survive_a_master_restart() {
                super::returns_survive_a_master_restart(stringify!($transport)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn forged_publishes_are_refused() {
                super::forged_publishes_are_refused(stringify!($transport)).await;
            }
        }
    };
}

over!(zeromq);
over!(tcp);
over!(quic);
