//! The REST API end to end: a master serving `rest_api` and real minions
//! in one process, on loopback. Lowstates of every client, the
//! convenience URLs, permissions on targets, and stock pepper 0.7.6 (from
//! the Salt venv) against Brine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e_support;
#[path = "../../master/tests/netapi_support/mod.rs"]
mod netapi_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_support::*;
use netapi_support::Api;
use serde_json::json;

async fn setup(
    dir: &std::path::Path,
) -> (
    brine_master::MasterHandle,
    Vec<brine_minion::daemon::MinionHandle>,
) {
    init_tracing();
    let config = netapi_support::with_api(master_config(dir, "tcp"), dir);
    let master = start_master(&config).await;
    let m1 = running_minion(minion_config(dir, "m1", &master)).await;
    let m2 = running_minion(with_role(minion_config(dir, "m2", &master), "web")).await;
    (master, vec![m1, m2])
}

async fn stop(
    master: brine_master::MasterHandle,
    minions: Vec<brine_minion::daemon::MinionHandle>,
) {
    for minion in minions {
        let _ = minion.shutdown().await;
    }
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowstates_and_convenience_urls_on_real_minions() {
    let dir = tempdir();
    let (master, minions) = setup(dir.path()).await;
    let addr = master.netapi_addr().unwrap();
    let (admin, _) = Api::login(addr, "admin", "adminpw").await;

    // local, plain and full_return; arguments; list targets; no match
    let ping = admin
        .run(json!([{"client": "local", "tgt": "*", "fun": "test.ping"}]))
        .await;
    assert_eq!(ping.status, 200, "{}", ping.text());
    assert_eq!(ping.json()["return"], json!([{"m1": true, "m2": true}]));
    let full = admin
        .run(json!([{"client": "local", "tgt": "*", "fun": "test.ping", "full_return": true, "batch": null, "arg": []}]))
        .await
        .json();
    let m1 = &full["return"][0]["m1"];
    assert_eq!(m1["ret"], true);
    assert_eq!(m1["retcode"], 0);
    assert_eq!(m1["jid"].as_str().unwrap().len(), 20);
    let echo = admin
        .run(json!([
            {"client": "local", "tgt": "m1,m2", "tgt_type": "list", "fun": "test.arg", "arg": ["a", 2], "kwarg": {"k": "v"}},
            {"client": "local", "tgt": "role:web", "tgt_type": "grain", "fun": "test.echo", "arg": ["hi"]}
        ]))
        .await
        .json();
    assert_eq!(echo["return"][0]["m1"]["args"], json!(["a", 2]));
    assert_eq!(echo["return"][0]["m1"]["kwargs"]["k"], "v");
    assert_eq!(echo["return"][1], json!({"m2": "hi"}));
    let none = admin
        .run(json!([{"client": "local", "tgt": "nomatch*", "fun": "test.ping"}]))
        .await;
    assert_eq!(none.json()["return"], json!([{}]));
    let none = admin
        .run(json!([{"client": "local_async", "tgt": "nomatch*", "fun": "test.ping"}]))
        .await;
    assert_eq!(none.json()["return"], json!([{}]));

    // local_async, then the job through the runner (jid as a bare number,
    // as pepper sends it) and through /jobs
    let published = admin
        .run(json!([{"client": "local_async", "tgt": "*", "fun": "test.ping"}]))
        .await
        .json();
    let jid = published["return"][0]["jid"].as_str().unwrap().to_owned();
    assert_eq!(published["return"][0]["minions"], json!(["m1", "m2"]));
    let lookup_body = format!(
        r#"[{{"client": "runner", "fun": "jobs.lookup_jid", "jid": {jid}, "full_return": true}}]"#
    );
    let looked_up = eventually("both returns stored", || {
        let admin = admin.clone();
        let body = lookup_body.clone();
        async move {
            let reply = admin.post("/", "application/json", body.as_bytes()).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            let json = reply.json();
            (json["return"][0]["data"]["return"] == json!({"m1": true, "m2": true})).then_some(json)
        }
    })
    .await;
    let event = &looked_up["return"][0];
    assert_eq!(event["data"]["fun"], "runner.jobs.lookup_jid");
    assert_eq!(event["data"]["fun_args"], json!([{"jid": jid}]));
    let job = admin.get(&format!("/jobs/{jid}")).await.json();
    assert_eq!(job["info"][0]["Function"], "test.ping");
    assert_eq!(job["info"][0]["jid"], jid.as_str());
    assert_eq!(job["return"], json!([{"m1": true, "m2": true}]));
    let jobs = admin.get("/jobs").await.json();
    assert_eq!(jobs["return"][0][&jid]["Function"], "test.ping");

    // /minions: grains; POST /minions: 202 with links
    let grains = admin.get("/minions").await.json();
    assert_eq!(grains["return"][0]["m2"]["role"], "web");
    assert_eq!(grains["return"][0]["m1"]["id"], "m1");
    let one = admin.get("/minions/m1").await.json();
    assert_eq!(one["return"][0].as_object().unwrap().len(), 1);
    let accepted = admin
        .post_json("/minions", &json!([{"tgt": "m1", "fun": "test.ping"}]))
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let body = accepted.json();
    let async_jid = body["return"][0]["jid"].as_str().unwrap();
    assert_eq!(
        body["_links"]["jobs"][0]["href"],
        format!("/jobs/{async_jid}")
    );

    // local_batch: one element per returning minion
    let batch = admin
        .run(json!([{"client": "local_batch", "tgt": "*", "fun": "test.ping", "batch": "1"}]))
        .await
        .json();
    let mut ids: Vec<String> = batch["return"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_object().unwrap().keys().cloned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["m1", "m2"]);

    // the permission entries on targets: dev may test.* and grains.items only
    let (dev, _) = Api::login(addr, "dev", "devpw").await;
    assert_eq!(
        dev.run(json!([{"client": "local", "tgt": "*", "fun": "test.ping"}]))
            .await
            .status,
        200
    );
    assert_eq!(dev.get("/minions/m2").await.status, 200);
    assert_eq!(
        dev.run(json!([{"client": "local", "tgt": "*", "fun": "cmd.run", "arg": ["id"]}]))
            .await
            .status,
        403
    );
    assert_eq!(dev.get("/jobs").await.status, 403);
    stop(master, minions).await;
}

/// The Salt venv's `pepper`, if there is one.
fn pepper() -> Option<PathBuf> {
    let python = std::env::var_os("BRINE_SALT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"))
        });
    let pepper = python.parent()?.join("pepper");
    pepper.is_file().then_some(pepper)
}

/// Runs pepper with `--out=json` and merges the JSON objects it prints.
async fn pepper_json(pepper: &Path, url: &str, args: &[&str]) -> serde_json::Value {
    let (pepper, url) = (pepper.to_owned(), url.to_owned());
    let mut full = vec!["--out=json".to_owned()];
    full.extend(args.iter().map(|a| (*a).to_owned()));
    let stdout = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = full.iter().map(String::as_str).collect();
        run_pepper(&pepper, &url, &args)
    })
    .await
    .unwrap();
    let mut merged = serde_json::Map::new();
    for doc in serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>() {
        let doc = doc.unwrap_or_else(|e| panic!("pepper printed no JSON ({e}): {stdout}"));
        let serde_json::Value::Object(map) = doc else {
            panic!("pepper printed a non-object: {stdout}");
        };
        merged.extend(map);
    }
    serde_json::Value::Object(merged)
}

fn run_pepper(pepper: &Path, url: &str, args: &[&str]) -> String {
    let output = Command::new(pepper)
        .args(args)
        .env("SALTAPI_URL", url)
        .env("SALTAPI_USER", "admin")
        .env("SALTAPI_PASS", "adminpw")
        .env("SALTAPI_EAUTH", "file")
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("pepper runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pepper {args:?}: {stdout}{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pepper_against_brine() {
    let Some(pepper) = pepper() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no pepper in the Salt venv under CI (scripts/salt-venv.sh failed?)"
        );
        eprintln!("skipped: no pepper (run scripts/salt-venv.sh)");
        return;
    };
    let dir = tempdir();
    let (master, minions) = setup(dir.path()).await;
    let url = format!("http://{}/", master.netapi_addr().unwrap());

    // with Salt importable, pepper prints through Salt's outputters: one
    // JSON document per minion (or per key) with --out=json
    let ping = pepper_json(&pepper, &url, &["*", "test.ping"]).await;
    assert_eq!(ping, json!({"m1": true, "m2": true}));

    let published = pepper_json(&pepper, &url, &["--client=local_async", "*", "test.ping"]).await;
    let jid = published["jid"].as_str().unwrap().to_owned();
    assert_eq!(published["minions"], json!(["m1", "m2"]));

    let looked_up = eventually("pepper sees both returns", || {
        let (pepper, url, jid) = (pepper.clone(), url.clone(), jid.clone());
        async move {
            let jid_arg = format!("jid={jid}");
            let out = pepper_json(
                &pepper,
                &url,
                &["--client=runner", "jobs.lookup_jid", &jid_arg],
            )
            .await;
            (out == json!({"m1": true, "m2": true})).then_some(out)
        }
    })
    .await;
    assert_eq!(looked_up["m2"], true);

    let keys = pepper_json(&pepper, &url, &["--client=wheel", "key.list_all"]).await;
    assert_eq!(keys["minions"], json!(["m1", "m2"]), "{keys}");
    assert_eq!(keys["minions_pre"], json!([]), "{keys}");
    stop(master, minions).await;
}
