//! Job ids, as `salt/utils/jid.py` makes them.
//!
//! A jid is the UTC time of the publish as `%Y%m%d%H%M%S%f`: 20 decimal
//! digits, e.g. `20261125201059974475`. It is a **string**: as a number it
//! exceeds `u64::MAX`, so never parse it as an integer. [`gen_jid`] is unique
//! within the process even under concurrency: if the current microsecond
//! is taken, the next free one is used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of a jid.
pub const JID_LEN: usize = 20;

/// The jid of a minion-initiated job (the master allocates a real one).
pub const JID_REQ: &str = "req";

/// The jid Salt uses for jobs that are not cached.
pub const JID_NOCACHE: &str = "nocache";

/// The last microsecond handed out, so concurrent callers never collide.
static LAST_MICROS: AtomicU64 = AtomicU64::new(0);

/// A fresh jid for "now", strictly greater than every jid this process
/// generated before (even if the clock steps back).
pub fn gen_jid() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut last = LAST_MICROS.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST_MICROS.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return jid_from_micros(next),
            Err(seen) => last = seen,
        }
    }
}

/// The jid for a UTC time given as microseconds since the Unix epoch.
pub fn jid_from_micros(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}{frac:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Salt's `is_jid`: 20 characters, or more with `_` at index 20 (the
/// `unique_jid` form `<jid>_<pid>`), whose first 20 are digits. Stricter than
/// Python's `int()` on purpose: signs, spaces and underscores among the
/// digits are not accepted.
pub fn is_jid(s: &str) -> bool {
    let bytes = s.as_bytes();
    let shape_ok =
        bytes.len() == JID_LEN || (bytes.len() > JID_LEN + 1 && bytes.get(JID_LEN) == Some(&b'_'));
    shape_ok && bytes.iter().take(JID_LEN).all(u8::is_ascii_digit)
}

/// The time a jid stands for, if it is one (the `_<pid>` suffix is ignored).
pub fn jid_to_time(jid: &str) -> Option<SystemTime> {
    if !is_jid(jid) {
        return None;
    }
    let digits = jid.get(..JID_LEN)?;
    let field = |range: std::ops::Range<usize>| digits.get(range)?.parse::<u64>().ok();
    let (year, month, day) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hour, minute, second, micros) = (
        field(8..10)?,
        field(10..12)?,
        field(12..14)?,
        field(14..20)?,
    );
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let secs = days
        .checked_mul(86_400)?
        .checked_add(hour * 3600 + minute * 60 + second)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs) + Duration::from_micros(micros))
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`]; `None` before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y % 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn formats_utc_with_microseconds() {
        assert_eq!(jid_from_micros(0), "19700101000000000000");
        // 2026-11-25 20:10:59.974475 UTC
        let t = 1_795_637_459_974_475;
        assert_eq!(jid_from_micros(t), "20261125201059974475");
        // leap day
        assert_eq!(jid_from_micros(951_782_400_000_001), "20000229000000000001");
        assert_eq!(jid_from_micros(t).len(), JID_LEN);
    }

    #[test]
    fn round_trips_through_time() {
        for micros in [
            0,
            1,
            951_782_400_000_001,
            1_795_637_459_974_475,
            4_102_444_799_999_999,
        ] {
            let jid = jid_from_micros(micros);
            let back = jid_to_time(&jid).unwrap();
            assert_eq!(
                back.duration_since(UNIX_EPOCH).unwrap().as_micros(),
                u128::from(micros),
                "{jid}"
            );
        }
        assert!(jid_to_time("20261325201059974475").is_none()); // month 13
        assert!(jid_to_time("20250229000000000000").is_none()); // not a leap year
        assert!(jid_to_time("20261125241059974475").is_none()); // hour 24
        assert!(jid_to_time("req").is_none());
        assert!(jid_to_time("20261125201059974475_123").is_some());
    }

    #[test]
    fn is_jid_follows_salt() {
        assert!(is_jid("20261125201059974475"));
        assert!(is_jid("20261125201059974475_4242"));
        assert!(!is_jid("20261125201059974475_"));
        assert!(!is_jid("2026112520105997447"));
        assert!(!is_jid("202611252010599744750"));
        assert!(!is_jid("2026112520105997447a"));
        assert!(!is_jid("+2026112520105997447"));
        assert!(!is_jid(JID_REQ));
        assert!(!is_jid(""));
        assert!(!is_jid("２０２６１１２５２０１０５９９７４４"));
    }

    #[test]
    fn generated_jids_are_valid_increasing_and_near_now() {
        let a = gen_jid();
        let b = gen_jid();
        assert!(is_jid(&a) && is_jid(&b));
        assert!(b > a, "{a} {b}");
        let t = jid_to_time(&a).unwrap();
        let skew = SystemTime::now()
            .duration_since(t)
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(3600), "{skew:?}");
    }

    #[test]
    fn unique_under_concurrency() {
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mine: Vec<String> = (0..2000).map(|_| gen_jid()).collect();
                    // each thread sees its own jids strictly increasing
                    assert!(mine.windows(2).all(|w| w[0] < w[1]));
                    seen.lock().unwrap().extend(mine);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(seen.lock().unwrap().len(), 16_000);
    }
}
