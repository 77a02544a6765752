//! The operator surface with real processes: `brine-master`, three
//! `brine-minion`s from config files, and `brine`, `brine-key`, `brine-run`
//! run as a user runs them, over each built-in transport.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::*;
use serde_json::Value as Json;

fn ids(map: &serde_json::Map<String, Json>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

fn operator_session(transport: &str) {
    let site = Site::new(transport);
    let master = site.start_master();
    let minions = [
        site.start_minion("m1", None),
        site.start_minion("m2", Some("web")),
        site.start_minion("m3", None),
    ];

    // The keys wait for acceptance.
    let listed = eventually("three unaccepted keys", || {
        let run = site.key(&["-L", "--out", "json"]);
        let doc: Json = serde_json::from_str(&run.stdout).map_err(|e| format!("{e}: {run:?}"))?;
        let pre = doc["minions_pre"].as_array().cloned().unwrap_or_default();
        if pre.len() == 3 {
            Ok(pre)
        } else {
            Err(format!("{run:?}"))
        }
    });
    assert_eq!(listed, ["m1", "m2", "m3"]);
    let accepted = site.key(&["-A", "-y"]);
    assert!(accepted.ok(), "{accepted:?}");

    // Every minion answers.
    let pinged = eventually("all three answer test.ping", || {
        let run = site.brine(&["*", "test.ping", "--out", "json", "-t", "3"]);
        let all = merged(&run.stdout);
        if run.ok() && all.len() == 3 {
            Ok(all)
        } else {
            Err(format!("{run:?}"))
        }
    });
    assert!(
        pinged.values().all(|v| *v == Json::Bool(true)),
        "{pinged:?}"
    );

    // Every target type.
    for (flags, expected) in [
        (&["m[12]"][..], &["m1", "m2"][..]),
        (&["-L", "m1,m3"], &["m1", "m3"]),
        (&["-E", "m[23]$"], &["m2", "m3"]),
        (&["-G", "role:web"], &["m2"]),
        (&["-P", "role:w.b"], &["m2"]),
        (&["-C", "G@role:web or m1"], &["m1", "m2"]),
        (&["-N", "group1"], &["m1", "m3"]),
    ] {
        let mut args = flags.to_vec();
        args.extend(["test.ping", "--out", "json", "--static"]);
        let run = site.brine(&args);
        assert!(run.ok(), "{flags:?}: {run:?}");
        assert_eq!(ids(&merged(&run.stdout)), expected, "{flags:?}");
    }

    // Arguments are typed as Salt types them; cmd.run runs a command.
    let echoed = site.brine(&["m1", "test.echo", "hi there", "--out", "json"]);
    assert_eq!(
        merged(&echoed.stdout).get("m1"),
        Some(&Json::from("hi there")),
        "{echoed:?}"
    );
    let hi = site.brine(&["m1", "cmd.run", "echo hi", "--out", "json"]);
    assert_eq!(
        merged(&hi.stdout).get("m1"),
        Some(&Json::from("hi")),
        "{hi:?}"
    );

    // -b 1: one minion at a time; each starts after the previous returned.
    let batch = site.brine(&[
        "*",
        "cmd.run",
        "sleep 0.3; date +%s.%N",
        "python_shell=True",
        "-b",
        "1",
        "--out",
        "json",
    ]);
    assert!(batch.ok(), "{batch:?}");
    assert_eq!(
        batch.stdout.matches("Executing run on").count(),
        3,
        "{batch:?}"
    );
    let stamps: Vec<f64> = json_docs(&batch.stdout)
        .iter()
        .filter_map(|doc| doc.as_object()?.values().next()?.as_str()?.parse().ok())
        .collect();
    assert_eq!(stamps.len(), 3, "{batch:?}");
    for pair in stamps.windows(2) {
        assert!(pair[1] - pair[0] >= 0.3, "not one at a time: {stamps:?}");
    }

    // --async, then the stored returns through the runner.
    let launched = site.brine(&["*", "test.ping", "--async"]);
    assert!(launched.ok(), "{launched:?}");
    let jid = launched
        .stdout
        .trim()
        .strip_prefix("Executed command with job ID: ")
        .expect("the job id line")
        .to_owned();
    let looked_up = eventually("lookup_jid has all three", || {
        let run = site.runner(&["jobs.lookup_jid", &jid, "--out", "json"]);
        let all = merged(&run.stdout);
        if all.len() == 3 {
            Ok(all)
        } else {
            Err(format!("{run:?}"))
        }
    });
    assert!(
        looked_up.values().all(|v| *v == Json::Bool(true)),
        "{looked_up:?}"
    );

    // A stopped minion: brine exits 11 and names it; manage.down names it.
    let [m1, m2, m3] = minions;
    m3.stop();
    let missing = site.brine(&["*", "test.ping", "-t", "2"]);
    assert_eq!(missing.code, Some(11), "{missing:?}");
    assert!(missing.stdout.contains("m3:"), "{missing:?}");
    assert!(
        missing.stdout.contains("Minion did not return"),
        "{missing:?}"
    );
    let down = site.runner(&["manage.down", "--out", "json"]);
    assert!(down.stdout.contains("m3"), "{down:?}");
    assert!(!down.stdout.contains("m1"), "{down:?}");

    drop((m1, m2));
    assert_eq!(master.stop(), Some(0));
}

fn bad_input(transport: &str) {
    let site = Site::new(transport);
    let master = site.start_master();
    for (args, what) in [
        (&["--tgt-type", "x", "*", "test.ping"][..], "--tgt-type"),
        (&["-C", "G@role:web and (", "test.ping"], "compound"),
        (&["-b", "lots", "*", "test.ping"], "batch"),
    ] {
        let run = site.brine(args);
        assert_ne!(run.code, Some(0), "{args:?}: {run:?}");
        assert!(
            run.stderr.to_lowercase().contains(what),
            "{args:?} should name {what}: {run:?}"
        );
    }
    let missing_dir = run("brine", &["-c", "/nonexistent/brine", "*", "test.ping"]);
    assert_ne!(missing_dir.code, Some(0));
    assert!(
        missing_dir.stderr.contains("/nonexistent/brine"),
        "{missing_dir:?}"
    );
    assert_eq!(
        missing_dir.stderr.trim().lines().count(),
        1,
        "{missing_dir:?}"
    );

    site.write_master("timeout: soon");
    let bad_value = site.brine(&["*", "test.ping"]);
    assert_ne!(bad_value.code, Some(0));
    assert!(bad_value.stderr.contains("timeout"), "{bad_value:?}");
    assert_eq!(bad_value.stderr.trim().lines().count(), 1, "{bad_value:?}");
    assert_eq!(master.stop(), Some(0));
}

/// `publish_port` = `ret_port` (the 10,000-minion layout): both channels
/// on one port, through a master restart.
fn one_port(transport: &str) {
    let site = Site::on_one_port(transport);
    site.write_master("auto_accept: true");
    let master = site.start_master();
    let m1 = site.start_minion("m1", Some("web"));
    let m2 = site.start_minion("m2", None);
    let ping_both = |what: &str| {
        eventually(what, || {
            let run = site.brine(&["*", "test.ping", "--out", "json", "--static"]);
            let got = merged(&run.stdout);
            if ids(&got) == ["m1", "m2"] {
                Ok(())
            } else {
                Err(format!("{run:?}"))
            }
        });
    };
    ping_both("both minions answer on one port");
    let hi = site.brine(&["-G", "role:web", "cmd.run", "echo hi", "--out", "json"]);
    assert!(hi.ok(), "{hi:?}");
    assert_eq!(merged(&hi.stdout)["m1"], Json::from("hi"), "{hi:?}");

    assert_eq!(master.stop(), Some(0));
    let master = site.start_master();
    ping_both("both minions answer again after a master restart");
    drop((m1, m2));
    assert_eq!(master.stop(), Some(0));
}

#[test]
fn tcp_on_one_port() {
    one_port("tcp");
}

#[test]
fn quic_on_one_port() {
    one_port("quic");
}

macro_rules! over {
    ($transport:ident) => {
        mod $transport {
            #[test]
            fn operator_session() {
                super::operator_session(stringify!($transport));
            }

            #[test]
            fn bad_input() {
                super::bad_input(stringify!($transport));
            }
        }
    };
}

over!(zeromq);
over!(tcp);
over!(quic);

/// The README's first command: started, answers test.ping, stopped.
#[test]
fn quickstart() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (publish, ret) = (free_port().to_string(), free_port().to_string());
    let api = free_port().to_string();
    let mut child = Command::new(bin("brine-quickstart"))
        .args(["--state-dir", state.to_str().unwrap(), "--transport", "tcp"])
        .args([
            "--publish-port",
            &publish,
            "--ret-port",
            &ret,
            "--api-port",
            &api,
            "--id",
            "local",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Stop with") {
            break;
        }
    }
    assert!(
        banner.contains("brine -c ./state/etc '*' test.ping"),
        "{banner}"
    );
    let etc = state.join("etc").display().to_string();
    let pinged = run("brine", &["-c", &etc, "*", "test.ping", "--out", "json"]);
    assert!(pinged.ok(), "{pinged:?}");
    assert_eq!(merged(&pinged.stdout)["local"], Json::Bool(true));
    // the REST API: admin logs in with the password the first run wrote
    assert!(
        banner.contains(&format!("curl -si http://127.0.0.1:{api}/login")),
        "{banner}"
    );
    let password = std::fs::read_to_string(state.join("etc/api-password")).unwrap();
    let login = Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{api}/login")])
        .args(["-d", "username=admin", "-d", "eauth=file", "-d"])
        .arg(format!("password={}", password.trim()))
        .output()
        .expect("curl runs");
    let reply: Json = serde_json::from_slice(&login.stdout).unwrap();
    assert_eq!(reply["return"][0]["user"], Json::from("admin"), "{reply}");
    terminate(&child);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l == "Brine stopped."), "{rest:?}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// `brine-call` runs on this host with the minion's config, no master.
#[test]
fn brine_call_runs_locally() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("minion"),
        format!(
            "root_dir: '{}'\nid: here\ngrains:\n  role: web\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let etc = dir.path().display().to_string();
    let role = run(
        "brine-call",
        &["-c", &etc, "grains.item", "role", "--out", "json"],
    );
    assert!(role.ok(), "{role:?}");
    let doc: Json = serde_json::from_str(&role.stdout).unwrap();
    assert_eq!(doc["local"]["role"], Json::from("web"));
    let ping = run("brine-call", &["-c", &etc, "--local", "test.ping"]);
    assert_eq!(ping.stdout, "local:\n    True\n");
    let failed = run(
        "brine-call",
        &[
            "-c",
            &etc,
            "cmd.run",
            "exit 3",
            "python_shell=True",
            "--retcode-passthrough",
        ],
    );
    assert_eq!(failed.code, Some(3), "{failed:?}");
    let missing = run("brine-call", &["-c", &etc, "no.such"]);
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(
        missing.stdout.contains("'no.such' is not available."),
        "{missing:?}"
    );
}
