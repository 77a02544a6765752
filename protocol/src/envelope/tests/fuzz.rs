//! Garbage never panics: random bytes, mutated valid frames, and random
//! structured values with the keys the parsers look for.

use super::{Session, master_key, minion_key, xorshift};
use crate::auth::{AuthLoad, AuthRequest, handle_signin_response};
use crate::crypto::Crypticle;
use crate::envelope::{
    Legacy, NonceLedger, PublishJob, PublishLoad, ReplayGuard, ReturnLoad, SerialCounter, Tok,
    minion_event_fires, open_aes_reply, open_clear_reply, open_request, open_request_with_legacy,
    package_aes, unwrap_publish, wrap_publish,
};
use crate::serial::{Value, to_channel_bytes};
use crate::tags::unpack_event;

const KEYS: &[&str] = &[
    "enc",
    "load",
    "id",
    "version",
    "sig",
    "sig_algo",
    "nonce",
    "tok",
    "ts",
    "cmd",
    "pub_key",
    "pub_sig",
    "aes",
    "session",
    "token",
    "ret",
    "publish_port",
    "tgt",
    "jid",
    "fun",
    "arg",
    "return",
    "events",
    "tag",
    "data",
    "pretag",
    "serial",
    "pub",
];

fn random_value(next: &mut impl FnMut() -> u64, depth: u32) -> Value {
    let pick = next() % if depth == 0 { 7 } else { 9 };
    let text = |n: u64| {
        Value::from(
            *KEYS
                .get(usize::try_from(n).unwrap_or(0) % KEYS.len())
                .unwrap(),
        )
    };
    match pick {
        0 => Value::Nil,
        1 => Value::Bool(next().is_multiple_of(2)),
        2 => Value::Int(i64::from_ne_bytes(next().to_ne_bytes())),
        3 => text(next()),
        4 => Value::Bytes((0..next() % 300).map(|_| next().to_le_bytes()[0]).collect()),
        5 => Value::from("aes"),
        6 => Value::from("5d6c3b2a19f84e7d9c0b1a2f3e4d5c6b"),
        7 => Value::Array(
            (0..next() % 4)
                .map(|_| random_value(next, depth - 1))
                .collect(),
        ),
        _ => Value::Map(
            (0..next() % 6)
                .map(|_| (text(next()), random_value(next, depth - 1)))
                .collect(),
        ),
    }
}

fn mutate(frame: &[u8], next: &mut impl FnMut() -> u64) -> Vec<u8> {
    let mut out = frame.to_vec();
    match next() % 3 {
        0 if !out.is_empty() => {
            let cut = usize::try_from(next()).unwrap_or(0) % out.len();
            out.truncate(cut);
        }
        _ if !out.is_empty() => {
            for _ in 0..1 + next() % 4 {
                let at = usize::try_from(next()).unwrap_or(0) % out.len();
                out[at] ^= next().to_le_bytes()[0] | 1;
            }
        }
        _ => out.push(0xc1),
    }
    out
}

/// Feeds one input to every parser; only a panic fails the test.
fn feed(bytes: &[u8], session: &Session, aes: &Crypticle, request: &AuthRequest) {
    let mut replay = ReplayGuard::default();
    let _ = open_request(bytes, session.lookup("m1"), 1_795_637_459, &mut replay);
    let mut ledger = NonceLedger::new(4);
    let legacy = Legacy {
        aes,
        generation: 0,
        accepted: |_: &str| Some(minion_key().public_key()),
        nonces: &mut ledger,
    };
    let _ = open_request_with_legacy(
        bytes,
        session.lookup("m1"),
        Some(legacy),
        1_795_637_459,
        &mut replay,
    );
    let _ = unwrap_publish(bytes, aes, &master_key().public_key(), true);
    let _ = unwrap_publish(bytes, aes, &master_key().public_key(), false);
    let _ = open_aes_reply(bytes, aes, "5d6c3b2a19f84e7d9c0b1a2f3e4d5c6b");
    let _ = unpack_event(bytes);
    if let Ok(value) = open_clear_reply(bytes) {
        feed_value(value, request);
    }
}

fn feed_value(value: Value, request: &AuthRequest) {
    let _ = handle_signin_response(&value, request, minion_key());
    let _ = AuthLoad::parse(&value);
    let _ = minion_event_fires(&value);
    let _ = ReturnLoad::parse(value.clone());
    if let Ok(load) = PublishLoad::from_value(value) {
        let _ = load.split_args();
    }
}

#[test]
fn garbage_never_panics() {
    let session = Session::new();
    let aes = Crypticle::generate().unwrap();
    let request = AuthRequest::new(
        "m1",
        minion_key(),
        Some(&master_key().public_key().to_pem().unwrap()),
        "5d6c3b2a19f84e7d9c0b1a2f3e4d5c6b",
    )
    .unwrap();
    let tok = Tok::new(minion_key()).unwrap();
    let (request_frame, _) = package_aes(
        PublishJob::new("f", "*", "1").to_load(),
        "m1",
        &session.minion_side(),
        &tok,
        1_795_637_459,
    )
    .unwrap();
    let publish_frame = wrap_publish(
        &PublishJob::new("f", "*", "1").to_load(),
        &aes,
        master_key(),
        true,
        &SerialCounter::new(),
    )
    .unwrap();
    // a version-2 request as Salt 3006 sends it (AES key, no envelope id)
    let mut v2_load = PublishJob::new("f", "*", "1").to_load();
    v2_load.insert("id", "m1");
    v2_load.insert("nonce", "5d6c3b2a19f84e7d9c0b1a2f3e4d5c6b");
    v2_load.insert("tok", tok.as_bytes());
    let v2_frame = to_channel_bytes(
        &[
            ("enc", Value::from("aes")),
            ("load", Value::Bytes(aes.dumps(&v2_load, None).unwrap())),
            ("version", Value::from(2)),
        ]
        .into_iter()
        .collect(),
    )
    .unwrap();
    let valid = [
        request_frame.to_vec(),
        publish_frame.to_vec(),
        request.to_frame().unwrap().to_vec(),
        v2_frame,
    ];

    let mut next = xorshift(0x5eed);
    for round in 0..400 {
        let random: Vec<u8> = (0..next() % 200).map(|_| next().to_le_bytes()[0]).collect();
        feed(&random, &session, &aes, &request);
        let base = &valid[round % valid.len()];
        feed(&mutate(base, &mut next), &session, &aes, &request);
        let value = random_value(&mut next, 3);
        feed_value(value.clone(), &request);
        feed(&to_channel_bytes(&value).unwrap(), &session, &aes, &request);
    }
    for frame in &valid {
        for cut in 0..frame.len().min(64) {
            feed(&frame[..cut], &session, &aes, &request);
        }
    }
}
