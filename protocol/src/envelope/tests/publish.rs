//! Publish frames and publish loads.

use super::{keys_of, map, master_key, other_key};
use crate::crypto::Crypticle;
use crate::envelope::{
    LoadError, PublishError, PublishJob, PublishLoad, SerialCounter, condition_input,
    unwrap_publish, wrap_publish,
};
use crate::serial::{Value, to_channel_bytes};

fn job() -> PublishJob {
    let mut job = PublishJob::new("test.arg", "*", "20261125201059974475");
    job.arg = vec![1.into(), "two".into()];
    job.kwargs = vec![("k".to_owned(), "v".into())];
    job.user = Some("root".to_owned());
    job
}

#[test]
fn publish_loads_have_salts_shape() {
    let load = job().to_load();
    assert_eq!(
        keys_of(&load),
        ["fun", "arg", "tgt", "jid", "ret", "tgt_type", "user"]
    );
    assert_eq!(
        load.get("arg"),
        Some(&Value::Array(vec![
            1.into(),
            "two".into(),
            map([("__kwarg__", true.into()), ("k", "v".into())]),
        ]))
    );
    let mut full = job();
    full.master_id = Some("mm".to_owned());
    full.delimiter = Some(";".to_owned());
    full.extra = vec![("metadata".to_owned(), map([("a", 1.into())]))];
    assert_eq!(
        keys_of(&full.to_load()),
        [
            "fun",
            "arg",
            "tgt",
            "jid",
            "ret",
            "master_id",
            "delimiter",
            "tgt_type",
            "metadata",
            "user"
        ]
    );
    full.delimiter = Some(":".to_owned());
    assert!(!full.to_load().contains_key("delimiter"));

    let new = job().new_event_data(&["m1".to_owned()], &[]);
    assert_eq!(
        keys_of(&new),
        [
            "jid", "tgt_type", "tgt", "user", "fun", "arg", "minions", "missing"
        ]
    );
}

#[test]
fn condition_input_stringifies_jid_like_ints() {
    let big = Value::UInt(u64::MAX / 2 + 1); // 19 digits: not a jid
    let args = [Value::UInt(u64::MAX), Value::from(5), big.clone()];
    assert_eq!(
        condition_input(&args, &[]),
        vec![Value::from("18446744073709551615"), Value::from(5), big]
    );
    assert_eq!(condition_input(&[], &[]), Vec::<Value>::new());
}

#[test]
fn publish_round_trip_with_increasing_serials() {
    let aes = Crypticle::generate().unwrap();
    let minion_aes = Crypticle::new(aes.key_string()).unwrap();
    let serials = SerialCounter::new();
    let master_pub = master_key().public_key();
    let load = job().to_load();

    let first = wrap_publish(&load, &aes, master_key(), true, &serials).unwrap();
    let env = Value::decode(&first).unwrap();
    assert_eq!(keys_of(&env), ["enc", "load", "sig_algo", "sig"]);
    let got = unwrap_publish(&first, &minion_aes, &master_pub, true).unwrap();
    assert_eq!(got.as_value(), &load, "serial is removed");
    assert_eq!(
        (got.jid(), got.tgt_type(), got.ret()),
        ("20261125201059974475", "glob", "")
    );
    assert_eq!(minion_aes.last_serial(), 1);

    let second = wrap_publish(&load, &aes, master_key(), false, &serials).unwrap();
    assert_eq!(keys_of(&Value::decode(&second).unwrap()), ["enc", "load"]);
    unwrap_publish(&second, &minion_aes, &master_pub, false).unwrap();
    assert_eq!(minion_aes.last_serial(), 2);

    // replaying the first frame: stale serial, dropped
    let err = unwrap_publish(&first, &minion_aes, &master_pub, true).unwrap_err();
    assert!(
        matches!(err, PublishError::Stale { serial: 1, last: 2 }),
        "{err:?}"
    );
    assert!(!err.is_reauth());
}

#[test]
fn publish_failures_are_typed() {
    let aes = Crypticle::generate().unwrap();
    let serials = SerialCounter::new();
    let load = job().to_load();
    let frame = wrap_publish(&load, &aes, master_key(), true, &serials).unwrap();
    let fresh = || Crypticle::new(aes.key_string()).unwrap();

    // signed by someone else (or checked against the wrong master key)
    let err = unwrap_publish(&frame, &fresh(), &other_key().public_key(), true).unwrap_err();
    assert!(matches!(err, PublishError::BadSignature));
    // ... but not checked when verification is off (Salt's minion default)
    unwrap_publish(&frame, &fresh(), &other_key().public_key(), false).unwrap();
    // unsigned frame, verification on
    let unsigned = wrap_publish(&load, &aes, master_key(), false, &serials).unwrap();
    let err = unwrap_publish(&unsigned, &fresh(), &master_key().public_key(), true).unwrap_err();
    assert!(matches!(err, PublishError::MissingSignature));
    // unknown sig_algo
    let mut env = Value::decode(&frame).unwrap();
    env.insert("sig_algo", "MD5");
    let err = unwrap_publish(
        &to_channel_bytes(&env).unwrap(),
        &fresh(),
        &master_key().public_key(),
        true,
    )
    .unwrap_err();
    assert!(matches!(err, PublishError::BadSignature));
    // the master rotated its key: HMAC failure → re-auth
    let err = unwrap_publish(
        &frame,
        &Crypticle::generate().unwrap(),
        &master_key().public_key(),
        true,
    )
    .unwrap_err();
    assert!(matches!(err, PublishError::BadHmac) && err.is_reauth());
    // loads without the required keys
    for missing in ["tgt", "jid", "fun", "arg"] {
        let mut partial = load.clone();
        partial.remove(missing);
        let frame = wrap_publish(&partial, &aes, master_key(), true, &serials).unwrap();
        let err = unwrap_publish(&frame, &fresh(), &master_key().public_key(), true).unwrap_err();
        assert!(
            matches!(err, PublishError::Load(LoadError::MissingKey(k)) if k == missing),
            "{err:?}"
        );
    }
    // not a map
    assert!(matches!(
        wrap_publish(&Value::from(1), &aes, master_key(), true, &serials),
        Err(PublishError::Load(LoadError::NotAMap))
    ));
    // clear or garbage frames
    let clear = to_channel_bytes(&map([("enc", "clear".into()), ("load", Value::map())])).unwrap();
    assert!(matches!(
        unwrap_publish(&clear, &fresh(), &master_key().public_key(), false),
        Err(PublishError::Malformed { .. })
    ));
    assert!(matches!(
        unwrap_publish(b"", &fresh(), &master_key().public_key(), false),
        Err(PublishError::Malformed { .. })
    ));
}

#[test]
fn serial_counter_resets_and_ends() {
    let serials = SerialCounter::new();
    assert_eq!(serials.next_serial(), Some(1));
    assert_eq!(serials.next_serial(), Some(2));
    assert_eq!(serials.last(), 2);
    serials.reset();
    assert_eq!(serials.next_serial(), Some(1));
    let spent = SerialCounter::starting_after(SerialCounter::MAX - 1);
    assert_eq!(spent.next_serial(), Some(SerialCounter::MAX));
    assert_eq!(spent.next_serial(), None);
    let aes = Crypticle::generate().unwrap();
    assert!(matches!(
        wrap_publish(&Value::map(), &aes, master_key(), false, &spent),
        Err(PublishError::SerialExhausted)
    ));
}

#[test]
fn publish_load_accessors_and_kwargs() {
    let mut load = job().to_load();
    load.insert(
        "arg",
        Value::Array(vec![
            1.into(),
            map([("__kwarg__", true.into()), ("a", 1.into()), ("b", 2.into())]),
            map([("x", 1.into())]),
            map([("__kwarg__", true.into()), ("a", 3.into())]),
        ]),
    );
    let load = PublishLoad::from_value(load).unwrap();
    let (args, kwargs) = load.split_args();
    assert_eq!(args, vec![Value::from(1), map([("x", 1.into())])]);
    assert_eq!(kwargs, vec![("a".into(), 3.into()), ("b".into(), 2.into())]);
    assert_eq!(load.user(), Some("root"));
    assert_eq!(load.delimiter(), ":");
    assert_eq!(load.fun(), &Value::from("test.arg"));
    assert_eq!(load.tgt(), &Value::from("*"));
    let mut bad = job().to_load();
    bad.insert("jid", 5);
    assert_eq!(
        PublishLoad::from_value(bad),
        Err(LoadError::InvalidKey("jid"))
    );
    assert_eq!(PublishLoad::from_value(Value::Nil), Err(LoadError::NotAMap));
}
