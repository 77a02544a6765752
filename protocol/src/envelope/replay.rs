//! Rejecting replayed aes requests (Brine's addition to Salt's channel).

use std::collections::BTreeSet;

use thiserror::Error;

/// Why the [`ReplayGuard`] refused a request.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// The load carries no integer `ts`.
    #[error("request has no timestamp")]
    MissingTimestamp,
    /// `ts` is more than `ttl` seconds away from the master's clock: an old
    /// capture, or a minion whose clock is badly off.
    #[error("request timestamp {ts} is outside now ({now}) ± {ttl} s")]
    OutOfWindow {
        /// The request's `ts`.
        ts: i64,
        /// The master's time.
        now: i64,
        /// The window's half width in seconds.
        ttl: u64,
    },
    /// This nonce was already accepted within the window.
    #[error("request nonce already seen")]
    Replayed,
    /// The guard was full and forgot requests this old, so it can no longer
    /// tell whether this one is a replay; only happens when more than
    /// `capacity` requests arrive within one `ttl`.
    #[error("request timestamp {ts} is at or below the guard's floor {floor}")]
    TooOld {
        /// The request's `ts`.
        ts: i64,
        /// Requests at or below this time are refused.
        floor: i64,
    },
    /// A version-2 request found the [`NonceLedger`](super::NonceLedger)
    /// full: it cannot remember another nonce under this AES key, so the
    /// master should rotate the key.
    #[error("{capacity} version-2 requests under one AES key; rotate it")]
    LedgerFull {
        /// How many nonces the ledger holds.
        capacity: usize,
    },
}

/// Remembers the nonces of accepted aes requests for `ttl` seconds and
/// refuses a request whose `ts` is more than `ttl` away from now or whose
/// nonce it has seen: a captured request cannot be replayed, neither
/// within the window (nonce) nor after it (timestamp).
///
/// Stock Salt has no such memory and checks `ts` only when
/// `request_server_ttl` > 0 (default 0); Brine always checks both.
///
/// Memory is bounded: at most `capacity` entries (16-byte nonce + 8-byte
/// time each, plus the tree's overhead). When it is full the oldest entry
/// is forgotten and every request at or before its second is refused from
/// then on ([`ReplayError::TooOld`]), so forgetting never lets a replay
/// through; under such a flood the effective window shrinks instead.
///
/// Sans-IO: the caller passes the current Unix time. Not thread-safe by
/// itself; a master with several workers shares one behind a mutex (each
/// check is O(log n) and never awaits).
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    ttl: u64,
    capacity: usize,
    /// `(ts, nonce)` of every request accepted within the window.
    seen: BTreeSet<(i64, u128)>,
    /// Requests with `ts <= floor` are refused (their entries may be gone).
    floor: Option<i64>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(ReplayGuard::DEFAULT_TTL, ReplayGuard::DEFAULT_CAPACITY)
    }
}

impl ReplayGuard {
    /// Default window half width: 5 minutes of clock skew or delay.
    pub const DEFAULT_TTL: u64 = 300;
    /// Default capacity: about 4 MiB at worst.
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// A guard accepting `ts` within ±`ttl` seconds and remembering at most
    /// `capacity` nonces (at least one).
    pub fn new(ttl: u64, capacity: usize) -> ReplayGuard {
        ReplayGuard {
            ttl,
            capacity: capacity.max(1),
            seen: BTreeSet::new(),
            floor: None,
        }
    }

    /// The window's half width in seconds.
    pub fn ttl(&self) -> u64 {
        self.ttl
    }

    /// How many nonces are remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Checks one request and, if it passes, remembers its nonce.
    /// `nonce` must be 32 hex characters (checked by the caller);
    /// `now` is the master's Unix time in seconds.
    ///
    /// # Errors
    /// [`ReplayError::OutOfWindow`], [`ReplayError::Replayed`] or
    /// [`ReplayError::TooOld`] as documented on each.
    pub fn check(&mut self, nonce: &str, ts: i64, now: i64) -> Result<(), ReplayError> {
        let ttl = i64::try_from(self.ttl).unwrap_or(i64::MAX);
        let oldest = now.saturating_sub(ttl);
        if ts < oldest || ts > now.saturating_add(ttl) {
            return Err(ReplayError::OutOfWindow {
                ts,
                now,
                ttl: self.ttl,
            });
        }
        // A malformed nonce maps to a key no real nonce has; the caller
        // validates nonces, so this only matters for misuse.
        let key = (ts, u128::from_str_radix(nonce, 16).unwrap_or(u128::MAX));
        // Forget what left the window: usually nothing, or the oldest few.
        while self.seen.first().is_some_and(|&(seen, _)| seen < oldest) {
            self.seen.pop_first();
        }
        self.refuse_below_floor(ts)?;
        if self.seen.contains(&key) {
            return Err(ReplayError::Replayed);
        }
        if self.seen.len() >= self.capacity
            && let Some((evicted, _)) = self.seen.pop_first()
        {
            self.floor = Some(self.floor.map_or(evicted, |f| f.max(evicted)));
            self.refuse_below_floor(ts)?;
        }
        self.seen.insert(key);
        Ok(())
    }

    fn refuse_below_floor(&self, ts: i64) -> Result<(), ReplayError> {
        match self.floor {
            Some(floor) if ts <= floor => Err(ReplayError::TooOld { ts, floor }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(n: u32) -> String {
        format!("{n:032x}")
    }

    #[test]
    fn accepts_fresh_and_refuses_replays() {
        let mut g = ReplayGuard::new(60, 100);
        g.check(&nonce(1), 1000, 1000).unwrap();
        g.check(&nonce(2), 1000, 1000).unwrap();
        assert_eq!(g.check(&nonce(1), 1000, 1010), Err(ReplayError::Replayed));
        // case does not make a different nonce
        let upper = "ABCDEF0123456789ABCDEF0123456789";
        g.check(upper, 1000, 1000).unwrap();
        assert_eq!(
            g.check(&upper.to_lowercase(), 1000, 1000),
            Err(ReplayError::Replayed)
        );
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn refuses_timestamps_outside_the_window() {
        let mut g = ReplayGuard::new(60, 100);
        for ts in [939, 1061, i64::MIN, i64::MAX, -1] {
            assert!(
                matches!(
                    g.check(&nonce(1), ts, 1000),
                    Err(ReplayError::OutOfWindow { .. })
                ),
                "{ts}"
            );
        }
        g.check(&nonce(1), 940, 1000).unwrap();
        g.check(&nonce(2), 1060, 1000).unwrap();
        // extreme clocks do not overflow
        g.check(&nonce(3), i64::MAX, i64::MAX).unwrap();
        g.check(&nonce(4), i64::MIN, i64::MIN).unwrap();
    }

    #[test]
    fn a_replay_after_the_window_fails_on_time_and_memory_is_pruned() {
        let mut g = ReplayGuard::new(60, 100);
        g.check(&nonce(1), 1000, 1000).unwrap();
        assert!(matches!(
            g.check(&nonce(1), 1000, 1061),
            Err(ReplayError::OutOfWindow { .. })
        ));
        g.check(&nonce(2), 1061, 1061).unwrap();
        assert_eq!(g.len(), 1, "the expired nonce was forgotten");
    }

    #[test]
    fn memory_is_bounded_and_forgetting_never_admits_a_replay() {
        let mut g = ReplayGuard::new(600, 4);
        for n in 0..4 {
            g.check(&nonce(n), 1000 + i64::from(n), 1000).unwrap();
        }
        // full: the oldest (ts 1000) is evicted to make room
        g.check(&nonce(10), 1005, 1005).unwrap();
        assert_eq!(g.len(), 4);
        // its replay is refused by the floor even though it was forgotten
        assert_eq!(
            g.check(&nonce(0), 1000, 1005),
            Err(ReplayError::TooOld {
                ts: 1000,
                floor: 1000
            })
        );
        // newer requests still pass
        g.check(&nonce(11), 1006, 1006).unwrap();
        assert_eq!(g.len(), 4);
        assert!(ReplayGuard::new(1, 0).check(&nonce(1), 0, 0).is_ok());
    }
}
