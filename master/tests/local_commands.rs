//! The local commands `brine-run` relies on, through LocalClient and raw
//! clear requests: `list_jobs` (filters, newest first), `present`, the
//! root-key check, and `check_master` against a stopped master.

mod support;

use std::time::{Duration, SystemTime};

use brine_master::client::{ClientError, JobSpec};
use brine_master::job_cache::JobFilter;
use brine_master::keys::KeyStore;
use brine_protocol::Value;
use brine_protocol::envelope::package_clear;
use support::*;

const TRANSPORT: &str = "tcp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_jobs_returns_stored_loads_newest_first() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.auto_accept = true;
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    assert_eq!(m1.auth().await, "accepted");
    let client = local_client(&master).await;
    assert!(
        client
            .list_jobs(&JobFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    let first = client
        .pub_job(&JobSpec::new("m1", "test.ping"))
        .await
        .unwrap()
        .jid;
    let second = client
        .pub_job(&JobSpec::new("*", "cmd.run").args(vec!["uptime".into()]))
        .await
        .unwrap()
        .jid;
    let jobs = client.list_jobs(&JobFilter::default()).await.unwrap();
    let jids: Vec<&str> = jobs
        .iter()
        .map(|j| j.get("jid").and_then(Value::as_str).unwrap())
        .collect();
    assert_eq!(jids, [second.as_str(), first.as_str()]);
    let newest = &jobs[0];
    assert_eq!(newest.get("fun"), Some(&Value::from("cmd.run")));
    assert_eq!(newest.get("tgt"), Some(&Value::from("*")));
    assert_eq!(newest.get("tgt_type"), Some(&Value::from("glob")));
    assert_eq!(newest.get("user"), Some(&Value::from("root")));
    assert_eq!(
        newest.get("arg"),
        Some(&Value::Array(vec![Value::from("uptime")]))
    );
    assert_eq!(
        newest.get("minions"),
        Some(&Value::Array(vec![Value::from("m1")]))
    );
    // the get_load shape
    assert_eq!(
        Some(newest),
        client.get_load(&second).await.unwrap().as_ref()
    );

    let only = |filter: JobFilter| {
        let client = &client;
        async move {
            client
                .list_jobs(&filter)
                .await
                .unwrap()
                .iter()
                .map(|j| j.get("jid").and_then(Value::as_str).unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        only(JobFilter {
            fun: Some("test.ping".into()),
            ..JobFilter::default()
        })
        .await,
        [first.as_str()]
    );
    assert_eq!(
        only(JobFilter {
            limit: Some(1),
            ..JobFilter::default()
        })
        .await,
        [second.as_str()]
    );
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert!(
        only(JobFilter {
            since: Some(later),
            ..JobFilter::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        only(JobFilter {
            until: Some(later),
            user: Some("root".into()),
            ..JobFilter::default()
        })
        .await
        .len(),
        2
    );
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn present_lists_minions_with_a_session_and_an_accepted_key() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = master_config(dir.path(), TRANSPORT);
    config.auto_accept = true;
    let master = start(&config).await;
    let client = local_client(&master).await;
    assert!(client.present().await.unwrap().is_empty());
    let transport = transport(TRANSPORT);
    let mut minions = Vec::new();
    for id in ["web2", "web1", "db1"] {
        let mut m = RawMinion::connect(&transport, master.ret_addr(), id).await;
        assert_eq!(m.auth().await, "accepted");
        minions.push(m);
    }
    assert_eq!(client.present().await.unwrap(), ["db1", "web1", "web2"]);
    // a deleted key is not present any more, even before Maintenance runs
    KeyStore::new(&config.pki_dir).delete("web2").unwrap();
    assert_eq!(client.present().await.unwrap(), ["db1", "web1"]);
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_commands_need_the_root_key_and_a_running_master() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let config = master_config(dir.path(), TRANSPORT);
    let master = start(&config).await;
    let transport = transport(TRANSPORT);
    let raw = RawMinion::connect(&transport, master.ret_addr(), "intruder").await;
    for cmd in ["list_jobs", "present"] {
        let request = package_clear(map(&[
            ("cmd", cmd.into()),
            ("key", "not-the-root-key".into()),
        ]))
        .unwrap();
        let reply = raw.raw(request).await;
        assert_eq!(
            reply.get("error").and_then(|e| e.get("name")),
            Some(&Value::from("AuthenticationError")),
            "{cmd}"
        );
    }
    let client = local_client(&master).await;
    client.check_master().await.unwrap();
    master.shutdown().await;
    let err = client.check_master().await.unwrap_err();
    assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("the master is not running"),
        "{err}"
    );
}
