//! The decision table and applying it to a pki dir.

use super::*;
use crate::envelope::tests::{master_key, other_key};
use crate::keys::{KeyState, MasterPki};
use crate::serial::Value;

#[test]
fn autosign_autoreject_and_open_mode() {
    let load = AuthLoad::parse(first_contact().load()).unwrap();
    let pending = KeyOnFile::Pending(minion_pem());
    let mut c = candidate(&load, &pending);
    c.autosign = true;
    let d = decide(&AuthPolicy::default(), &c);
    assert_eq!(d.act, AuthAct::Accept);
    assert_eq!(
        d.key_ops,
        vec![
            KeyOp::Write {
                state: KeyState::Accepted,
                pem: minion_pem()
            },
            KeyOp::Remove(KeyState::Pending)
        ]
    );
    c.autoreject = true;
    let d = decide(&AuthPolicy::default(), &c);
    assert_eq!(d.act, AuthAct::Reject);
    assert_eq!(
        d.key_ops,
        vec![KeyOp::Move {
            from: KeyState::Pending,
            to: KeyState::Rejected
        }]
    );
    let none = KeyOnFile::Denied; // only in minions_denied: like no key
    let mut c = candidate(&load, &none);
    c.autoreject = true;
    assert_eq!(
        decide(&AuthPolicy::default(), &c).key_ops,
        vec![KeyOp::Write {
            state: KeyState::Rejected,
            pem: minion_pem()
        }]
    );

    let open = AuthPolicy {
        open_mode: true,
        ..AuthPolicy::default()
    };
    let other = KeyOnFile::Accepted(other_key().public_key().to_clean_pem().unwrap());
    let d = decide(&open, &candidate(&load, &other));
    assert_eq!(d.act, AuthAct::Accept);
    assert_eq!(
        d.key_ops,
        vec![KeyOp::Write {
            state: KeyState::Accepted,
            pem: minion_pem()
        }]
    );
    let same = KeyOnFile::Accepted(format!("{}\n", minion_pem()));
    assert!(decide(&open, &candidate(&load, &same)).key_ops.is_empty());
    assert!(decide(&open, &candidate(&load, &KeyOnFile::Rejected)).result());
}

#[test]
fn invalid_ids_and_keys_are_refused_silently() {
    let mut load = AuthLoad::parse(first_contact().load()).unwrap();
    load.id = "../etc".to_owned();
    let d = decide(&auto_accept(), &candidate(&load, &KeyOnFile::None));
    assert_eq!(
        (d.act, d.key_ops.len(), d.fire_event),
        (AuthAct::Reject, 0, false)
    );
    assert!(d.event_data("x", "y").is_none());
    let mut load = AuthLoad::parse(first_contact().load()).unwrap();
    load.pub_pem = "not a key".to_owned();
    let d = decide(&auto_accept(), &candidate(&load, &KeyOnFile::None));
    assert_eq!((d.act, d.key_ops.len()), (AuthAct::Reject, 0));
    // an unparsable key that still got accepted (stale state) → ret false
    let accept = Decision {
        act: AuthAct::Accept,
        key_ops: vec![],
        fire_event: true,
        serial: crate::Serialization::Msgpack,
    };
    let reply = build_auth_reply(&accept, &load, master_key(), "a", "b", 1).unwrap();
    let inner = Value::decode(reply.get("load").unwrap().as_bytes().unwrap()).unwrap();
    assert_eq!(inner.get("ret"), Some(&false.into()));
}

#[test]
fn decisions_apply_to_the_pki_dir() {
    let dir = tempfile::tempdir().unwrap();
    let pki = MasterPki::new(dir.path());
    pki.ensure_layout().unwrap();
    let load = AuthLoad::parse(first_contact().load()).unwrap();
    let state = || KeyOnFile::read(&pki, "m1").unwrap();

    assert_eq!(state(), KeyOnFile::None);
    decide(&AuthPolicy::default(), &candidate(&load, &state()))
        .apply(&pki, "m1")
        .unwrap();
    assert_eq!(state(), KeyOnFile::Pending(minion_pem()));
    let on_file = state();
    let mut c = candidate(&load, &on_file);
    c.autosign = true;
    decide(&AuthPolicy::default(), &c)
        .apply(&pki, "m1")
        .unwrap();
    assert_eq!(state(), KeyOnFile::Accepted(minion_pem()));
    assert_eq!(pki.read_minion_key(KeyState::Pending, "m1").unwrap(), None);

    pki.write_minion_key(KeyState::Pending, "m2", &minion_pem())
        .unwrap();
    let d = Decision {
        act: AuthAct::Reject,
        key_ops: vec![KeyOp::Move {
            from: KeyState::Pending,
            to: KeyState::Rejected,
        }],
        fire_event: true,
        serial: crate::Serialization::Msgpack,
    };
    d.apply(&pki, "m2").unwrap();
    assert_eq!(KeyOnFile::read(&pki, "m2").unwrap(), KeyOnFile::Rejected);
    pki.write_minion_key(KeyState::Denied, "m3", "x").unwrap();
    assert_eq!(KeyOnFile::read(&pki, "m3").unwrap(), KeyOnFile::Denied);
}
