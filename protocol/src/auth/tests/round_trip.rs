//! Requests and replies end to end.

use super::*;
use crate::envelope::tests::{keys_of, map, master_key, minion_key, other_key};
use crate::keys::KeyState;
use crate::serial::Value;

#[test]
fn requests_have_salts_shape() {
    assert_eq!(
        keys_of(first_contact().load()),
        ["cmd", "id", "nonce", "enc_algo", "sig_algo", "pub"]
    );
    let req = known_master()
        .with_autosign_grains(minion_key(), map([("os", "Linux".into())]))
        .unwrap();
    assert_eq!(
        keys_of(req.load()),
        [
            "cmd",
            "id",
            "nonce",
            "enc_algo",
            "sig_algo",
            "autosign_grains",
            "token",
            "pub"
        ]
    );
    assert_eq!(req.load().get("pub"), Some(&minion_pem().into()));
    let frame = Value::decode(&req.to_frame().unwrap()).unwrap();
    assert_eq!(frame.get("enc"), Some(&"clear".into()));
    assert!(matches!(
        AuthRequest::new("a/b", minion_key(), None, NONCE),
        Err(AuthError::InvalidId)
    ));
    assert!(matches!(
        AuthRequest::new("m1", minion_key(), Some("junk"), NONCE),
        Err(AuthError::Crypto(_))
    ));
}

#[test]
fn first_contact_accept_trusts_and_returns_the_master_key() {
    let master = Master::new(auto_accept());
    let request = first_contact();
    let (decision, reply) = master.answer(&request, &KeyOnFile::None, master_key());
    assert_eq!(decision.act, AuthAct::Accept);
    assert_eq!(
        decision.key_ops,
        vec![KeyOp::Write {
            state: KeyState::Accepted,
            pem: minion_pem()
        }]
    );
    assert_eq!(keys_of(&reply), ["enc", "load", "sig"]);
    let inner = Value::decode(reply.get("load").unwrap().as_bytes().unwrap()).unwrap();
    assert_eq!(
        keys_of(&inner),
        [
            "enc",
            "pub_key",
            "publish_port",
            "aes",
            "session",
            "sig",
            "nonce"
        ]
    );
    let AuthOutcome::Accepted(creds) =
        handle_signin_response(&reply, &request, minion_key()).unwrap()
    else {
        panic!("not accepted");
    };
    assert_eq!(
        (&*creds.aes, &*creds.session),
        (&*master.aes, &*master.session)
    );
    assert_eq!(creds.publish_port, 4505);
    assert_eq!(creds.new_master_pub.as_deref(), Some(master_pem().as_str()));
    assert!(!format!("{creds:?}").contains(master.aes.as_str()));
}

#[test]
fn known_master_accept_echoes_the_token() {
    let master = Master::new(AuthPolicy::default());
    let request = known_master();
    let (decision, reply) =
        master.answer(&request, &KeyOnFile::Accepted(minion_pem()), master_key());
    assert_eq!((decision.act, decision.key_ops.len()), (AuthAct::Accept, 0));
    let inner = Value::decode(reply.get("load").unwrap().as_bytes().unwrap()).unwrap();
    assert_eq!(
        keys_of(&inner),
        [
            "enc",
            "pub_key",
            "publish_port",
            "token",
            "aes",
            "session",
            "sig",
            "nonce"
        ]
    );
    let AuthOutcome::Accepted(creds) =
        handle_signin_response(&reply, &request, minion_key()).unwrap()
    else {
        panic!("not accepted");
    };
    assert!(creds.new_master_pub.is_none());
}

#[test]
fn pending_rejected_denied_and_full() {
    let master = Master::new(AuthPolicy::default());
    let request = known_master();
    let outcome = |on_file: &KeyOnFile| {
        let (decision, reply) = master.answer(&request, on_file, master_key());
        (
            decision,
            handle_signin_response(&reply, &request, minion_key()).unwrap(),
        )
    };
    let (d, o) = outcome(&KeyOnFile::None);
    assert_eq!(
        (d.act, &d.key_ops[..]),
        (
            AuthAct::Pend,
            &[KeyOp::Write {
                state: KeyState::Pending,
                pem: minion_pem()
            }][..]
        )
    );
    assert!(matches!(o, AuthOutcome::Pending));
    let (d, o) = outcome(&KeyOnFile::Pending(minion_pem()));
    assert_eq!((d.act, d.key_ops.len()), (AuthAct::Pend, 0));
    assert!(matches!(o, AuthOutcome::Pending));
    let (d, o) = outcome(&KeyOnFile::Rejected);
    assert_eq!((d.act, d.key_ops.len()), (AuthAct::Reject, 0));
    assert!(matches!(o, AuthOutcome::Rejected));
    let other = other_key().public_key().to_clean_pem().unwrap();
    for on_file in [
        KeyOnFile::Accepted(other.clone()),
        KeyOnFile::Pending(other),
    ] {
        let (d, o) = outcome(&on_file);
        assert_eq!(d.act, AuthAct::Denied);
        assert_eq!(
            d.key_ops,
            vec![KeyOp::Write {
                state: KeyState::Denied,
                pem: minion_pem()
            }]
        );
        assert!(matches!(o, AuthOutcome::Rejected));
        let event = d.event_data("m1", &minion_pem()).unwrap();
        assert_eq!(keys_of(&event), ["result", "act", "id", "pub"]);
        assert_eq!(event.get("act"), Some(&"denied".into()));
        assert_eq!(event.get("result"), Some(&false.into()));
    }
    let full = Master::new(AuthPolicy {
        max_minions: 2,
        ..AuthPolicy::default()
    });
    let load = AuthLoad::parse(request.load()).unwrap();
    let none = KeyOnFile::None;
    let mut c = candidate(&load, &none);
    c.connected = 2;
    let d = decide(&full.policy, &c);
    assert_eq!(d.act, AuthAct::Full);
    let reply = build_auth_reply(&d, &load, master_key(), &full.aes, &full.session, 4505).unwrap();
    assert!(matches!(
        handle_signin_response(&reply, &request, minion_key()).unwrap(),
        AuthOutcome::Full
    ));
    c.is_connected = true;
    assert_eq!(
        decide(&full.policy, &c).act,
        AuthAct::Pend,
        "connected minions may re-auth"
    );
}
