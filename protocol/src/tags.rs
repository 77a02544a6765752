//! Event tags as Salt names them (`salt/utils/event.py:tagify`), the data
//! of the events that are not built elsewhere, and the event body codec of
//! Salt's master event bus.
//!
//! | tag | fired when | data |
//! | --- | --- | --- |
//! | `<jid>` (bare) | a job is published | [`job_minions_data`] |
//! | [`job_new`] `salt/job/<jid>/new` | a job is published | [`PublishJob::new_event_data`](crate::envelope::PublishJob::new_event_data) |
//! | [`job_publish`] `salt/job/<jid>/publish` | a job is published | the publish load without `serial` |
//! | [`job_ret`] `salt/job/<jid>/ret/<id>` | a minion returned | the `_return` load ([`ReturnLoad`](crate::envelope::ReturnLoad)) |
//! | [`AUTH`] `salt/auth` | a minion authenticated | [`Decision::event_data`](crate::auth::Decision::event_data) |
//! | [`MINION_START`], [`minion_start`] `salt/minion/<id>/start` | a minion started | the `_minion_event` load |
//! | [`KEY`] `salt/key` | a key was accepted, rejected or deleted | [`key_event_data`] |
//! | [`AES_ROTATE`] `key` | the AES key rotated | [`aes_rotate_data`] |
//! | [`PRESENCE_PRESENT`], [`PRESENCE_CHANGE`] | presence ticks | [`presence_present_data`], [`presence_change_data`] |
//! | [`run_new`], [`run_ret`] `salt/run/<jid>/new\|ret` | runner jobs | runner load / return |
//!
//! On the bus an event is `tag ‖ "\n\n" ‖ msgpack(data)` with msgpack's bin
//! type for bytes ([`pack_event`] / [`unpack_event`]); every fired event
//! carries `_stamp`, the UTC time as `datetime.isoformat()` (no `Z`), which
//! [`stamp_event`] adds from a time the caller passes.

use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::jid::jid_from_micros;
use crate::serial::{SerialError, Value};

/// Separator between tag and data in an event body (Salt's `TAGEND`).
pub const TAG_END: &[u8] = b"\n\n";
/// `salt/auth`: minion authentication results.
pub const AUTH: &str = "salt/auth";
/// `minion_start`: the legacy start event every 3007 minion still fires.
pub const MINION_START: &str = "minion_start";
/// `salt/key`: key management (accept, reject, delete).
pub const KEY: &str = "salt/key";
/// `key` (no `salt/` prefix): the master rotated its AES key.
pub const AES_ROTATE: &str = "key";
/// `salt/presence/present`: the connected minions, periodically.
pub const PRESENCE_PRESENT: &str = "salt/presence/present";
/// `salt/presence/change`: minions that appeared or went away.
pub const PRESENCE_CHANGE: &str = "salt/presence/change";

/// `salt/job/<jid>`: the prefix under which all of a job's events fall
/// (what a client subscribes to, matching by prefix).
pub fn job(jid: &str) -> String {
    format!("salt/job/{jid}")
}

/// `salt/job/<jid>/new`.
pub fn job_new(jid: &str) -> String {
    format!("salt/job/{jid}/new")
}

/// `salt/job/<jid>/publish`.
pub fn job_publish(jid: &str) -> String {
    format!("salt/job/{jid}/publish")
}

/// `salt/job/<jid>/ret/<id>`.
pub fn job_ret(jid: &str, id: &str) -> String {
    format!("salt/job/{jid}/ret/{id}")
}

/// `salt/minion/<id>/start`.
pub fn minion_start(id: &str) -> String {
    format!("salt/minion/{id}/start")
}

/// `salt/run/<jid>/new`.
pub fn run_new(jid: &str) -> String {
    format!("salt/run/{jid}/new")
}

/// `salt/run/<jid>/ret`.
pub fn run_ret(jid: &str) -> String {
    format!("salt/run/{jid}/ret")
}

fn list(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|s| Value::from(s.as_str())).collect())
}

/// Data of the bare `<jid>` event: `{"minions": [...]}`.
pub fn job_minions_data(minions: &[String]) -> Value {
    [("minions", list(minions))].into_iter().collect()
}

/// Data of `salt/key`: `{"result": true, "act": act, "id": id}` where
/// `act` is `accept`, `reject` or `delete`.
pub fn key_event_data(act: &str, id: &str) -> Value {
    [
        ("result", Value::from(true)),
        ("act", Value::from(act)),
        ("id", Value::from(id)),
    ]
    .into_iter()
    .collect()
}

/// Data of the `key` rotation event: `{"rotate_aes_key": true}`.
pub fn aes_rotate_data() -> Value {
    [("rotate_aes_key", Value::from(true))]
        .into_iter()
        .collect()
}

/// Data of `salt/presence/present`: `{"present": [...]}`.
pub fn presence_present_data(present: &[String]) -> Value {
    [("present", list(present))].into_iter().collect()
}

/// Data of `salt/presence/change`: `{"new": [...], "lost": [...]}`.
pub fn presence_change_data(new: &[String], lost: &[String]) -> Value {
    [("new", list(new)), ("lost", list(lost))]
        .into_iter()
        .collect()
}

/// Why an event body could not be packed or unpacked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EventError {
    /// The tag is empty (Salt refuses empty tags).
    #[error("empty event tag")]
    EmptyTag,
    /// The tag contains the `\n\n` separator and could not be split back.
    #[error("event tag contains the tag/data separator")]
    TagWithSeparator,
    /// Event data must be a map (Salt: "Dict object expected").
    #[error("event data must be a map")]
    DataNotAMap,
    /// The body has no `\n\n` separator.
    #[error("event body has no tag/data separator")]
    MissingSeparator,
    /// The tag is not UTF-8.
    #[error("event tag is not UTF-8")]
    TagNotUtf8,
    /// The data could not be packed.
    #[error("could not pack event data")]
    Pack(#[source] SerialError),
    /// The data is not valid msgpack.
    #[error("could not unpack event data")]
    Unpack(#[source] SerialError),
}

/// Microseconds since the Unix epoch (0 before it).
fn micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `at` in UTC as Python's `datetime.isoformat()` writes it: e.g.
/// `2026-11-25T20:10:59.142494`, no zone suffix, and no fraction when the
/// microseconds are zero. Salt's `_stamp`.
pub fn isoformat(at: SystemTime) -> String {
    // jid digits: <year>MMDDHHMMSSffffff
    let digits = jid_from_micros(micros(at));
    let split = digits.len().saturating_sub(16);
    let (year, rest) = digits.split_at(split);
    let part = |range: std::ops::Range<usize>| rest.get(range).unwrap_or("00");
    let (month, day, hour, minute, second, frac) = (
        part(0..2),
        part(2..4),
        part(4..6),
        part(6..8),
        part(8..10),
        rest.get(10..16).unwrap_or("000000"),
    );
    let mut out = format!("{year}-{month}-{day}T{hour}:{minute}:{second}");
    if frac != "000000" {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// `at` in UTC as Python's `time.asctime()` writes it, e.g.
/// `Wed Nov 25 20:10:59 2026` (day padded with a space): the time in the
/// minion start events' data. (Salt uses local time; Brine uses UTC.)
pub fn asctime(at: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let us = micros(at);
    let weekday = usize::try_from(us / 86_400_000_000 % 7).unwrap_or(0);
    let digits = jid_from_micros(us);
    let split = digits.len().saturating_sub(16);
    let (year, rest) = digits.split_at(split);
    let num = |range: std::ops::Range<usize>| rest.get(range).and_then(|s| s.parse::<usize>().ok());
    let month = num(0..2)
        .and_then(|m| m.checked_sub(1))
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    format!(
        "{} {month} {:>2} {:02}:{:02}:{:02} {year}",
        DAYS.get(weekday).unwrap_or(&"Thu"),
        num(2..4).unwrap_or(1),
        num(4..6).unwrap_or(0),
        num(6..8).unwrap_or(0),
        num(8..10).unwrap_or(0),
    )
}

/// Sets `_stamp` in event data to [`isoformat`] of `at`, as Salt's
/// `fire_event` does just before packing.
///
/// # Errors
/// [`EventError::DataNotAMap`] unless `data` is a map.
pub fn stamp_event(data: &mut Value, at: SystemTime) -> Result<(), EventError> {
    if !matches!(data, Value::Map(_)) {
        return Err(EventError::DataNotAMap);
    }
    data.insert("_stamp", isoformat(at));
    Ok(())
}

/// An event body for the master bus: `tag ‖ "\n\n" ‖ msgpack(data)` with
/// bytes packed as msgpack bin (`SaltEvent.pack`). Call [`stamp_event`]
/// first to fire it as Salt does. No size trimming is applied.
///
/// # Errors
/// [`EventError::EmptyTag`], [`EventError::TagWithSeparator`],
/// [`EventError::DataNotAMap`], [`EventError::Pack`].
pub fn pack_event(tag: &str, data: &Value) -> Result<Vec<u8>, EventError> {
    if tag.is_empty() {
        return Err(EventError::EmptyTag);
    }
    if tag.contains("\n\n") {
        return Err(EventError::TagWithSeparator);
    }
    if !matches!(data, Value::Map(_)) {
        return Err(EventError::DataNotAMap);
    }
    let packed = data.to_event_bytes().map_err(EventError::Pack)?;
    let mut out = Vec::with_capacity(tag.len() + TAG_END.len() + packed.len());
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(TAG_END);
    out.extend_from_slice(&packed);
    Ok(out)
}

/// Splits an event body at the first `\n\n` into its tag and data
/// (`SaltEvent.unpack`). The data may be any msgpack value.
///
/// # Errors
/// [`EventError::MissingSeparator`], [`EventError::TagNotUtf8`],
/// [`EventError::Unpack`] for invalid msgpack.
pub fn unpack_event(body: &[u8]) -> Result<(String, Value), EventError> {
    let at = body
        .windows(TAG_END.len())
        .position(|w| w == TAG_END)
        .ok_or(EventError::MissingSeparator)?;
    let (tag, rest) = body.split_at(at);
    let data = rest.get(TAG_END.len()..).unwrap_or_default();
    let tag = std::str::from_utf8(tag).map_err(|_| EventError::TagNotUtf8)?;
    let data = Value::decode(data).map_err(EventError::Unpack)?;
    Ok((tag.to_owned(), data))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(micros)
    }

    #[test]
    fn tags_have_salts_names() {
        let jid = "20261125201059974475";
        assert_eq!(job(jid), "salt/job/20261125201059974475");
        assert_eq!(job_new(jid), "salt/job/20261125201059974475/new");
        assert_eq!(job_publish(jid), "salt/job/20261125201059974475/publish");
        assert_eq!(job_ret(jid, "m1"), "salt/job/20261125201059974475/ret/m1");
        assert_eq!(minion_start("m1"), "salt/minion/m1/start");
        assert_eq!(run_new(jid), "salt/run/20261125201059974475/new");
        assert_eq!(run_ret(jid), "salt/run/20261125201059974475/ret");
        assert_eq!(
            (AUTH, MINION_START, KEY, AES_ROTATE),
            ("salt/auth", "minion_start", "salt/key", "key")
        );
        assert_eq!(PRESENCE_PRESENT, "salt/presence/present");
        assert_eq!(PRESENCE_CHANGE, "salt/presence/change");
    }

    #[test]
    fn event_data_shapes() {
        let ids = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            job_minions_data(&ids),
            [("minions", Value::Array(vec!["a".into(), "b".into()]))]
                .into_iter()
                .collect()
        );
        assert_eq!(
            key_event_data("accept", "m").get("act"),
            Some(&"accept".into())
        );
        assert_eq!(aes_rotate_data().get("rotate_aes_key"), Some(&true.into()));
        assert_eq!(
            presence_present_data(&ids)
                .get("present")
                .map(|v| v.as_array().map(<[Value]>::len)),
            Some(Some(2))
        );
        let change = presence_change_data(&ids, &[]);
        assert_eq!(change.get("lost"), Some(&Value::Array(vec![])));
    }

    #[test]
    fn times_format_like_python() {
        // 2026-11-25T20:10:59.142494 UTC, a Wednesday
        let t = at(1_795_637_459_142_494);
        assert_eq!(isoformat(t), "2026-11-25T20:10:59.142494");
        assert_eq!(asctime(t), "Wed Nov 25 20:10:59 2026");
        assert_eq!(isoformat(at(1_795_637_459_000_000)), "2026-11-25T20:10:59");
        assert_eq!(isoformat(UNIX_EPOCH), "1970-01-01T00:00:00");
        assert_eq!(asctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
        assert_eq!(
            isoformat(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00"
        );
        // five-digit years do not break the layout
        let far = isoformat(at(300_000_000_000_000_000));
        assert_eq!(far.len(), "2026-11-25T20:10:59".len() + 1, "{far}");
        assert_eq!(far.as_bytes().get(5), Some(&b'-'), "{far}");
        assert!(asctime(at(300_000_000_000_000_000)).len() > 20);
    }

    #[test]
    fn event_bodies_round_trip_with_stamp() {
        let mut data: Value = [("blob", Value::Bytes(vec![0xff, 0x00])), ("n", 1.into())]
            .into_iter()
            .collect();
        stamp_event(&mut data, at(1_795_637_459_142_494)).unwrap();
        let body = pack_event("salt/job/1/ret/m1", &data).unwrap();
        assert!(body.starts_with(b"salt/job/1/ret/m1\n\n\x83"));
        // bytes travel as bin (c4), as Salt's event bus packs them
        assert!(body.windows(2).any(|w| w == [0xc4, 0x02]));
        let (tag, back) = unpack_event(&body).unwrap();
        assert_eq!(tag, "salt/job/1/ret/m1");
        assert_eq!(back, data);
        assert_eq!(
            back.get("_stamp").and_then(Value::as_str),
            Some("2026-11-25T20:10:59.142494")
        );
    }

    #[test]
    fn bad_event_bodies_are_errors() {
        let map = Value::map();
        assert!(matches!(pack_event("", &map), Err(EventError::EmptyTag)));
        assert!(matches!(
            pack_event("a\n\nb", &map),
            Err(EventError::TagWithSeparator)
        ));
        assert!(matches!(
            pack_event("t", &Value::Nil),
            Err(EventError::DataNotAMap)
        ));
        assert!(matches!(
            stamp_event(&mut Value::Nil, UNIX_EPOCH),
            Err(EventError::DataNotAMap)
        ));
        assert!(matches!(
            unpack_event(b"no separator"),
            Err(EventError::MissingSeparator)
        ));
        assert!(matches!(
            unpack_event(b"\xff\n\n\x80"),
            Err(EventError::TagNotUtf8)
        ));
        assert!(matches!(
            unpack_event(b"tag\n\n"),
            Err(EventError::Unpack(_))
        ));
        assert!(matches!(
            unpack_event(b"tag\n\n\x81"),
            Err(EventError::Unpack(_))
        ));
        // the first separator wins; data may itself contain \n\n
        let body = pack_event("t", &[("s", "x\n\ny")].into_iter().collect()).unwrap();
        assert_eq!(unpack_event(&body).unwrap().0, "t");
    }
}
