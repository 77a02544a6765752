//! Minions started with preloaded keys and grains (what `brine-swarm`
//! does), and the `brine-swarm` binary itself against a real master.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use brine_master::BuiltinTransports;
use brine_master::client::JobSpec;
use brine_minion::daemon::{Minion, MinionState, Preloaded, SharedMasterKey};
use brine_minion::{ExecOptions, Modules};
use brine_protocol::Value;
use brine_protocol::keys::MinionPki;
use brine_transport_api::Registry;
use e2e_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preloaded_minions_use_the_given_keys_grains_and_exec_options() {
    init_tracing();
    let dir = tempdir();
    let master = start_master(&master_config(dir.path(), "tcp")).await;
    let host = brine_minion::grains::compute("host");
    let mut minions = Vec::new();
    // both minions share one parsed master key (as brine-swarm's do)
    let master_key = SharedMasterKey::new();
    for (id, role) in [("pre-a", "web"), ("pre-b", "db")] {
        let keys = MinionPki::new(dir.path().join("keys").join(id))
            .load_or_generate_with_bits(1024)
            .unwrap();
        let mut grains = host.clone();
        grains.insert("id", id);
        grains.insert("role", role);
        let preloaded = Preloaded {
            keys,
            grains,
            exec: ExecOptions {
                output_cap: 10,
                ..ExecOptions::default()
            },
            master_key: master_key.clone(),
        };
        let config = minion_config(dir.path(), id, &master);
        let pki_dir = config.pki_dir.clone();
        let minion =
            Minion::start_preloaded(config, &Registry::builtin(), Modules::builtin(), preloaded)
                .await
                .unwrap();
        let state = tokio::time::timeout(PATIENCE, minion.wait_authenticated())
            .await
            .unwrap();
        assert_eq!(state, MinionState::Running, "{id}");
        // the keys came from the caller: none written into pki_dir
        assert!(!MinionPki::new(&pki_dir).private_key_path().exists());
        minions.push(minion);
    }
    let client = client_of(&master).await;
    let web = cmd(&client, "role:web", "grain", "test.ping", vec![]).await;
    assert_eq!(returned(&web), ["pre-a"]);
    let ids = cmd(&client, "*", "glob", "grains.item", vec![Value::from("id")]).await;
    assert_eq!(returned(&ids), ["pre-a", "pre-b"]);
    for (id, ret) in &ids.returns {
        assert_eq!(ret.ret.get("id").and_then(Value::as_str), Some(id.as_str()));
    }
    let out = cmd(
        &client,
        "pre-a",
        "glob",
        "cmd.run",
        vec![Value::from("echo 0123456789abcdefghij")],
    )
    .await;
    let text = out.returns["pre-a"].ret.as_str().unwrap().to_owned();
    assert!(text.starts_with("0123456789"), "{text}");
    assert!(
        !text.contains("abcdefghij"),
        "output cap not applied: {text}"
    );
    for minion in minions {
        minion.shutdown().await.unwrap();
    }
    master.shutdown().await;
}

/// A `brine-swarm` process, killed if the test ends without stopping it.
struct Swarm(Option<std::process::Child>);

impl Drop for Swarm {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `brine-swarm` until it reports ready; (the process, the ready line).
fn run_swarm(swarm_dir: &std::path::Path, port: u16, count: usize) -> (Swarm, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_brine-swarm"))
        .args(["--transport", "tcp", "--master", "127.0.0.1"])
        .args(["--master-port", &port.to_string()])
        .args(["--count", &count.to_string(), "--prefix", "sw-"])
        .args([
            "--keysize",
            "1024",
            "--grains",
            "role=web",
            "--grains",
            "rack=3",
        ])
        .arg("--swarm-dir")
        .arg(swarm_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Swarm(Some(child));
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("swarm ready:"))
        .expect("a ready line");
    (child, line)
}

fn stop(mut swarm: Swarm) {
    let mut child = swarm.0.take().unwrap();
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "brine-swarm exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swarm_binary_runs_n_minions_and_reuses_its_keys() {
    init_tracing();
    let dir = tempdir();
    let master = start_master(&master_config(dir.path(), "tcp")).await;
    let swarm_dir = dir.path().join("swarm");
    let port = master.ret_addr().port();
    let (child, ready) = {
        let swarm_dir = swarm_dir.clone();
        tokio::task::spawn_blocking(move || run_swarm(&swarm_dir, port, 3))
            .await
            .unwrap()
    };
    assert!(ready.contains("count=3 running=3 failed=0"), "{ready}");
    let client = client_of(&master).await;
    let result = client
        .cmd(
            &JobSpec::new("G@role:web and G@rack:3", "test.ping").tgt_type("compound"),
            Some(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(returned(&result), ["sw-0000", "sw-0001", "sw-0002"]);
    let key = swarm_dir.join("keys/sw-0001/minion.pem");
    let first = std::fs::read_to_string(&key).unwrap();
    tokio::task::spawn_blocking(move || stop(child))
        .await
        .unwrap();

    // a rerun loads the cached keys: the master (which holds them as
    // accepted) lets every minion in again
    let (child, ready) = {
        let swarm_dir = swarm_dir.clone();
        tokio::task::spawn_blocking(move || run_swarm(&swarm_dir, port, 3))
            .await
            .unwrap()
    };
    assert!(ready.contains("running=3 failed=0"), "{ready}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), first);
    tokio::task::spawn_blocking(move || stop(child))
        .await
        .unwrap();
    master.shutdown().await;
}
