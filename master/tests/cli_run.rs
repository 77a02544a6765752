//! `brine-run` as a user runs it: the real binary against a config file in
//! a temp dir, the master started in process from that same file, minions
//! built from the protocol crate (`support::RawMinion`) that answer the
//! few functions the runners send.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use brine_master::client::JobSpec;
use brine_master::keys::KeyStore;
use brine_master::{BuiltinTransports, Master, MasterHandle};
use brine_protocol::config::{MasterConfig, Missing, fnmatch};
use brine_protocol::envelope::unwrap_publish;
use brine_protocol::keys::KeyState;
use brine_protocol::{PublicKey, Value};
use brine_transport_api::{ClientOptions, Received, Registry};
use support::*;
use tokio::task::JoinHandle;

const BIN: &str = env!("CARGO_BIN_EXE_brine-run");
const TRANSPORT: &str = "tcp";
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config dir `<tmp>/etc` whose `master` file puts everything under
/// `<tmp>`, on two free loopback ports.
struct Env {
    dir: tempfile::TempDir,
    config: MasterConfig,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/master"),
            format!(
                "id: test_master\ninterface: 127.0.0.1\npublish_port: {}\nret_port: {}\n\
                 transport: {TRANSPORT}\nroot_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\n\
                 sock_dir: {r}/sock\nlog_file: {r}/master.log\nkeysize: 1024\n\
                 auto_accept: true\nloop_interval: 1\ntimeout: 1\ngather_job_timeout: 1\n",
                free_port(),
                free_port(),
                r = root.display()
            ),
        )
        .unwrap();
        let config = MasterConfig::load(&root.join("etc"), Missing::Error)
            .unwrap()
            .config;
        Env { dir, config }
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    async fn start(&self) -> MasterHandle {
        Master::start(self.config.clone(), &Registry::builtin())
            .await
            .expect("master starts")
    }

    /// `brine-run -c <conf> args…`, off the async workers.
    async fn run(&self, args: &[&str]) -> Output {
        run_in(&self.conf(), args).await
    }

    /// `brine-run … --out json` that must succeed: its stdout.
    async fn json(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--out", "json"]);
        let out = self.run(&all).await;
        assert_eq!(stderr(&out), "", "{args:?}");
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        stdout(&out)
    }
}

async fn run_in(conf: &Path, args: &[&str]) -> Output {
    let conf = conf.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("-c")
            .arg(conf)
            .args(args)
            .output()
            .expect("brine-run starts")
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Failure with exit 1 and one line on stderr containing `needle`.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("brine-run: "), "{err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

/// Salt's `jid_to_time`.
fn start_time(jid: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = jid[4..6].parse().unwrap();
    format!(
        "{}, {} {} {}:{}:{}.{}",
        &jid[0..4],
        MONTHS[month - 1],
        &jid[6..8],
        &jid[8..10],
        &jid[10..12],
        &jid[12..14],
        &jid[14..20]
    )
}

/// A minion that authenticates, subscribes and answers each publish that
/// targets it with `answer(fun)` (no answer for `None`).
async fn answering_minion(
    master: &MasterHandle,
    id: &str,
    answer: fn(&str) -> Option<Value>,
) -> JoinHandle<()> {
    let transport = transport(TRANSPORT);
    let mut minion = RawMinion::connect(&transport, master.ret_addr(), id).await;
    assert_eq!(minion.auth().await, "accepted");
    let master_pub = PublicKey::from_pem(
        &std::fs::read_to_string(master.config().pki_dir.join("master.pub")).unwrap(),
    )
    .unwrap();
    let sub = transport
        .subscribe(ClientOptions::new(master.publish_addr(), id))
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
    let minion = Arc::new(minion);
    tokio::spawn(async move {
        while let Ok(received) = sub.recv().await {
            let Received::Frame(frame) = received else {
                continue;
            };
            let Ok(load) = unwrap_publish(&frame, &minion.aes(), &master_pub, true) else {
                continue;
            };
            let targeted = match load.tgt() {
                Value::Array(ids) => ids.iter().any(|v| v.as_str() == Some(minion.id.as_str())),
                other => fnmatch(&minion.id, other.as_str().unwrap_or_default()),
            };
            let fun = load.fun().as_str().unwrap_or_default().to_owned();
            let Some(ret) = answer(&fun).filter(|_| targeted) else {
                continue;
            };
            let reply = map(&[
                ("cmd", "_return".into()),
                ("id", minion.id.as_str().into()),
                ("jid", load.jid().into()),
                ("fun", fun.as_str().into()),
                ("fun_args", Value::Array(vec![])),
                ("return", ret),
                ("retcode", 0.into()),
                ("success", true.into()),
            ]);
            let _ = minion.request(reply).await;
        }
    })
}

fn current(fun: &str) -> Option<Value> {
    match fun {
        "test.ping" => Some(Value::Bool(true)),
        "test.version" => Some(Value::from(VERSION)),
        "saltutil.running" => Some(Value::Array(vec![map(&[
            ("jid", "20261125201059974475".into()),
            ("fun", "test.sleep".into()),
            ("arg", Value::Array(vec![300.into()])),
            ("tgt", "*".into()),
            ("tgt_type", "glob".into()),
            ("user", "root".into()),
            ("pid", 4242.into()),
        ])])),
        "saltutil.find_job" => Some(Value::map()),
        _ => None,
    }
}

fn outdated(fun: &str) -> Option<Value> {
    match fun {
        "test.version" => Some(Value::from("0.0.9")),
        "saltutil.running" => Some(Value::Array(vec![])),
        other => current(other),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_and_non_zero() {
    init_tracing();
    let env = Env::new();
    assert_fails(
        &run_in(&env.dir.path().join("missing"), &["manage.up"]).await,
        1,
        "does not exist",
    );
    assert_fails(&env.run(&[]).await, 64, "no runner function given");
    assert_fails(
        &env.run(&["--out", "xml", "manage.up"]).await,
        64,
        "no outputter named",
    );
    assert_fails(
        &env.run(&["jobs.nope"]).await,
        1,
        "'jobs.nope' is not available (runner functions: jobs.active,",
    );
    assert_fails(
        &env.run(&["jobs.lookup_jid"]).await,
        1,
        "passed invalid arguments: lookup_jid() missing 1 required positional argument: 'jid'",
    );
    assert_fails(
        &env.run(&["manage.up", "colour=blue"]).await,
        1,
        "up() got an unexpected keyword argument 'colour'",
    );
    // no master ever ran with this config
    assert_fails(
        &env.run(&["manage.status"]).await,
        1,
        "the master is not running",
    );
    // a master that ran and stopped
    let master = env.start().await;
    assert_fails(
        &env.run(&["jobs.list_jobs", "start_time=yesterday"]).await,
        1,
        "invalid value for start_time",
    );
    assert_fails(
        &env.run(&["manage.present", "show_ip=True"]).await,
        1,
        "show_ip=True is not supported",
    );
    master.shutdown().await;
    assert_fails(
        &env.run(&["jobs.list_jobs"]).await,
        1,
        "the master is not running (no event bus under",
    );
    // --doc needs no master
    let out = env.run(&["--doc", "jobs.lookup_jid"]).await;
    assert!(out.status.success());
    assert!(
        stdout(&out).starts_with("jobs.lookup_jid:\n"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_jobs_are_listed_and_looked_up() {
    init_tracing();
    let env = Env::new();
    let master = env.start().await;
    let transport = transport(TRANSPORT);
    let mut m1 = RawMinion::connect(&transport, master.ret_addr(), "m1").await;
    assert_eq!(m1.auth().await, "accepted");
    let mut m2 = RawMinion::connect(&transport, master.ret_addr(), "m2").await;
    assert_eq!(m2.auth().await, "accepted");
    let client = local_client(&master).await;
    let published = client
        .pub_job(&JobSpec::list(&["m1", "m2"], "test.ping"))
        .await
        .unwrap();
    let jid = published.jid;
    assert_eq!(
        m1.request(m1.return_load(&jid, true.into())).await.unwrap(),
        Value::Nil
    );
    let other = client
        .pub_job(&JobSpec::new("m2", "cmd.run").args(vec!["uptime".into()]))
        .await
        .unwrap()
        .jid;

    assert_eq!(
        env.json(&["jobs.lookup_jid", &jid]).await,
        "{\n    \"m1\": true\n}\n"
    );
    assert_eq!(
        env.json(&["jobs.lookup_jid", &jid, "missing=True"]).await,
        "{\n    \"m1\": true,\n    \"m2\": \"Minion did not return\"\n}\n"
    );
    assert_eq!(
        env.json(&["jobs.lookup_jid", &format!("jid={other}")])
            .await,
        "{}\n"
    );
    // the default outputter is nested
    let out = env.run(&["jobs.lookup_jid", &jid]).await;
    assert_eq!(stdout(&out), "m1:\n    True\n");

    let ping_job = format!(
        "\"{jid}\": {{\n        \"Function\": \"test.ping\",\n        \"Arguments\": [],\n        \
         \"Target\": [\n            \"m1\",\n            \"m2\"\n        ],\n        \
         \"Target-type\": \"list\",\n        \"User\": \"root\",\n        \
         \"StartTime\": \"{}\"\n    }}",
        start_time(&jid)
    );
    let run_job = format!(
        "\"{other}\": {{\n        \"Function\": \"cmd.run\",\n        \"Arguments\": [\n            \
         \"uptime\"\n        ],\n        \"Target\": \"m2\",\n        \"Target-type\": \"glob\",\n        \
         \"User\": \"root\",\n        \"StartTime\": \"{}\"\n    }}",
        start_time(&other)
    );
    assert_eq!(
        env.json(&["jobs.list_jobs"]).await,
        format!("{{\n    {ping_job},\n    {run_job}\n}}\n")
    );
    assert_eq!(
        env.json(&["jobs.list_jobs", "search_function=test.*"])
            .await,
        format!("{{\n    {ping_job}\n}}\n")
    );
    assert_eq!(
        env.json(&[
            "jobs.list_jobs",
            "search_target=m2",
            "search_function=[cmd.*, x]"
        ])
        .await,
        format!("{{\n    {run_job}\n}}\n")
    );
    assert_eq!(
        env.json(&["jobs.list_jobs", "start_time=2999-01-01"]).await,
        "{}\n"
    );
    assert_eq!(
        env.json(&["jobs.list_jobs", "end_time=2000-01-01 00:00"])
            .await,
        "{}\n"
    );

    assert_eq!(
        env.json(&["jobs.print_job", &jid]).await,
        format!(
            "{{\n    \"{jid}\": {{\n        \"Function\": \"test.ping\",\n        \"Arguments\": [],\n        \
             \"Target\": [\n            \"m1\",\n            \"m2\"\n        ],\n        \
             \"Target-type\": \"list\",\n        \"User\": \"root\",\n        \"Minions\": [\n            \
             \"m1\",\n            \"m2\"\n        ],\n        \"StartTime\": \"{}\",\n        \
             \"Result\": {{\n            \"m1\": {{\n                \"return\": true,\n                \
             \"retcode\": 0,\n                \"success\": true\n            }}\n        }}\n    }}\n}}\n",
            start_time(&jid)
        )
    );
    let unknown = "20000101000000000000";
    assert_eq!(
        env.json(&["jobs.print_job", unknown]).await,
        format!(
            "{{\n    \"{unknown}\": {{\n        \"Error\": \"Cannot contact returner or no job with this jid\",\n        \
             \"StartTime\": \"2000, Jan 01 00:00:00.000000\",\n        \"Result\": {{}}\n    }}\n}}\n"
        )
    );
    let list_job = env.json(&["jobs.list_job", &jid]).await;
    assert!(
        list_job.starts_with(&format!(
            "{{\n    \"jid\": \"{jid}\",\n    \"Function\": \"test.ping\","
        )),
        "{list_job}"
    );
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manage_reports_up_down_present_and_versions() {
    init_tracing();
    let env = Env::new();
    let master = env.start().await;
    // nobody yet
    assert_eq!(
        env.json(&["manage.status"]).await,
        "{\n    \"up\": [],\n    \"down\": []\n}\n"
    );
    assert_eq!(env.json(&["manage.present"]).await, "[]\n");
    assert_eq!(env.json(&["jobs.active"]).await, "{}\n");
    assert_eq!(
        env.json(&["manage.versions"]).await,
        format!("{{\n    \"Master\": \"{VERSION}\"\n}}\n")
    );

    let e1 = answering_minion(&master, "e1", current).await;
    let e2 = answering_minion(&master, "e2", outdated).await;
    let transport = transport(TRANSPORT);
    let mut silent = RawMinion::connect(&transport, master.ret_addr(), "s1").await;
    assert_eq!(silent.auth().await, "accepted");
    let keys = KeyStore::new(&env.config.pki_dir);
    let ghost_pem = brine_protocol::PrivateKey::generate(1024)
        .unwrap()
        .public_key()
        .to_pem()
        .unwrap();
    keys.pki()
        .write_minion_key(KeyState::Accepted, "ghost", &ghost_pem)
        .unwrap();

    assert_eq!(
        env.json(&["manage.status"]).await,
        "{\n    \"up\": [\n        \"e1\",\n        \"e2\"\n    ],\n    \"down\": [\n        \"ghost\",\n        \"s1\"\n    ]\n}\n"
    );
    let out = env.run(&["manage.up", "tgt=e*"]).await;
    assert_eq!(stdout(&out), "- e1\n- e2\n");
    assert_eq!(
        env.json(&["manage.present"]).await,
        "[\n    \"e1\",\n    \"e2\",\n    \"s1\"\n]\n"
    );
    assert_eq!(
        env.json(&["manage.present", "subset=e2,s1"]).await,
        "[\n    \"e2\",\n    \"s1\"\n]\n"
    );
    assert_eq!(
        env.json(&["manage.not_present"]).await,
        "[\n    \"ghost\"\n]\n"
    );
    assert_eq!(
        env.json(&["manage.versions"]).await,
        format!(
            "{{\n    \"Up to date\": {{\n        \"e1\": \"{VERSION}\"\n    }},\n    \
             \"Minion requires update\": {{\n        \"e2\": \"0.0.9\"\n    }},\n    \
             \"Minion offline\": {{\n        \"ghost\": false,\n        \"s1\": false\n    }},\n    \
             \"Master\": \"{VERSION}\"\n}}\n"
        )
    );
    assert_eq!(
        env.json(&["jobs.active"]).await,
        "{\n    \"20261125201059974475\": {\n        \"Function\": \"test.sleep\",\n        \
         \"Arguments\": [\n            300\n        ],\n        \"Target\": \"*\",\n        \
         \"Target-type\": \"glob\",\n        \"User\": \"root\",\n        \
         \"StartTime\": \"2026, Nov 25 20:10:59.974475\",\n        \"Running\": [\n            \
         {\n                \"e1\": 4242\n            }\n        ],\n        \"Returned\": []\n    }\n}\n"
    );
    // down, and their keys removed
    assert_eq!(
        env.json(&["manage.down", "removekeys=True"]).await,
        "[\n    \"ghost\",\n    \"s1\"\n]\n"
    );
    assert_eq!(keys.list().unwrap().accepted, ["e1", "e2"]);
    e1.abort();
    e2.abort();
    master.shutdown().await;
}
