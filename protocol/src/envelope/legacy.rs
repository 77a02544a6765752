//! Request protocol version 2, which Salt 3006.0–3006.11 minions speak
//! (3006.12 and later, like 3007, speak version 3).
//!
//! | | version 2 (3006.0–3006.11) | version 3 (3006.12+, 3007) |
//! | --- | --- | --- |
//! | aes request encrypted with | the master's AES key, shared by every minion | the minion's own session key |
//! | envelope | `enc`, `load`, `version: 2`, `enc_algo`, `sig_algo` | the same plus `id` |
//! | load gets | `nonce` | `nonce`, `ts`, `tok`, `id` |
//! | `tok` | only where the caller put it (`_minion_event`, `_mine`) | always |
//! | reply to an aes request | `Crypticle(aes).dumps(ret, nonce)` | `Crypticle(session).dumps(ret, nonce)` |
//! | `_auth`, `_pillar`'s private reply, publishes | the same | the same |
//!
//! A version-2 request therefore proves only that its sender holds the
//! master's AES key, i.e. is *some* accepted minion. Its `id` is
//! authenticated only when the load carries a `tok` (the X9.31 signature of
//! `salt` by that minion's key), which 3006 sends with events and mine data
//! but not with `_return`, `_pillar` or file-server requests: on those, one
//! accepted minion can claim another's id, as with a stock master. There is
//! no `ts`, so replays are caught by remembering nonces, for as long as the
//! AES key that encrypted them is in use ([`NonceLedger`]).

use std::borrow::Borrow;
use std::collections::HashSet;

use super::server::check_load;
use super::{OpenedRequest, ReplayError, RequestError};
use crate::crypto::{Crypticle, CryptoError, PublicKey, is_nonce};
use crate::envelope::client::Tok;
use crate::keys::validate_minion_id;
use crate::serial::Value;

/// The request envelope version Salt 3006.0–3006.11 minions send.
pub const LEGACY_VERSION: i64 = 2;

/// What [`open_request_with_legacy`](super::open_request_with_legacy)
/// needs to open version-2 aes requests.
#[derive(Debug)]
pub struct Legacy<'a, F> {
    /// The master's current AES key (the publish key).
    pub aes: &'a Crypticle,
    /// A number the master changes every time it rotates `aes`, so the
    /// nonce ledger knows when to start over.
    pub generation: u64,
    /// The accepted public key of a minion id (`pki_dir/minions/<id>`),
    /// `None` if that id has no accepted key.
    pub accepted: F,
    /// The nonces already seen under `aes`.
    pub nonces: &'a mut NonceLedger,
}

/// Opens a version-2 aes request, the compatibility path of
/// `ReqServerChannel.handle_message` (`version <= 2`), with Brine's checks
/// added:
///
/// 1. the load decrypts with the master's AES key and is a map whose `id`,
///    if any, is text without NUL;
/// 2. `nonce` is removed and must be 32 hex characters (every 3006 minion
///    sends one; Salt would answer without it);
/// 3. an `id`, if present, must be a valid minion id with an accepted key
///    (Salt does not check this for version 2);
/// 4. `tok`, if present, is removed and must X9.31-verify to `salt` with
///    that key (as Salt), and needs an `id`;
/// 5. the nonce must be new under this AES key ([`NonceLedger`]).
pub(super) fn open_v2<P, F>(
    load: &Value,
    legacy: Legacy<'_, F>,
) -> Result<OpenedRequest, RequestError>
where
    P: Borrow<PublicKey>,
    F: FnOnce(&str) -> Option<P>,
{
    let ciphertext = load
        .as_bytes()
        .ok_or(RequestError::Decrypt(CryptoError::Malformed {
            what: "aes load",
        }))?;
    let mut load = legacy
        .aes
        .loads(ciphertext, None)
        .map_err(RequestError::Decrypt)?;
    check_load(&load)?;
    let nonce = load
        .remove("nonce")
        .and_then(|n| n.as_str().map(str::to_owned))
        .filter(|n| is_nonce(n))
        .ok_or(RequestError::BadNonce)?;
    let id = load.get("id").and_then(Value::as_str).map(str::to_owned);
    let public = match &id {
        None => None,
        Some(id) => {
            validate_minion_id(id).map_err(|_| RequestError::InvalidId)?;
            let public = (legacy.accepted)(id)
                .ok_or_else(|| RequestError::UnknownMinion { id: id.clone() })?;
            Some(public)
        }
    };
    let authenticated = match (load.remove("tok"), public) {
        (None, _) => false,
        (Some(tok), Some(public)) => {
            let tok = tok.as_bytes().ok_or(RequestError::BadToken)?;
            public
                .borrow()
                .x931_verify(Tok::CLEAR, tok)
                .map_err(|_| RequestError::BadToken)?;
            true
        }
        (Some(_), None) => return Err(RequestError::BadToken),
    };
    legacy.nonces.check(&nonce, legacy.generation)?;
    Ok(OpenedRequest::AesV2 {
        id,
        authenticated,
        nonce,
        load,
    })
}

/// Remembers the nonce of every version-2 request accepted under one AES
/// key, and refuses a nonce it has seen: a captured request cannot be
/// replayed while that key is in use, and after the master rotated it the
/// capture no longer decrypts. Version 2 has no timestamp, so there is no
/// time window to forget by.
///
/// Memory is bounded: 8 bytes per nonce (a 64-bit digest of the 128-bit
/// nonce; a legitimate clash, about one in 2⁴⁵ at capacity, costs the minion
/// one re-authentication), at most `capacity` of them. A full ledger
/// refuses every further request ([`ReplayError::LedgerFull`]) rather than
/// forget: the master should then rotate its AES key
/// ([`NonceLedger::is_full`]), after which the ledger starts over and the
/// minions sign in again for the new key.
///
/// Sans-IO and not thread-safe by itself, like
/// [`ReplayGuard`](super::ReplayGuard).
#[derive(Debug, Clone)]
pub struct NonceLedger {
    capacity: usize,
    generation: Option<u64>,
    seen: HashSet<u64>,
}

impl Default for NonceLedger {
    fn default() -> Self {
        NonceLedger::new(NonceLedger::DEFAULT_CAPACITY)
    }
}

impl NonceLedger {
    /// Default capacity: about 4.5 MiB at worst, and one AES key rotation
    /// per 262,144 version-2 requests.
    pub const DEFAULT_CAPACITY: usize = 262_144;

    /// A ledger remembering at most `capacity` nonces (at least one).
    pub fn new(capacity: usize) -> NonceLedger {
        NonceLedger {
            capacity: capacity.max(1),
            generation: None,
            seen: HashSet::new(),
        }
    }

    /// Checks one request's nonce (32 hex characters, checked by the
    /// caller) under AES key `generation`, and remembers it if it is new.
    /// A generation other than the last one seen empties the ledger first.
    ///
    /// # Errors
    /// [`ReplayError::Replayed`] for a nonce already seen under this key,
    /// [`ReplayError::LedgerFull`] when `capacity` nonces are remembered.
    pub fn check(&mut self, nonce: &str, generation: u64) -> Result<(), ReplayError> {
        if self.generation != Some(generation) {
            self.seen = HashSet::new();
            self.generation = Some(generation);
        }
        // Both halves, mixed so that swapping them makes another digest.
        let half = |range: std::ops::Range<usize>| {
            nonce
                .get(range)
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .unwrap_or(u64::MAX)
        };
        let key = half(0..16).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ half(16..32);
        if self.seen.contains(&key) {
            return Err(ReplayError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayError::LedgerFull {
                capacity: self.capacity,
            });
        }
        self.seen.insert(key);
        Ok(())
    }

    /// Whether the ledger is full: rotate the AES key.
    pub fn is_full(&self) -> bool {
        self.seen.len() >= self.capacity
    }

    /// The AES key generation the remembered nonces belong to.
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(n: u32) -> String {
        format!("{n:032x}")
    }

    #[test]
    fn a_nonce_is_accepted_once_per_key() {
        let mut ledger = NonceLedger::new(10);
        ledger.check(&nonce(1), 7).unwrap();
        ledger.check(&nonce(2), 7).unwrap();
        assert_eq!(ledger.check(&nonce(1), 7), Err(ReplayError::Replayed));
        // upper-case hex is the same nonce
        ledger.check("ABCDEF0123456789ABCDEF0123456789", 7).unwrap();
        assert_eq!(
            ledger.check("abcdef0123456789abcdef0123456789", 7),
            Err(ReplayError::Replayed)
        );
        // nonces that differ only in the high half are different
        ledger.check(&format!("{:032x}", 1u128 << 64), 7).unwrap();
        assert_eq!(ledger.len(), 4);
        // a new key starts over
        ledger.check(&nonce(1), 8).unwrap();
        assert_eq!((ledger.len(), ledger.generation()), (1, Some(8)));
    }

    #[test]
    fn a_full_ledger_refuses_instead_of_forgetting() {
        let mut ledger = NonceLedger::new(2);
        ledger.check(&nonce(1), 1).unwrap();
        assert!(!ledger.is_full());
        ledger.check(&nonce(2), 1).unwrap();
        assert!(ledger.is_full());
        assert_eq!(
            ledger.check(&nonce(3), 1),
            Err(ReplayError::LedgerFull { capacity: 2 })
        );
        assert_eq!(ledger.check(&nonce(1), 1), Err(ReplayError::Replayed));
        // after a rotation
        ledger.check(&nonce(3), 2).unwrap();
        assert!(!ledger.is_full() && ledger.len() == 1);
        assert!(NonceLedger::new(0).check(&nonce(1), 0).is_ok());
    }
}
