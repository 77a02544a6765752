//! `brine-key` as a user runs it: the real binary against a config
//! directory and a `pki_dir` in a temp dir; output compared with what
//! Salt 3007's `salt-key` prints for the same keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use brine_master::keys::{HashType, KeyStore, pem_finger};
use brine_protocol::PrivateKey;
use brine_protocol::keys::KeyState;

const BIN: &str = env!("CARGO_BIN_EXE_brine-key");

/// A key file whose sha256 fingerprint Salt computes as below.
const FAKE_PEM: &str = "-----BEGIN PUBLIC KEY-----\nAAAA\nBBBB\n-----END PUBLIC KEY-----\n";
const FAKE_FINGER: &str = "b1:d9:41:c7:78:ca:2b:8a:bf:df:5c:da:73:9b:bc:87:37:f2:ad:4e:94:31:e4:d5:9b:1f:a2:50:cb:1b:5f:5a";

struct Env {
    dir: tempfile::TempDir,
    store: KeyStore,
    pem: String,
}

impl Env {
    /// A config dir `<tmp>/etc` whose `master` roots everything in `<tmp>`.
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("cache")).unwrap();
        std::fs::write(
            root.join("etc/master"),
            format!(
                "id: test_master\nroot_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\n\
                 sock_dir: {r}/sock\nlog_file: {r}/master.log\n",
                r = root.display()
            ),
        )
        .unwrap();
        let pem = PrivateKey::generate(1024)
            .unwrap()
            .public_key()
            .to_pem()
            .unwrap();
        Env {
            store: KeyStore::new(root.join("pki")),
            dir,
            pem,
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn key(&self, state: KeyState, id: &str) {
        self.store
            .pki()
            .write_minion_key(state, id, &self.pem)
            .unwrap();
    }

    /// Runs `brine-key -c <conf> args…` with `input` on stdin.
    fn run(&self, args: &[&str], input: &str) -> Output {
        run_in(&self.conf(), args, input)
    }

    fn dropfile(&self) -> PathBuf {
        self.dir.path().join("cache/.dfn")
    }
}

fn run_in(conf: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("-c")
        .arg(conf)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("brine-key starts");
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Success with this exact stdout and nothing on stderr.
fn assert_prints(out: &Output, want: &str) {
    assert_eq!(stderr(out), "", "stderr");
    assert!(out.status.success(), "exit {:?}", out.status);
    assert_eq!(stdout(out), want);
}

/// Failure with `code` and one line on stderr containing `needle`.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("brine-key: "), "{err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

#[test]
fn listing_prints_salts_headings() {
    let env = Env::new();
    env.key(KeyState::Accepted, "acc1");
    env.key(KeyState::Denied, "acc1");
    env.key(KeyState::Pending, "web2");
    env.key(KeyState::Pending, "web1");
    env.key(KeyState::Rejected, "db1");
    let all = "Accepted Keys:\nacc1\nDenied Keys:\nacc1\nUnaccepted Keys:\nweb1\nweb2\nRejected Keys:\ndb1\n";
    assert_prints(&env.run(&["-L"], ""), all);
    // no action lists everything, as salt-key does
    assert_prints(&env.run(&[], ""), all);
    assert_prints(&env.run(&["-l", "all"], ""), all);
    assert_prints(&env.run(&["-l", "acc"], ""), "Accepted Keys:\nacc1\n");
    assert_prints(
        &env.run(&["--list", "un"], ""),
        "Unaccepted Keys:\nweb1\nweb2\n",
    );
    assert_prints(&env.run(&["-l", "rejected"], ""), "Rejected Keys:\ndb1\n");
    assert_prints(&env.run(&["-l", "den"], ""), "Denied Keys:\nacc1\n");
    assert_prints(
        &env.run(&["-l", "acc", "--force-color"], ""),
        "\x1b[0;1;32mAccepted Keys:\x1b[0;0m\n\x1b[0;32macc1\x1b[0;0m\n",
    );
    assert_fails(
        &env.run(&["-l", "acc", "--force-color", "--no-color"], ""),
        64,
        "cannot be used with",
    );
    // --out json: the same dict, in salt-key's order
    assert_prints(
        &env.run(&["-L", "--out", "json"], ""),
        "{\n    \"minions\": [\n        \"acc1\"\n    ],\n    \"minions_pre\": [\n        \"web1\",\n        \"web2\"\n    ],\n    \"minions_rejected\": [\n        \"db1\"\n    ],\n    \"minions_denied\": [\n        \"acc1\"\n    ]\n}\n",
    );
    assert_prints(&env.run(&["-L", "--out", "quiet"], ""), "");
    assert_prints(
        &env.run(&["-l", "un", "--out", "nested"], ""),
        "minions_pre:\n    - web1\n    - web2\n",
    );
}

#[test]
fn accept_asks_then_moves_exactly_the_keys_shown() {
    let env = Env::new();
    env.key(KeyState::Pending, "web1");
    env.key(KeyState::Pending, "web2");
    env.key(KeyState::Rejected, "db1");
    let shown = "The following keys are going to be accepted:\nUnaccepted Keys:\nweb1\n";
    assert_prints(
        &env.run(&["-a", "web1"], "n\n"),
        &format!("{shown}Proceed? [n/Y] "),
    );
    assert_eq!(env.store.list().unwrap().pending, ["web1", "web2"]);
    // Enter takes the default (yes)
    assert_prints(
        &env.run(&["-a", "web1"], "\n"),
        &format!("{shown}Proceed? [n/Y] Key for minion web1 accepted.\n"),
    );
    assert_eq!(env.store.list().unwrap().accepted, ["web1"]);
    // a rejected key needs --include-rejected
    assert_prints(
        &env.run(&["-a", "db1"], ""),
        "The key glob 'db1' does not match any unaccepted keys.\n",
    );
    assert_prints(
        &env.run(&["-a", "db1,web2", "--include-rejected", "-y"], ""),
        "The following keys are going to be accepted:\nUnaccepted Keys:\nweb2\nRejected Keys:\ndb1\n\
         Key for minion web2 accepted.\nKey for minion db1 accepted.\n",
    );
    assert_eq!(env.store.list().unwrap().accepted, ["db1", "web1", "web2"]);
    // -A with nothing pending
    assert_prints(
        &env.run(&["-A"], ""),
        "The key glob '*' does not match any unaccepted keys.\n",
    );
    // closed stdin: refused, nothing changes
    env.key(KeyState::Pending, "late");
    let out = env.run(&["-A"], "");
    assert_eq!(
        stdout(&out),
        "The following keys are going to be accepted:\nUnaccepted Keys:\nlate\nProceed? [n/Y] \n"
    );
    assert_fails(&out, 1, "no answer to the prompt");
    assert_eq!(env.store.list().unwrap().pending, ["late"]);
    // an invalid key is reported and left pending
    env.store
        .pki()
        .write_minion_key(KeyState::Pending, "bad", "not a key")
        .unwrap();
    let out = env.run(&["-A", "-y", "--out", "json"], "");
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "The following keys are going to be accepted:\n{\n    \"minions_pre\": [\n        \"bad\",\n        \"late\"\n    ]\n}\nKey for minion late accepted.\n"
    );
    // the key store logs why (as salt-key does), then the notice
    let err = stderr(&out);
    assert!(err.contains("invalid RSA public key"), "{err}");
    assert!(
        err.ends_with("Unable to accept invalid key for bad.\n"),
        "{err}"
    );
    assert_eq!(env.store.list().unwrap().pending, ["bad"]);
}

#[test]
fn reject_and_delete_ask_and_request_a_session_key_rotation() {
    let env = Env::new();
    env.key(KeyState::Accepted, "acc1");
    env.key(KeyState::Pending, "web1");
    assert_prints(
        &env.run(&["-r", "acc1"], ""),
        "The key glob 'acc1' does not match any unaccepted keys.\n",
    );
    assert!(!env.dropfile().exists());
    assert_prints(
        &env.run(&["-r", "acc1", "--include-accepted"], "y\n"),
        "The following keys are going to be rejected:\nAccepted Keys:\nacc1\nProceed? [n/Y] Key for minion acc1 rejected.\n",
    );
    assert_eq!(env.store.list().unwrap().rejected, ["acc1"]);
    // the running master rotates its AES key when it sees this
    assert!(env.dropfile().exists());
    std::fs::remove_file(env.dropfile()).unwrap();

    // delete defaults to no
    let listing = "The following keys are going to be deleted:\nUnaccepted Keys:\nweb1\nRejected Keys:\nacc1\nProceed? [N/y] ";
    assert_prints(&env.run(&["-D"], "\n"), listing);
    assert_eq!(env.store.list().unwrap().pending, ["web1"]);
    assert_prints(
        &env.run(&["-D"], "Y\n"),
        &format!("{listing}Key for minion web1 deleted.\nKey for minion acc1 deleted.\n"),
    );
    assert!(env.store.list().unwrap().is_empty());
    assert!(env.dropfile().exists());
    assert_prints(
        &env.run(&["-d", "zz", "--include-accepted", "--include-denied"], ""),
        "The key glob 'zz' does not match any unaccepted, accepted or denied keys.\n",
    );
    // -R rejects pending keys only; --rotate-aes-key false skips the request
    std::fs::remove_file(env.dropfile()).unwrap();
    env.key(KeyState::Pending, "web3");
    assert_prints(
        &env.run(&["-R", "-y", "--rotate-aes-key", "false"], ""),
        "The following keys are going to be rejected:\nUnaccepted Keys:\nweb3\nKey for minion web3 rejected.\n",
    );
    assert!(!env.dropfile().exists());
}

#[test]
fn fingerprints_and_key_text() {
    let env = Env::new();
    env.store
        .pki()
        .write_minion_key(KeyState::Pending, "web1", FAKE_PEM)
        .unwrap();
    env.key(KeyState::Accepted, "acc1");
    let acc_finger = pem_finger(env.pem.as_bytes(), HashType::Sha256);
    assert_prints(
        &env.run(&["-f", "web1"], ""),
        &format!("Unaccepted Keys:\nweb1:  {FAKE_FINGER}\n"),
    );
    // the master's own key files show under Local Keys
    std::fs::write(env.store.pki().public_key_path(), FAKE_PEM).unwrap();
    assert_prints(
        &env.run(&["-F"], ""),
        &format!(
            "Local Keys:\nmaster.pub:  {FAKE_FINGER}\nAccepted Keys:\nacc1:  {acc_finger}\nUnaccepted Keys:\nweb1:  {FAKE_FINGER}\n"
        ),
    );
    assert_prints(
        &env.run(&["-f", "master*"], ""),
        &format!("Local Keys:\nmaster.pub:  {FAKE_FINGER}\n"),
    );
    assert_prints(&env.run(&["-f", "nomatch"], ""), "");
    assert_prints(
        &env.run(&["-p", "web1"], ""),
        &format!("Unaccepted Keys:\nweb1:  {}\n", FAKE_PEM.trim_end()),
    );
    assert_prints(
        &env.run(&["-P", "--out", "json"], ""),
        &format!(
            "{{\n    \"minions\": {{\n        \"acc1\": {:?}\n    }},\n    \"minions_pre\": {{\n        \"web1\": {:?}\n    }}\n}}\n",
            env.pem, FAKE_PEM
        ),
    );
}

#[test]
fn gen_keys_writes_a_pair_and_prints_its_fingerprint() {
    let env = Env::new();
    let keydir = env.dir.path().join("gen");
    let keydir_arg = keydir.to_str().unwrap();
    let out = env.run(&["--gen-keys", "web9", "--gen-keys-dir", keydir_arg], "");
    let public = std::fs::read(keydir.join("web9.pub")).unwrap();
    let finger = pem_finger(&public, HashType::Sha256);
    assert_prints(&out, &format!("return:\n    {finger}\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keydir.join("web9.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
    }
    // an existing pair is kept, and no config directory is needed
    let out = run_in(
        &env.dir.path().join("no-such-dir"),
        &[
            "--gen-keys",
            "web9",
            "--gen-keys-dir",
            keydir_arg,
            "--out",
            "json",
        ],
        "",
    );
    assert_prints(&out, &format!("{{\n    \"return\": \"{finger}\"\n}}\n"));
    assert_fails(
        &env.run(&["--gen-keys", "x", "--keysize", "1024"], ""),
        64,
        "1024 is not in 2048..=32768",
    );
}

#[test]
fn errors_are_one_line_and_non_zero() {
    let env = Env::new();
    assert_fails(
        &run_in(&env.dir.path().join("missing"), &["-L"], ""),
        1,
        "does not exist",
    );
    assert_fails(
        &env.run(&["-l", "foo"], ""),
        64,
        "'foo' is not a valid argument to '--list'",
    );
    assert_fails(&env.run(&["-L", "-A"], ""), 64, "cannot be used with");
    assert_fails(
        &env.run(&["--out", "xml"], ""),
        64,
        "no outputter named \"xml\"",
    );
    assert_fails(
        &env.run(&["--log-level", "loud"], ""),
        64,
        "unknown log level",
    );
    let bad_config = env.dir.path().join("bad");
    std::fs::create_dir_all(&bad_config).unwrap();
    std::fs::write(bad_config.join("master"), "keysize: [1, 2]\n").unwrap();
    assert_fails(&run_in(&bad_config, &["-L"], ""), 1, "keysize");
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("brine-key "));
}
