#![allow(clippy::unwrap_used)]

use std::io::Cursor;

use brine_protocol::PrivateKey;
use brine_protocol::keys::KeyState;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: KeyStore,
    pem: String,
}

fn fixture(keys: &[(KeyState, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::new(dir.path().join("pki"));
    let pem = PrivateKey::generate(1024)
        .unwrap()
        .public_key()
        .to_pem()
        .unwrap();
    for (state, id) in keys {
        store.pki().write_minion_key(*state, id, &pem).unwrap();
    }
    Fixture {
        _dir: dir,
        store,
        pem,
    }
}

/// Runs `action` with `input` as the answers; returns (ok?, stdout, stderr).
fn run(cli: &KeyCli, action: &KeyAction, input: &str) -> (Result<(), String>, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut input = Cursor::new(input.as_bytes().to_vec());
    let result = cli.run(
        action,
        &mut Terminal {
            out: &mut out,
            err: &mut err,
            input: &mut input,
        },
    );
    (
        result.map_err(|e| e.to_string()),
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn cli(f: &Fixture) -> KeyCli {
    KeyCli::new(f.store.clone(), Printer::new(None, false))
}

#[test]
fn list_prints_every_heading_and_one_state() {
    let f = fixture(&[
        (KeyState::Accepted, "acc1"),
        (KeyState::Denied, "acc1"),
        (KeyState::Pending, "web2"),
        (KeyState::Pending, "Web1"),
        (KeyState::Rejected, "db1"),
    ]);
    let (ok, out, _) = run(&cli(&f), &KeyAction::List(ListWhich::All), "");
    ok.unwrap();
    assert_eq!(
        out,
        "Accepted Keys:\nacc1\nDenied Keys:\nacc1\nUnaccepted Keys:\nWeb1\nweb2\nRejected Keys:\ndb1\n"
    );
    let (_, out, _) = run(&cli(&f), &KeyAction::List("un".parse().unwrap()), "");
    assert_eq!(out, "Unaccepted Keys:\nWeb1\nweb2\n");
    let empty = fixture(&[]);
    let (_, out, _) = run(&cli(&empty), &KeyAction::List(ListWhich::All), "");
    assert_eq!(
        out,
        "Accepted Keys:\nDenied Keys:\nUnaccepted Keys:\nRejected Keys:\n"
    );
}

#[test]
fn list_words_follow_salts_prefixes() {
    assert_eq!("accepted".parse(), Ok(ListWhich::Accepted));
    assert_eq!("pre".parse(), Ok(ListWhich::Pending));
    assert_eq!("unaccepted".parse(), Ok(ListWhich::Pending));
    assert_eq!("rej".parse(), Ok(ListWhich::Rejected));
    assert_eq!("denied".parse(), Ok(ListWhich::Denied));
    assert_eq!("all".parse(), Ok(ListWhich::All));
    let err = "foo".parse::<ListWhich>().unwrap_err();
    assert!(
        err.contains("'foo' is not a valid argument to '--list'"),
        "{err}"
    );
}

#[test]
fn accept_shows_asks_and_reports() {
    let f = fixture(&[(KeyState::Pending, "web1"), (KeyState::Pending, "web2")]);
    // "n": nothing changes
    let (ok, out, _) = run(&cli(&f), &KeyAction::Accept("web1".into()), "n\n");
    ok.unwrap();
    assert_eq!(
        out,
        "The following keys are going to be accepted:\nUnaccepted Keys:\nweb1\nProceed? [n/Y] "
    );
    assert_eq!(f.store.list().unwrap().pending, ["web1", "web2"]);
    // an empty answer takes the default, yes
    let (ok, out, _) = run(&cli(&f), &KeyAction::Accept("web1".into()), "\n");
    ok.unwrap();
    assert!(
        out.ends_with("Proceed? [n/Y] Key for minion web1 accepted.\n"),
        "{out}"
    );
    assert_eq!(f.store.list().unwrap().accepted, ["web1"]);
    // closed input: an error, nothing changed
    let (err, _, _) = run(&cli(&f), &KeyAction::Accept("*".into()), "");
    assert!(err.unwrap_err().contains("no answer"));
    assert_eq!(f.store.list().unwrap().pending, ["web2"]);
    // -y
    let (ok, out, _) = run(&cli(&f).with_yes(true), &KeyAction::Accept("*".into()), "");
    ok.unwrap();
    assert_eq!(
        out,
        "The following keys are going to be accepted:\nUnaccepted Keys:\nweb2\nKey for minion web2 accepted.\n"
    );
    // nothing pending any more
    let (ok, out, _) = run(&cli(&f), &KeyAction::Accept("*".into()), "");
    ok.unwrap();
    assert_eq!(
        out,
        "The key glob '*' does not match any unaccepted keys.\n"
    );
}

#[test]
fn include_flags_widen_accept_and_reject() {
    let f = fixture(&[
        (KeyState::Rejected, "db1"),
        (KeyState::Accepted, "acc1"),
        (KeyState::Denied, "den1"),
    ]);
    let (_, out, _) = run(&cli(&f), &KeyAction::Accept("db1".into()), "");
    assert_eq!(
        out,
        "The key glob 'db1' does not match any unaccepted keys.\n"
    );
    let include = Include {
        rejected: true,
        denied: true,
        accepted: true,
        all: false,
    };
    let (_, out, _) = run(
        &cli(&f).with_include(include),
        &KeyAction::Accept("zz".into()),
        "",
    );
    assert_eq!(
        out,
        "The key glob 'zz' does not match any unaccepted, rejected or denied keys.\n"
    );
    // --include-all means rejected keys for accept
    let all = Include {
        all: true,
        ..Include::default()
    };
    let (ok, out, _) = run(
        &cli(&f).with_include(all).with_yes(true),
        &KeyAction::Accept("db1".into()),
        "",
    );
    ok.unwrap();
    assert!(out.contains("Rejected Keys:\ndb1\n"), "{out}");
    assert!(out.ends_with("Key for minion db1 accepted.\n"), "{out}");
    // reject with --include-accepted
    let accepted = Include {
        accepted: true,
        ..Include::default()
    };
    let (ok, out, _) = run(
        &cli(&f).with_include(accepted),
        &KeyAction::Reject("acc1".into()),
        "y\n",
    );
    ok.unwrap();
    assert_eq!(
        out,
        "The following keys are going to be rejected:\nAccepted Keys:\nacc1\nProceed? [n/Y] Key for minion acc1 rejected.\n"
    );
    assert_eq!(f.store.list().unwrap().rejected, ["acc1"]);
}

#[test]
fn delete_defaults_to_no_and_takes_every_state() {
    let f = fixture(&[(KeyState::Rejected, "acc1"), (KeyState::Denied, "acc1")]);
    let (ok, out, _) = run(&cli(&f), &KeyAction::Delete("acc1".into()), "\n");
    ok.unwrap();
    assert_eq!(
        out,
        "The following keys are going to be deleted:\nDenied Keys:\nacc1\nRejected Keys:\nacc1\nProceed? [N/y] "
    );
    assert_eq!(f.store.list().unwrap().rejected, ["acc1"]);
    let (ok, out, _) = run(&cli(&f), &KeyAction::Delete("acc1".into()), "yes\n");
    ok.unwrap();
    assert!(
        out.ends_with("Key for minion acc1 deleted.\nKey for minion acc1 deleted.\n"),
        "{out}"
    );
    assert!(f.store.list().unwrap().is_empty());
}

#[test]
fn an_invalid_key_is_not_accepted() {
    let f = fixture(&[(KeyState::Pending, "good")]);
    f.store
        .pki()
        .write_minion_key(KeyState::Pending, "bad", "not a key")
        .unwrap();
    let (ok, out, err) = run(&cli(&f).with_yes(true), &KeyAction::Accept("*".into()), "");
    ok.unwrap();
    assert!(out.contains("Unaccepted Keys:\nbad\ngood\n"), "{out}");
    assert!(out.ends_with("Key for minion good accepted.\n"), "{out}");
    assert_eq!(err, "Unable to accept invalid key for bad.\n");
    assert_eq!(f.store.list().unwrap().pending, ["bad"]);
}

#[test]
fn finger_includes_local_keys_and_print_shows_the_key() {
    let f = fixture(&[(KeyState::Pending, "web1")]);
    std::fs::write(f.store.pki().public_key_path(), &f.pem).unwrap();
    let finger = pem_finger(f.pem.as_bytes(), HashType::Sha256);
    let (_, out, _) = run(&cli(&f), &KeyAction::Finger("*".into()), "");
    assert_eq!(
        out,
        format!("Local Keys:\nmaster.pub:  {finger}\nUnaccepted Keys:\nweb1:  {finger}\n")
    );
    let (_, out, _) = run(&cli(&f), &KeyAction::Finger("web*".into()), "");
    assert_eq!(out, format!("Unaccepted Keys:\nweb1:  {finger}\n"));
    let (_, out, _) = run(&cli(&f), &KeyAction::Finger("nomatch".into()), "");
    assert_eq!(out, "");
    let (_, out, _) = run(&cli(&f), &KeyAction::Print("web1".into()), "");
    assert_eq!(
        out,
        format!("Unaccepted Keys:\nweb1:  {}\n", f.pem.trim_end())
    );
}

#[test]
fn gen_keys_checks_the_size() {
    let f = fixture(&[]);
    let (err, _, _) = run(
        &cli(&f),
        &KeyAction::GenKeys {
            name: "m".into(),
            dir: f.store.pki().dir().to_owned(),
            keysize: 1024,
        },
        "",
    );
    assert!(err.unwrap_err().contains("between 2048 and 32768"));
}

#[test]
fn outputter_names_are_checked() {
    assert_eq!(parse_outputter("key").unwrap(), Out::Key);
    assert_eq!(parse_outputter("text").unwrap().to_string(), "txt");
    let err = parse_outputter("xml").unwrap_err();
    assert!(err.contains("(available: key, nested, json"), "{err}");
}

#[test]
fn other_outputters_print_the_same_data() {
    let f = fixture(&[(KeyState::Pending, "web1")]);
    let json = KeyCli::new(
        f.store.clone(),
        Printer::new(Some("json".parse().unwrap()), false),
    );
    let (_, out, _) = run(&json, &KeyAction::List(ListWhich::All), "");
    assert_eq!(
        out,
        "{\n    \"minions\": [],\n    \"minions_pre\": [\n        \"web1\"\n    ],\n    \"minions_rejected\": [],\n    \"minions_denied\": []\n}\n"
    );
    let (_, out, _) = run(&json, &KeyAction::Accept("web1".into()), "n\n");
    assert_eq!(
        out,
        "The following keys are going to be accepted:\n{\n    \"minions_pre\": [\n        \"web1\"\n    ]\n}\nProceed? [n/Y] "
    );
}
