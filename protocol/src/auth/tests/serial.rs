//! (Brine) `serial`: announced by a non-default minion, enforced by both sides.

use super::*;
use crate::envelope::tests::{keys_of, map, master_key, minion_key};
use crate::serial::{Serialization, Value};

fn policy(serial: Serialization) -> AuthPolicy {
    AuthPolicy {
        serial,
        ..auto_accept()
    }
}

fn inner_of(reply: &Value) -> Value {
    Value::decode(reply.get("load").unwrap().as_bytes().unwrap()).unwrap()
}

#[test]
fn only_a_non_default_minion_announces_its_serial() {
    // (first contact: no token, whose OAEP encryption is randomized)
    let default = first_contact().with_serialization(Serialization::Msgpack);
    assert!(!default.load().contains_key("serial"));
    assert_eq!(
        default.to_frame().unwrap(),
        first_contact().to_frame().unwrap(),
        "the default request is Salt's"
    );
    let bincode = known_master().with_serialization(Serialization::Bincode);
    assert_eq!(bincode.serial(), Serialization::Bincode);
    assert_eq!(bincode.load().get("serial"), Some(&"bincode".into()));
    // it survives a rebuilt load, and goes last
    let rebuilt = bincode
        .with_autosign_grains(minion_key(), map([("os", "Linux".into())]))
        .unwrap();
    assert_eq!(keys_of(rebuilt.load()).last(), Some(&"serial"));
    let load = AuthLoad::parse(rebuilt.load()).unwrap();
    assert_eq!(load.serial.as_deref(), Some("bincode"));
    // and can be taken back
    let back = rebuilt.with_serialization(Serialization::Msgpack);
    assert!(!back.load().contains_key("serial"));

    let mut bad = first_contact().load().clone();
    bad.insert("serial", 1);
    assert!(matches!(
        AuthLoad::parse(&bad),
        Err(AuthError::Malformed { what: "serial" })
    ));
}

#[test]
fn matching_bincode_peers_authenticate() {
    let master = Master::new(policy(Serialization::Bincode));
    let request = first_contact().with_serialization(Serialization::Bincode);
    let (decision, reply) = master.answer(&request, &KeyOnFile::None, master_key());
    assert_eq!(decision.act, AuthAct::Accept);
    let inner = inner_of(&reply);
    assert_eq!(inner.get("serial"), Some(&"bincode".into()));
    assert!(matches!(
        handle_signin_response(&reply, &request, minion_key()).unwrap(),
        AuthOutcome::Accepted(_)
    ));

    // msgpack on both sides: no serial anywhere, Salt's reply shape
    let master = Master::new(auto_accept());
    let (_, reply) = master.answer(&first_contact(), &KeyOnFile::None, master_key());
    assert!(!inner_of(&reply).contains_key("serial"));
}

#[test]
fn a_msgpack_master_refuses_a_bincode_minion() {
    let master = Master::new(policy(Serialization::Msgpack));
    let request = known_master().with_serialization(Serialization::Bincode);
    let (decision, reply) = master.answer(&request, &KeyOnFile::None, master_key());
    assert_eq!(decision.act, AuthAct::SerialMismatch);
    assert!(decision.key_ops.is_empty(), "no key file is touched");
    let event = decision.event_data("m1", "pem").unwrap();
    assert_eq!(event.get("act"), Some(&"reject".into()));
    assert_eq!(event.get("result"), Some(&false.into()));
    let inner = inner_of(&reply);
    assert_eq!(inner.get("ret"), Some(&BAD_SERIAL.into()));
    assert_eq!(inner.get("serial"), Some(&"msgpack".into()));
    // the refusal is signed like every other
    assert!(reply.contains_key("sig"));

    let err = handle_signin_response(&reply, &request, minion_key()).unwrap_err();
    assert!(matches!(
        err,
        AuthError::SerialMismatch {
            master: Serialization::Msgpack,
            minion: Serialization::Bincode
        }
    ));
    assert_eq!(
        err.to_string(),
        "the master uses msgpack, this minion is configured with serial: bincode"
    );
}

#[test]
fn a_bincode_master_refuses_a_msgpack_or_stock_minion() {
    let master = Master::new(policy(Serialization::Bincode));
    // a stock Salt minion's request: no serial key at all
    let request = first_contact();
    assert!(!request.load().contains_key("serial"));
    // whatever the key state, the mismatch comes first
    for on_file in [
        KeyOnFile::None,
        KeyOnFile::Accepted(super::minion_pem()),
        KeyOnFile::Rejected,
    ] {
        let (decision, reply) = master.answer(&request, &on_file, master_key());
        assert_eq!(decision.act, AuthAct::SerialMismatch, "{on_file:?}");
        assert!(decision.key_ops.is_empty());
        let err = handle_signin_response(&reply, &request, minion_key()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the master uses bincode, this minion is configured with serial: msgpack"
        );
    }
    // open mode writes nothing for a mismatched minion either
    let open = Master::new(AuthPolicy {
        open_mode: true,
        ..policy(Serialization::Bincode)
    });
    let (decision, _) = open.answer(&request, &KeyOnFile::None, master_key());
    assert_eq!(
        (decision.act, decision.key_ops.len()),
        (AuthAct::SerialMismatch, 0)
    );
}

#[test]
fn unknown_announcements_are_mismatches() {
    let master = Master::new(auto_accept());
    let mut load = AuthLoad::parse(first_contact().load()).unwrap();
    load.serial = Some("json".into());
    let d = decide(&master.policy, &candidate(&load, &KeyOnFile::None));
    assert_eq!(d.act, AuthAct::SerialMismatch);
    // announcing the default explicitly is fine
    load.serial = Some("MsgPack".into());
    let d = decide(&master.policy, &candidate(&load, &KeyOnFile::None));
    assert_eq!(d.act, AuthAct::Accept);
}

#[test]
fn a_bincode_minion_refuses_a_master_that_does_not_name_bincode() {
    // A stock Salt master ignores the serial key and accepts: its reply
    // names no serialization, so it packs msgpack.
    let salt_like = Master::new(auto_accept());
    let request = first_contact().with_serialization(Serialization::Bincode);
    let load = AuthLoad::parse(request.load()).unwrap();
    let accept = Decision {
        serial: Serialization::Msgpack,
        ..decide(
            &policy(Serialization::Bincode),
            &candidate(&load, &KeyOnFile::None),
        )
    };
    assert_eq!(accept.act, AuthAct::Accept);
    let reply = build_auth_reply(
        &accept,
        &load,
        master_key(),
        &salt_like.aes,
        &salt_like.session,
        4505,
    )
    .unwrap();
    assert!(matches!(
        handle_signin_response(&reply, &request, minion_key()),
        Err(AuthError::SerialMismatch {
            master: Serialization::Msgpack,
            minion: Serialization::Bincode
        })
    ));
    // and a msgpack minion refuses a master that names bincode
    let (_, reply) = Master::new(policy(Serialization::Bincode)).answer(
        &request,
        &KeyOnFile::None,
        master_key(),
    );
    assert!(matches!(
        handle_signin_response(&reply, &first_contact(), minion_key()),
        Err(AuthError::SerialMismatch {
            master: Serialization::Bincode,
            minion: Serialization::Msgpack
        })
    ));
}
