//! Round trips and failure paths of the envelopes; shared test keys.

mod fuzz;
mod legacy;
mod loads;
mod publish;
mod request;

use std::sync::{Arc, OnceLock};

use crate::crypto::{Crypticle, PrivateKey, PublicKey};
use crate::serial::Value;

/// Small keys for speed (generation dominates debug test time); the Salt
/// fixture tests use 2048-bit keys.
const TEST_BITS: usize = 1024;

/// Three fixed key pairs for the whole crate's tests: minion, master, other.
pub(crate) fn keys() -> &'static [PrivateKey; 3] {
    static KEYS: OnceLock<[PrivateKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| [(); 3].map(|()| PrivateKey::generate(TEST_BITS).unwrap()))
}

pub(crate) fn minion_key() -> &'static PrivateKey {
    &keys()[0]
}

pub(crate) fn master_key() -> &'static PrivateKey {
    &keys()[1]
}

pub(crate) fn other_key() -> &'static PrivateKey {
    &keys()[2]
}

/// A text-keyed map.
pub(crate) fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    entries.into_iter().collect()
}

/// Keys of a map, in order.
pub(crate) fn keys_of(value: &Value) -> Vec<&str> {
    value
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect()
}

/// A minion's session on the master: (session, accepted key).
pub(crate) struct Session {
    pub(crate) crypticle: Arc<Crypticle>,
    pub(crate) public: Arc<PublicKey>,
}

impl Session {
    pub(crate) fn new() -> Session {
        Session {
            crypticle: Arc::new(Crypticle::generate().unwrap()),
            public: Arc::new(minion_key().public_key()),
        }
    }

    /// The same key as the minion holds it (its own Crypticle instance).
    pub(crate) fn minion_side(&self) -> Crypticle {
        Crypticle::new(self.crypticle.key_string()).unwrap()
    }

    pub(crate) fn lookup(
        &self,
        known: &'static str,
    ) -> impl FnOnce(&str) -> Option<(Arc<Crypticle>, Arc<PublicKey>)> + '_ {
        move |id| (id == known).then(|| (self.crypticle.clone(), self.public.clone()))
    }
}

/// A deterministic byte stream for the garbage tests.
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.max(1);
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
