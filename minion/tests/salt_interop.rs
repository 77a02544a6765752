//! Wire compatibility with stock Salt 3007.8 over ZeroMQ, both directions,
//! with real processes: stock `salt-minion`s behind a Brine master, a
//! Brine minion behind a stock `salt-master`, and a mixed fleet; and a
//! Salt 3006.9 minion (request protocol version 2) behind a Brine master.
//!
//! Stock Salt comes from the project's venv (`scripts/salt-venv.sh`);
//! without it these tests skip locally and fail under `CI`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;
mod salt_support;

use cli_support::*;
use salt_support::*;
use serde_json::{Map, Value as Json};

/// What a stock minion logs at ERROR while its key waits for acceptance.
const PENDING_NOTICE: &str = "The Salt Master has cached the public key for this node";

/// `brine-key -L` as JSON.
fn key_lists(site: &Site) -> Json {
    let run = site.key(&["-L", "--out", "json"]);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

fn names(lists: &Json, kind: &str) -> Vec<String> {
    let mut names: Vec<String> = lists[kind]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs `brine` with `--out json` until `ok` accepts the merged returns.
fn brine_until(
    site: &Site,
    what: &str,
    args: &[&str],
    ok: impl Fn(&Map<String, Json>) -> bool,
) -> Map<String, Json> {
    let mut all = args.to_vec();
    all.extend(["--out", "json"]);
    eventually(what, || {
        let run = site.brine(&all);
        let returns = merged(&run.stdout);
        if ok(&returns) {
            Ok(returns)
        } else {
            Err(format!("{run:?}"))
        }
    })
}

/// One run of `brine … --out json --static`; its returns.
fn brine_once(site: &Site, args: &[&str]) -> (Run, Map<String, Json>) {
    let mut all = args.to_vec();
    all.extend(["--out", "json", "--static"]);
    let run = site.brine(&all);
    let returns = merged(&run.stdout);
    (run, returns)
}

fn sorted_ids(map: &Map<String, Json>) -> Vec<&str> {
    let mut ids: Vec<&str> = map.keys().map(String::as_str).collect();
    ids.sort_unstable();
    ids
}

/// The Brine master refused nothing a stock minion asked, except
/// refusals whose reason is in `expected`.
fn assert_nothing_refused(master: &Daemon, expected: &[&str]) {
    let log = master.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused") || l.contains("unknown cmd"))
        .filter(|l| !expected.iter().any(|e| l.contains(e)))
        .collect();
    assert!(
        refused.is_empty(),
        "the master refused requests: {refused:#?}"
    );
}

fn assert_no_errors(minion: &StockMinion, expected: &[&str]) {
    let errors = minion.process.errors(expected);
    assert!(
        errors.is_empty(),
        "{} logged errors: {errors:#?}",
        minion.id
    );
}

// --- Direction 1: stock salt-minion → Brine master ------------------------------

#[test]
fn stock_minions_join_a_brine_master() {
    let Some(venv) = Venv::find() else { return };
    let site = Site::new("zeromq");
    let master = site.start_master();
    let ports = MasterPorts {
        publish_port: site.publish_port,
        ret_port: site.ret_port,
    };
    let s1 = StockMinion::start(&venv, site.root(), "s1", ports, "  role: web\n");
    let s2 = StockMinion::start(&venv, site.root(), "s2", ports, "");

    // Their keys wait for acceptance.
    eventually("both keys pending", || {
        let lists = key_lists(&site);
        if names(&lists, "minions_pre") == ["s1", "s2"] {
            Ok(())
        } else {
            Err(lists.to_string())
        }
    });
    assert!(names(&key_lists(&site), "minions").is_empty());
    for id in ["s1", "s2"] {
        let accepted = site.key(&["-a", id, "-y"]);
        assert!(accepted.ok(), "{accepted:?}");
    }
    brine_until(
        &site,
        "both answer test.ping",
        &["*", "test.ping", "-t", "3"],
        |r| r.len() == 2 && r.values().all(|v| *v == Json::Bool(true)),
    );
    wait_until("both stock minions are ready", || {
        s1.is_ready() && s2.is_ready()
    });

    // Arguments, commands, grains.
    let (run, echoed) = brine_once(&site, &["*", "test.echo", "hi there"]);
    assert!(run.ok(), "{run:?}");
    assert!(echoed.values().all(|v| *v == "hi there"), "{echoed:?}");
    let (run, hi) = brine_once(&site, &["s1", "cmd.run", "echo hi"]);
    assert_eq!(hi.get("s1"), Some(&Json::from("hi")), "{run:?}");
    let (run, grains) = brine_once(&site, &["*", "grains.items"]);
    assert_eq!(sorted_ids(&grains), ["s1", "s2"], "{run:?}");
    assert_eq!(grains["s1"]["id"], "s1");
    assert_eq!(grains["s1"]["role"], "web");
    let os = grains["s1"]["os"].as_str().expect("an os grain").to_owned();

    // Targeting by the grains the stock minions reported.
    let (run, web) = brine_once(&site, &["-G", "role:web", "test.ping"]);
    assert_eq!(sorted_ids(&web), ["s1"], "{run:?}");
    let os_target = format!("os:{os}");
    let (run, by_os) = brine_once(&site, &["-G", &os_target, "test.ping"]);
    assert_eq!(sorted_ids(&by_os), ["s1", "s2"], "{run:?}");
    let (run, compound) = brine_once(&site, &["-C", "G@role:web or s2", "test.ping"]);
    assert_eq!(sorted_ids(&compound), ["s1", "s2"], "{run:?}");

    // A job longer than the timeout: saltutil.find_job keeps the CLI waiting.
    let launched = site.brine(&["s2", "test.sleep", "3", "--async"]);
    let jid = launched
        .stdout
        .trim()
        .strip_prefix("Executed command with job ID: ")
        .unwrap_or_else(|| panic!("{launched:?}"))
        .to_owned();
    let found = brine_until(
        &site,
        "find_job sees the running job",
        &["s2", "saltutil.find_job", &jid],
        |r| r.get("s2").and_then(|v| v.get("jid")).is_some(),
    );
    assert_eq!(found["s2"]["fun"], "test.sleep", "{found:?}");
    assert_eq!(found["s2"]["jid"], jid.as_str(), "{found:?}");
    let (run, slept) = brine_once(&site, &["s1", "test.sleep", "3", "-t", "1"]);
    assert!(run.ok(), "{run:?}");
    assert_eq!(slept.get("s1"), Some(&Json::Bool(true)), "{run:?}");

    // What a stock minion asks beyond jobs gets a well-formed answer: the
    // file server, master options, pillar, mine.
    for (fun, args, expected) in [
        ("cp.list_master", &[][..], Json::Array(vec![])),
        ("cp.envs", &[], Json::Array(vec![])),
        ("pillar.items", &[], Json::Object(Map::new())),
    ] {
        let mut all = vec!["s1", fun];
        all.extend_from_slice(args);
        let (run, ret) = brine_once(&site, &all);
        assert_eq!(ret.get("s1"), Some(&expected), "{fun}: {run:?}");
    }
    let (run, synced) = brine_once(&site, &["s1", "saltutil.sync_all"]);
    assert!(synced["s1"].is_object(), "{run:?}");
    let (run, applied) = brine_once(&site, &["s1", "state.apply"]);
    let text = applied["s1"].to_string();
    assert!(
        text.contains("No Top file") && !text.contains("Traceback"),
        "{run:?}"
    );
    assert_nothing_refused(&master, &[]);
    for minion in [&s1, &s2] {
        assert_no_errors(minion, &[PENDING_NOTICE]);
    }

    // Key rotation: s2's key is deleted; s1 re-authenticates with the new
    // AES key and keeps working; s2 is pending again.
    let deleted = site.key(&["-d", "s2", "-y"]);
    assert!(deleted.ok(), "{deleted:?}");
    eventually("the master rotated its AES key", || {
        if master.log().contains("rotated the AES key") {
            Ok(())
        } else {
            Err(master.log())
        }
    });
    let after = brine_until(
        &site,
        "s1 answers after the rotation",
        &["*", "test.ping", "-t", "3"],
        |r| r.get("s1") == Some(&Json::Bool(true)),
    );
    assert_eq!(sorted_ids(&after), ["s1"], "{after:?}");
    eventually("s2 is pending again", || {
        let lists = key_lists(&site);
        if names(&lists, "minions_pre") == ["s2"] {
            Ok(())
        } else {
            Err(lists.to_string())
        }
    });
    let accepted = site.key(&["-a", "s2", "-y"]);
    assert!(accepted.ok(), "{accepted:?}");
    brine_until(
        &site,
        "both answer again",
        &["*", "test.ping", "-t", "3"],
        |r| r.len() == 2 && r.values().all(|v| *v == Json::Bool(true)),
    );
    // Brine gives a re-accepted key a new session key (a stock master keeps
    // the old one): the stock minion's second channel still holds the old
    // one, gets refused once, signs in again and resends.
    assert_nothing_refused(&master, &["reason=could not decrypt the load"]);
    assert_no_errors(&s1, &[PENDING_NOTICE]);
    drop((s1, s2));
    assert_eq!(master.stop(), Some(0));
}

// --- Salt 3006 minions (request protocol version 2) → Brine master -------------

/// A Salt 3006.9 minion (requests encrypted with the master's AES key,
/// no session key, `tok` only on events) beside a 3007.8 one (version 3)
/// behind one Brine master: auth, jobs, grain targeting, pillar and file
/// server requests, and an AES key rotation the 3006 minion signs in again
/// after.
#[test]
fn salt3006_minions_join_a_brine_master() {
    let Some(old) = Venv::find_salt3006() else {
        return;
    };
    let Some(venv) = Venv::find() else { return };
    let site = Site::new("zeromq");
    let master = site.start_master();
    let ports = MasterPorts {
        publish_port: site.publish_port,
        ret_port: site.ret_port,
    };
    let o1 = StockMinion::start(&old, site.root(), "o1", ports, "  role: db\n");
    let s1 = StockMinion::start(&venv, site.root(), "s1", ports, "  role: web\n");

    eventually("both keys pending", || {
        let lists = key_lists(&site);
        if names(&lists, "minions_pre") == ["o1", "s1"] {
            Ok(())
        } else {
            Err(lists.to_string())
        }
    });
    for id in ["o1", "s1"] {
        let accepted = site.key(&["-a", id, "-y"]);
        assert!(accepted.ok(), "{accepted:?}");
    }
    brine_until(
        &site,
        "both answer test.ping",
        &["*", "test.ping", "-t", "3"],
        |r| r.len() == 2 && r.values().all(|v| *v == Json::Bool(true)),
    );
    wait_until("both stock minions are ready", || {
        o1.is_ready() && s1.is_ready()
    });

    // Jobs: arguments, commands, grains.
    let (run, hi) = brine_once(&site, &["*", "cmd.run", "echo hi"]);
    assert_eq!(sorted_ids(&hi), ["o1", "s1"], "{run:?}");
    assert!(hi.values().all(|v| *v == "hi"), "{run:?}");
    let (run, echoed) = brine_once(&site, &["o1", "test.echo", "from 3006"]);
    assert_eq!(echoed.get("o1"), Some(&Json::from("from 3006")), "{run:?}");
    let (run, grains) = brine_once(&site, &["o1", "grains.items"]);
    assert_eq!(grains["o1"]["saltversion"], SALT_3006_VERSION, "{run:?}");
    let os = grains["o1"]["os"].as_str().expect("an os grain").to_owned();

    // Targeting by the grains each reported with its (v2 or v3) `_pillar`.
    let (run, db) = brine_once(&site, &["-G", "role:db", "test.ping"]);
    assert_eq!(sorted_ids(&db), ["o1"], "{run:?}");
    let os_target = format!("os:{os}");
    let (run, by_os) = brine_once(&site, &["-G", &os_target, "test.ping"]);
    assert_eq!(sorted_ids(&by_os), ["o1", "s1"], "{run:?}");
    let (run, compound) = brine_once(&site, &["-C", "G@role:db or G@role:web", "test.ping"]);
    assert_eq!(sorted_ids(&compound), ["o1", "s1"], "{run:?}");

    // Pillar (private reply) and the file server over version 2.
    let (run, pillar) = brine_once(&site, &["o1", "pillar.items"]);
    assert_eq!(pillar.get("o1"), Some(&Json::Object(Map::new())), "{run:?}");
    let (run, files) = brine_once(&site, &["o1", "cp.list_master"]);
    assert_eq!(files.get("o1"), Some(&Json::Array(vec![])), "{run:?}");
    assert_nothing_refused(&master, &[]);

    // s1's key is deleted: the AES key rotates, and the 3006 minion, whose
    // requests are encrypted with it, signs in again and keeps answering.
    let deleted = site.key(&["-d", "s1", "-y"]);
    assert!(deleted.ok(), "{deleted:?}");
    eventually("the master rotated its AES key", || {
        if master.log().contains("rotated the AES key") {
            Ok(())
        } else {
            Err(master.log())
        }
    });
    let after = brine_until(
        &site,
        "o1 answers after the rotation",
        &["o1", "cmd.run", "echo again", "-t", "3"],
        |r| r.get("o1") == Some(&Json::from("again")),
    );
    assert_eq!(sorted_ids(&after), ["o1"], "{after:?}");
    // Requests under the old key get `bad load` once (that is how the
    // minion learns of the rotation); nothing else is refused.
    assert_nothing_refused(&master, &["reason=could not decrypt the load"]);
    assert_no_errors(&o1, &[PENDING_NOTICE]);
    drop((o1, s1));
    assert_eq!(master.stop(), Some(0));
}

// --- Direction 2: Brine minion → stock salt-master ------------------------------

/// `salt-key -L` on a stock master as JSON.
fn stock_key_lists(master: &StockMaster) -> Json {
    let run = master.key(&["-L", "--out", "json"]);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

/// `salt … --out json --static` on a stock master; its returns.
fn salt_once(master: &StockMaster, args: &[&str]) -> (Run, Map<String, Json>) {
    let mut all = args.to_vec();
    all.extend(["--out", "json", "--static"]);
    let run = master.salt(&all);
    let returns = merged(&run.stdout);
    (run, returns)
}

/// The job id `--async` printed.
fn async_jid(run: &Run) -> String {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Executed command with job ID: "))
        .unwrap_or_else(|| panic!("no job id: {run:?}"))
        .trim()
        .to_owned()
}

/// The return loads of `jid` the watcher saw, by minion id.
fn returns_of(watch: &EventWatch, jid: &str) -> Map<String, Json> {
    let prefix = format!("salt/job/{jid}/ret/");
    watch
        .events()
        .into_iter()
        .filter_map(|(tag, data)| Some((tag.strip_prefix(&prefix)?.to_owned(), data)))
        .collect()
}

#[test]
fn brine_minion_joins_a_stock_master() {
    let Some(venv) = Venv::find() else { return };
    // The site holds the temp dir; its ports become the stock master's.
    let mut site = Site::new("zeromq");
    let master = StockMaster::start(&venv, site.root());
    site.ret_port = master.ret_port;
    site.publish_port = master.publish_port;
    let ports = MasterPorts {
        publish_port: master.publish_port,
        ret_port: master.ret_port,
    };
    // A Brine minion, and a stock one to compare its answers with.
    let b1 = site.start_minion("b1", Some("web"));
    let s1 = StockMinion::start(&venv, site.root(), "s1", ports, "  role: db\n");

    eventually("both keys pending on the stock master", || {
        let lists = stock_key_lists(&master);
        if names(&lists, "minions_pre") == ["b1", "s1"] {
            Ok(())
        } else {
            Err(lists.to_string())
        }
    });
    for id in ["b1", "s1"] {
        let accepted = master.key(&["-a", id, "-y"]);
        assert!(accepted.ok(), "{accepted:?}");
    }
    let watch = EventWatch::start(&master, site.root(), "salt/job/*/ret/*");
    // Both answer, and the watcher is connected (it saw the returns).
    wait_until("the stock minion is ready", || s1.is_ready());
    eventually("both answer test.ping, seen on the event bus", || {
        let (run, ret) = salt_once(&master, &["*", "test.ping", "-t", "2"]);
        if ret.len() == 2 && !watch.events().is_empty() {
            Ok(())
        } else {
            Err(format!("{run:?}"))
        }
    });

    // Same answers, same return loads as the stock minion's.
    for args in [
        &["test.ping"][..],
        &["cmd.run", "echo hi"],
        &["test.echo", "hello there"],
        &["test.arg", "1", "two", "k=v"],
        &["cmd.retcode", "sh -c 'exit 3'"],
    ] {
        let mut all = vec!["*"];
        all.extend_from_slice(args);
        let (run, ret) = salt_once(&master, &all);
        assert_eq!(sorted_ids(&ret), ["b1", "s1"], "{args:?}: {run:?}");
        assert_eq!(ret["b1"], ret["s1"], "{args:?}: {run:?}");
        let jid = eventually("both returns on the event bus", || {
            let newest = watch
                .events()
                .into_iter()
                .filter(|(_, load)| load["fun"] == args[0])
                .filter_map(|(_, load)| load["jid"].as_str().map(str::to_owned))
                .max()
                .ok_or("no return yet")?;
            if returns_of(&watch, &newest).len() == 2 {
                Ok(newest)
            } else {
                Err(format!("only one return for {newest}"))
            }
        });
        let loads = returns_of(&watch, &jid);
        let shape = |load: &Json| {
            let mut keys: Vec<String> = load.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(
            shape(&loads["b1"]),
            shape(&loads["s1"]),
            "{args:?}: {loads:?}"
        );
        for key in [
            "fun", "fun_args", "return", "retcode", "success", "jid", "user", "cmd",
        ] {
            assert_eq!(
                loads["b1"][key], loads["s1"][key],
                "{args:?} {key}: {loads:?}"
            );
        }
    }

    // Grains, and targeting by them on the stock master.
    let (run, grains) = salt_once(&master, &["b1", "grains.items"]);
    assert_eq!(grains["b1"]["id"], "b1", "{run:?}");
    assert_eq!(grains["b1"]["role"], "web", "{run:?}");
    let os = grains["b1"]["os"].as_str().expect("an os grain").to_owned();
    let os_target = format!("os:{os}");
    let (run, by_os) = salt_once(&master, &["-G", &os_target, "test.ping"]);
    assert_eq!(sorted_ids(&by_os), ["b1", "s1"], "{run:?}");
    let (run, web) = salt_once(&master, &["-G", "role:web", "test.ping"]);
    assert_eq!(sorted_ids(&web), ["b1"], "{run:?}");

    // A job longer than the timeout: the stock CLI asks saltutil.find_job
    // and keeps waiting while the Brine minion says it is still running.
    let (run, slept) = salt_once(&master, &["*", "test.sleep", "3", "-t", "1"]);
    assert_eq!(sorted_ids(&slept), ["b1", "s1"], "{run:?}");
    assert!(slept.values().all(|v| *v == Json::Bool(true)), "{run:?}");

    // The stock master's job cache has the Brine minion's return.
    let launched = master.salt(&["*", "cmd.run", "echo hi", "--async"]);
    let jid = async_jid(&launched);
    let looked_up = eventually("lookup_jid shows both returns", || {
        let run = master.runner(&["jobs.lookup_jid", &jid, "--out", "json"]);
        let all = merged(&run.stdout);
        if all.len() == 2 {
            Ok(all)
        } else {
            Err(format!("{run:?}"))
        }
    });
    assert_eq!(
        looked_up.get("b1"),
        Some(&Json::from("hi")),
        "{looked_up:?}"
    );
    assert_eq!(looked_up["b1"], looked_up["s1"]);

    let master_errors = master.process.errors(&[]);
    assert!(
        master_errors.is_empty(),
        "salt-master errors: {master_errors:#?}"
    );
    // cmd.retcode logs a failing command at ERROR on a stock minion.
    assert_no_errors(
        &s1,
        &[PENDING_NOTICE, "failed with return code", "retcode: 3"],
    );
    let brine_errors: Vec<String> = b1
        .log()
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(str::to_owned)
        .collect();
    assert!(brine_errors.is_empty(), "{brine_errors:#?}");
    drop((watch, s1, b1, master));
}

#[test]
fn brine_minion_follows_zmq_filtering_and_unsigned_publishes() {
    let Some(venv) = Venv::find() else { return };
    // With zmq_filtering the stock master sends [topic, payload] frames,
    // topic "broadcast" or the SHA-1 of the target id (for list targets);
    // with sign_pub_messages off it sends no `sig`, which a Brine minion
    // accepts only when told to (its default requires signed publishes).
    let mut site = Site::new("zeromq");
    let master = StockMaster::start_with(
        &venv,
        site.root(),
        "zmq_filtering: true\nsign_pub_messages: false\nauto_accept: true\n",
    );
    site.ret_port = master.ret_port;
    site.publish_port = master.publish_port;
    let etc = site.write_minion("b1", None);
    let config = etc.join("minion");
    let text = std::fs::read_to_string(&config).unwrap();
    let extra = "zmq_filtering: true\nsign_pub_messages: false\n";
    std::fs::write(&config, format!("{text}{extra}")).unwrap();
    let b1 = Daemon::start("b1", "brine-minion", &etc, site.root());
    eventually("b1 answers a broadcast", || {
        let (run, ret) = salt_once(&master, &["*", "test.ping", "-t", "2"]);
        if ret.get("b1") == Some(&Json::Bool(true)) {
            Ok(())
        } else {
            Err(format!("{run:?}"))
        }
    });
    let (run, listed) = salt_once(&master, &["-L", "b1,nobody", "test.echo", "topic"]);
    assert_eq!(listed.get("b1"), Some(&Json::from("topic")), "{run:?}");
    drop((b1, master));
}

// --- A mixed fleet ---------------------------------------------------------------

#[test]
fn mixed_fleet_answers_as_one() {
    let Some(venv) = Venv::find() else { return };
    let site = Site::new("zeromq");
    let master = site.start_master();
    let ports = MasterPorts {
        publish_port: site.publish_port,
        ret_port: site.ret_port,
    };
    let stock = [
        StockMinion::start(&venv, site.root(), "s1", ports, "  role: web\n"),
        StockMinion::start(&venv, site.root(), "s2", ports, "  role: db\n"),
    ];
    let brine = [
        site.start_minion("b1", Some("web")),
        site.start_minion("b2", Some("db")),
    ];
    let all = ["b1", "b2", "s1", "s2"];
    eventually("four keys pending", || {
        let lists = key_lists(&site);
        if names(&lists, "minions_pre") == all {
            Ok(())
        } else {
            Err(lists.to_string())
        }
    });
    let accepted = site.key(&["-A", "-y"]);
    assert!(accepted.ok(), "{accepted:?}");
    let pinged = brine_until(
        &site,
        "all four answer",
        &["*", "test.ping", "-t", "3"],
        |r| r.len() == 4 && r.values().all(|v| *v == Json::Bool(true)),
    );
    assert_eq!(sorted_ids(&pinged), all);

    // One job, both kinds of minion, same answers; targeting across both.
    let (run, hi) = brine_once(&site, &["*", "cmd.run", "echo hi"]);
    assert_eq!(sorted_ids(&hi), all, "{run:?}");
    assert!(hi.values().all(|v| *v == "hi"), "{run:?}");
    let (run, web) = brine_once(&site, &["-G", "role:web", "test.ping"]);
    assert_eq!(sorted_ids(&web), ["b1", "s1"], "{run:?}");
    let (run, listed) = brine_once(&site, &["-L", "b2,s2", "test.echo", "x"]);
    assert_eq!(sorted_ids(&listed), ["b2", "s2"], "{run:?}");
    assert_nothing_refused(&master, &[]);
    for minion in &stock {
        assert_no_errors(minion, &[PENDING_NOTICE]);
    }
    drop((stock, brine));
    assert_eq!(master.stop(), Some(0));
}

// --- Migration: a Brine master takes over a stock master's fleet -------------------

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_brine_master_takes_over_a_stock_fleet() {
    let Some(venv) = Venv::find() else { return };
    let mut site = Site::new("zeromq");
    let stock_master = StockMaster::start(&venv, site.root());
    let ports = MasterPorts {
        publish_port: stock_master.publish_port,
        ret_port: stock_master.ret_port,
    };
    let s1 = StockMinion::start(&venv, site.root(), "s1", ports, "");
    eventually("s1 pending on the stock master", || {
        let lists = stock_key_lists(&stock_master);
        if names(&lists, "minions_pre") == ["s1"] {
            Ok(())
        } else {
            Err(lists.to_string())
        }
    });
    let accepted = stock_master.key(&["-a", "s1", "-y"]);
    assert!(accepted.ok(), "{accepted:?}");
    wait_until("s1 is ready", || s1.is_ready());
    eventually("s1 answers the stock master", || {
        let (run, ret) = salt_once(&stock_master, &["s1", "test.ping", "-t", "2"]);
        if ret.get("s1") == Some(&Json::Bool(true)) {
            Ok(())
        } else {
            Err(format!("{run:?}"))
        }
    });

    // The stock master stops; a Brine master starts on its ports with a
    // copy of its pki dir (master key pair, accepted minion keys), as an
    // operator copies /etc/salt/pki/master to /etc/brine/pki/master. The
    // minion is left alone: no new key, no acceptance, no restart.
    drop(stock_master);
    // Its processes let go of the ports a moment after the kill returns
    // (a Brine master started sooner found a port in use, once in CI).
    eventually("the stock master's ports are free", || {
        for port in [ports.ret_port, ports.publish_port] {
            std::net::TcpListener::bind(("127.0.0.1", port))
                .map_err(|e| format!("port {port}: {e}"))?;
        }
        Ok(())
    });
    copy_dir(
        &site.root().join("salt-master/etc/salt/pki/master"),
        &site.root().join("master/etc/brine/pki/master"),
    );
    site.ret_port = ports.ret_port;
    site.publish_port = ports.publish_port;
    site.write_master("");
    let master = site.start_master();
    assert_eq!(names(&key_lists(&site), "minions"), ["s1"]);
    let after = brine_until(
        &site,
        "s1 answers the Brine master",
        &["s1", "test.ping", "-t", "3"],
        |r| r.get("s1") == Some(&Json::Bool(true)),
    );
    assert_eq!(sorted_ids(&after), ["s1"]);
    let (run, hi) = brine_once(&site, &["s1", "cmd.run", "echo hi"]);
    assert_eq!(hi.get("s1"), Some(&Json::from("hi")), "{run:?}");
    // The minion's channels still hold the stock master's session key: each
    // is refused once, signs in again and resends.
    assert_nothing_refused(&master, &["reason=could not decrypt the load"]);
    assert_no_errors(&s1, &[PENDING_NOTICE]);
    drop(s1);
    assert_eq!(master.stop(), Some(0));
}
