//! KeyStore and KeyWatch over real temporary pki directories.

use std::fs;
use std::sync::OnceLock;

use brine_protocol::PrivateKey;
use brine_protocol::keys::KeyState;

use super::*;

/// One real public key for every test (generation is slow in debug builds).
fn pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        PrivateKey::generate(1024)
            .unwrap()
            .public_key()
            .to_pem()
            .unwrap()
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: KeyStore,
    cachedir: std::path::PathBuf,
}

fn fixture(pending: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cachedir = dir.path().join("cache");
    fs::create_dir(&cachedir).unwrap();
    let store = KeyStore::new(dir.path().join("pki")).with_rotation(RotationRequest {
        cachedir: cachedir.clone(),
        master_id: "host_master".into(),
    });
    store.pki().ensure_layout().unwrap();
    for id in pending {
        store
            .pki()
            .write_minion_key(KeyState::Pending, id, pem())
            .unwrap();
    }
    Fixture {
        _dir: dir,
        store,
        cachedir,
    }
}

fn acts(changes: &KeyChanges) -> Vec<(KeyAct, &str)> {
    changes
        .events
        .iter()
        .map(|e| (e.act, e.id.as_str()))
        .collect()
}

#[test]
fn list_is_sorted_by_state() {
    let f = fixture(&["web2", "db1", "web1"]);
    f.store
        .pki()
        .write_minion_key(KeyState::Denied, "evil", pem())
        .unwrap();
    // dot files (temporary files of atomic writes) are not keys
    fs::write(f.store.pki().state_dir(KeyState::Pending).join(".tmp"), "x").unwrap();
    let list = f.store.list().unwrap();
    assert_eq!(list.pending, ["db1", "web1", "web2"]);
    assert_eq!(list.denied, ["evil"]);
    assert!(list.accepted.is_empty() && list.rejected.is_empty());
    assert_eq!(f.store.state_of("web1").unwrap(), Some(KeyState::Pending));
    assert_eq!(f.store.state_of("nobody").unwrap(), None);
    assert!(f.store.state_of("../etc").is_err());
}

#[test]
fn accept_by_glob_and_list() {
    let f = fixture(&["web1", "web2", "db1"]);
    let changes = f.store.accept("web*").unwrap();
    assert_eq!(
        acts(&changes),
        [(KeyAct::Accept, "web1"), (KeyAct::Accept, "web2")]
    );
    assert!(!changes.rotation_requested, "accepting does not rotate");
    let changes = f.store.accept("db1,nothing").unwrap();
    assert_eq!(acts(&changes), [(KeyAct::Accept, "db1")]);
    let list = f.store.list().unwrap();
    assert_eq!(list.accepted, ["db1", "web1", "web2"]);
    assert!(list.pending.is_empty());
    // the key moved intact
    assert_eq!(
        f.store
            .pki()
            .read_minion_key(KeyState::Accepted, "web1")
            .unwrap()
            .as_deref(),
        Some(pem())
    );
    // nothing pending: nothing happens
    assert!(f.store.accept_all().unwrap().events.is_empty());
    assert!(!f.cachedir.join(DROPFILE).exists());
}

#[test]
fn accept_skips_invalid_keys() {
    let f = fixture(&["good"]);
    f.store
        .pki()
        .write_minion_key(KeyState::Pending, "junk", "not a key")
        .unwrap();
    let changes = f.store.accept_all().unwrap();
    assert_eq!(acts(&changes), [(KeyAct::Accept, "good")]);
    assert_eq!(changes.skipped.len(), 1);
    assert_eq!(changes.skipped[0].0, "junk");
    assert_eq!(f.store.state_of("junk").unwrap(), Some(KeyState::Pending));
}

#[test]
fn reject_and_delete_request_rotation() {
    let f = fixture(&["m1", "m2", "m3"]);
    f.store.accept("m3").unwrap();
    let changes = f.store.reject("m1").unwrap();
    assert_eq!(acts(&changes), [(KeyAct::Reject, "m1")]);
    assert!(changes.rotation_requested);
    let dfn = f.cachedir.join(DROPFILE);
    assert_eq!(fs::read_to_string(&dfn).unwrap(), "host_master");
    // the master consumes the request
    assert!(take_aes_rotation_request(&f.cachedir, "host_master").unwrap());

    // reject only touches pending keys unless asked
    assert!(f.store.reject("m3").unwrap().events.is_empty());
    assert!(!dfn.exists(), "no change, no rotation");
    let changes = f
        .store
        .reject_from("m3", &[KeyState::Pending, KeyState::Accepted])
        .unwrap();
    assert_eq!(acts(&changes), [(KeyAct::Reject, "m3")]);

    // accept a rejected key only when asked
    assert!(f.store.accept("m1").unwrap().events.is_empty());
    let changes = f
        .store
        .accept_from("m1", &[KeyState::Pending, KeyState::Rejected])
        .unwrap();
    assert_eq!(acts(&changes), [(KeyAct::Accept, "m1")]);

    assert!(take_aes_rotation_request(&f.cachedir, "host_master").unwrap());
    let changes = f.store.delete("m*").unwrap();
    assert_eq!(
        acts(&changes),
        [
            (KeyAct::Delete, "m1"),
            (KeyAct::Delete, "m2"),
            (KeyAct::Delete, "m3")
        ]
    );
    assert!(changes.rotation_requested);
    assert!(f.store.list().unwrap().is_empty());
    assert_eq!(
        changes.events[0].data().get("act").and_then(|v| v.as_str()),
        Some("delete")
    );
}

#[test]
fn reject_all_and_delete_all() {
    let f = fixture(&["a", "b"]);
    f.store
        .pki()
        .write_minion_key(KeyState::Accepted, "c", pem())
        .unwrap();
    let changes = f.store.reject_all().unwrap();
    assert_eq!(
        acts(&changes),
        [(KeyAct::Reject, "a"), (KeyAct::Reject, "b")]
    );
    assert_eq!(f.store.list().unwrap().accepted, ["c"]);
    let changes = f.store.delete_all().unwrap();
    assert_eq!(changes.events.len(), 3);
    assert!(f.store.list().unwrap().is_empty());
}

#[test]
fn fingerprints_and_print() {
    let f = fixture(&["m1"]);
    let want = pem_finger(pem().as_bytes(), HashType::Sha256);
    assert_eq!(
        f.store.fingerprint("m1", HashType::Sha256).unwrap(),
        Some(want.clone())
    );
    assert_eq!(f.store.fingerprint("m2", HashType::Sha256).unwrap(), None);
    let fingers = f.store.finger("*", HashType::Sha256).unwrap();
    assert_eq!(
        fingers,
        [KeyEntry {
            state: KeyState::Pending,
            id: "m1".into(),
            value: want
        }]
    );
    let printed = f.store.print("m1").unwrap();
    assert_eq!(printed[0].value, pem());
    assert_eq!(f.store.master_finger(HashType::Sha256).unwrap(), None);
    f.store.pki().load_or_generate_with_bits(1024).unwrap();
    assert!(f.store.master_finger(HashType::Sha256).unwrap().is_some());
}

#[test]
fn gen_keys_writes_a_pair_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let finger = gen_keys(dir.path(), "minion", 1024).unwrap();
    let pub_pem = fs::read(dir.path().join("minion.pub")).unwrap();
    assert_eq!(finger, pem_finger(&pub_pem, HashType::Sha256));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("minion.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let private = fs::read(dir.path().join("minion.pem")).unwrap();
    assert_eq!(gen_keys(dir.path(), "minion", 1024).unwrap(), finger);
    assert_eq!(fs::read(dir.path().join("minion.pem")).unwrap(), private);
    assert!(gen_keys(dir.path(), "../x", 1024).is_err());
}

#[test]
fn key_watch_sees_changes_made_elsewhere() {
    let f = fixture(&["m1"]);
    let mut watch = KeyWatch::new(f.store.pki().clone()).unwrap();
    assert!(watch.poll().unwrap().is_empty());
    // another process (brine-key) accepts m1 and a new minion shows up
    f.store.accept("m1").unwrap();
    f.store
        .pki()
        .write_minion_key(KeyState::Pending, "m2", pem())
        .unwrap();
    assert_eq!(
        watch.poll().unwrap(),
        [
            KeyChange::Added {
                state: KeyState::Accepted,
                id: "m1".into()
            },
            KeyChange::Removed {
                state: KeyState::Pending,
                id: "m1".into()
            },
            KeyChange::Added {
                state: KeyState::Pending,
                id: "m2".into()
            },
        ]
    );
    assert!(watch.poll().unwrap().is_empty());
    // a rewritten key (another length) is a modification
    f.store
        .pki()
        .write_minion_key(KeyState::Pending, "m2", "short")
        .unwrap();
    assert_eq!(
        watch.poll().unwrap(),
        [KeyChange::Modified {
            state: KeyState::Pending,
            id: "m2".into()
        }]
    );
    f.store.delete_all().unwrap();
    assert_eq!(watch.poll().unwrap().len(), 2);
}
