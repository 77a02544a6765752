//! `_return` and `_minion_event` loads, minion builder → master parser.

use super::{Session, keys_of, map, minion_key};
use crate::envelope::{
    JobReturn, LoadError, MinionEvent, OpenedRequest, PublishJob, PublishLoad, ReplayGuard,
    ReturnLoad, Tok, minion_event_fires, open_request, package_aes,
};
use crate::serial::Value;

const NOW: i64 = 1_795_637_459;

fn publish() -> PublishLoad {
    let mut job = PublishJob::new("test.ping", "*", "20261125201059034956");
    job.user = Some("root".to_owned());
    job.master_id = Some("mm".to_owned());
    job.extra = vec![("metadata".to_owned(), map([("k", "v".into())]))];
    PublishLoad::from_value(job.to_load()).unwrap()
}

/// Sends `load` through a real aes envelope and returns what the master sees.
fn through_the_channel(load: Value) -> Value {
    let session = Session::new();
    let tok = Tok::new(minion_key()).unwrap();
    let (frame, _) = package_aes(load, "m1", &session.minion_side(), &tok, NOW).unwrap();
    let opened = open_request(
        &frame,
        session.lookup("m1"),
        NOW,
        &mut ReplayGuard::default(),
    )
    .unwrap();
    assert!(matches!(opened, OpenedRequest::Aes { .. }));
    opened.into_load()
}

#[test]
fn job_returns_round_trip() {
    let mut ret = JobReturn::for_job(&publish(), "m1", true.into(), 0);
    ret.stamp = Some("2026-11-25T20:10:59.142494".to_owned());
    ret.out = Some("nested".to_owned());
    let load = ret.to_load();
    assert_eq!(
        keys_of(&load),
        [
            "cmd",
            "id",
            "success",
            "return",
            "retcode",
            "jid",
            "fun",
            "fun_args",
            "user",
            "master_id",
            "metadata",
            "_stamp",
            "out"
        ]
    );
    let got = ReturnLoad::parse(through_the_channel(load)).unwrap();
    assert_eq!((got.id(), got.jid()), ("m1", "20261125201059034956"));
    assert_eq!(got.ret(), &Value::from(true));
    assert_eq!((got.retcode(), got.success()), (Some(0), Some(true)));
    assert_eq!(got.fun(), Some(&Value::from("test.ping")));
    assert!(!got.is_req());
    assert_eq!(got.event_tag(), "salt/job/20261125201059034956/ret/m1");
    assert!(!got.as_value().contains_key("tok") && !got.as_value().contains_key("nonce"));
    assert!(got.as_value().contains_key("ts"));

    let failed = JobReturn::for_job(&publish(), "m1", "'x.y' is not available.".into(), 254);
    assert!(!failed.success);
    assert_eq!(keys_of(&failed.to_load()).len(), 11);
}

#[test]
fn minion_initiated_returns_get_a_jid() {
    let mut ret = JobReturn::for_job(&publish(), "m1", 1.into(), 0);
    ret.jid = "req".to_owned();
    ret.fun_args = Value::Array(vec!["a".into()]);
    let mut got = ReturnLoad::parse(ret.to_load()).unwrap();
    assert!(got.is_req());
    got.assign_jid("20261125201100000000");
    assert_eq!(got.jid(), "20261125201100000000");
    let load = got.as_value();
    assert_eq!(load.get("jid"), Some(&"20261125201100000000".into()));
    assert_eq!(load.get("arg"), Some(&Value::Array(vec!["a".into()])));
    assert_eq!(load.get("tgt"), Some(&"m1".into()));
    assert_eq!(load.get("tgt_type"), Some(&"glob".into()));
}

#[test]
fn bad_returns_are_refused() {
    let good = JobReturn::for_job(&publish(), "m1", true.into(), 0).to_load();
    for key in ["return", "jid", "id"] {
        let mut bad = good.clone();
        bad.remove(key);
        assert_eq!(ReturnLoad::parse(bad), Err(LoadError::MissingKey(key)));
    }
    let mut bad = good.clone();
    bad.insert("id", "../etc");
    assert_eq!(ReturnLoad::parse(bad), Err(LoadError::InvalidId));
    let mut bad = good.clone();
    bad.insert("jid", Value::Nil);
    assert_eq!(ReturnLoad::parse(bad), Err(LoadError::InvalidKey("jid")));
    assert_eq!(ReturnLoad::parse(Value::from(1)), Err(LoadError::NotAMap));
}

#[test]
fn start_events_round_trip() {
    let [legacy, start] = MinionEvent::minion_start("m1", "Wed Nov 25 20:10:59 2026", None);
    let load = legacy.to_load();
    assert_eq!(keys_of(&load), ["id", "cmd", "pretag", "data", "tag"]);
    assert_eq!(
        load.get("data"),
        Some(&"Minion m1 started at Wed Nov 25 20:10:59 2026".into())
    );
    let fired = minion_event_fires(&through_the_channel(load)).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].0, "minion_start");
    assert_eq!(fired[0].1.get("cmd"), Some(&"_minion_event".into()));

    let fired = minion_event_fires(&start.to_load()).unwrap();
    assert_eq!(fired[0].0, "salt/minion/m1/start");

    let grains = MinionEvent {
        id: "m1".to_owned(),
        tag: "custom".to_owned(),
        data: Value::Nil,
        pretag: None,
        grains: Some(map([("os", "Linux".into())])),
    };
    let load = grains.to_load();
    assert_eq!(load.get("data"), Some(&Value::map()));
    assert!(load.contains_key("grains"));
}

#[test]
fn batched_events_fire_each_and_skip_the_blacklist() {
    let load = map([
        ("id", "m1".into()),
        ("cmd", "_minion_event".into()),
        ("pretag", "pre".into()),
        (
            "events",
            Value::Array(vec![
                map([("tag", "a/b".into()), ("data", map([("x", 1.into())]))]),
                map([("tag", "salt/job/1/new".into()), ("data", Value::map())]),
                map([("tag", "c".into()), ("y", 2.into())]),
            ]),
        ),
    ]);
    let fired = minion_event_fires(&load).unwrap();
    let tags: Vec<_> = fired.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tags, ["a/b", "pre/a/b", "c", "pre/c"]);
    assert_eq!(fired[0].1, map([("x", 1.into())]));
    // an event without data fires itself
    assert_eq!(fired[2].1.get("y"), Some(&2.into()));
}

#[test]
fn bad_minion_events_are_refused() {
    let single = |tag: &str| {
        map([
            ("id", "m1".into()),
            ("tag", tag.into()),
            ("data", Value::map()),
        ])
    };
    assert_eq!(
        minion_event_fires(&single("salt/key")),
        Err(LoadError::BlacklistedTag("salt/key".to_owned()))
    );
    assert_eq!(
        minion_event_fires(&map([("tag", "t".into()), ("data", Value::map())])),
        Err(LoadError::MissingKey("id"))
    );
    assert_eq!(
        minion_event_fires(&map([("id", "m1".into()), ("tag", "t".into())])),
        Err(LoadError::MissingKey("data"))
    );
    assert_eq!(
        minion_event_fires(&map([("id", "m1".into()), ("data", Value::map())])),
        Err(LoadError::MissingKey("tag"))
    );
    assert_eq!(
        minion_event_fires(&map([("id", "m1".into()), ("events", 1.into())])),
        Err(LoadError::InvalidKey("events"))
    );
    assert_eq!(
        minion_event_fires(&map([
            ("id", "m1".into()),
            ("events", Value::Array(vec![1.into()]))
        ])),
        Err(LoadError::InvalidKey("tag"))
    );
    assert_eq!(minion_event_fires(&Value::Nil), Err(LoadError::NotAMap));
}
