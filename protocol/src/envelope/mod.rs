//! Request, reply and publish envelopes, and the loads they carry, as Salt
//! 3007's channel layer builds them (`salt/channel/client.py`,
//! `salt/channel/server.py`, `salt/master.py`, `salt/minion.py`).
//!
//! Everything here is sans-IO: functions take bytes (or a [`Value`]), keys
//! and the current Unix time, and return bytes, values or typed errors. No
//! socket, clock or task is touched, so the master and minion drive these
//! from whatever transport the `transport` key picked.
//!
//! | direction | here | Salt |
//! | --- | --- | --- |
//! | minion → master, clear (`_auth`, CLI `publish`) | [`package_clear`] | `AsyncReqChannel._package_load` (`crypt="clear"`) |
//! | minion → master, v3 aes (`_return`, `_minion_event`, …) | [`package_aes`] with a memoized [`Tok`] | `AsyncReqChannel._package_load` (`crypt="aes"`) |
//! | master: open a request | [`open_request`] + [`ReplayGuard`] | `ReqServerChannel.handle_message` steps 1–4 |
//! | master: open a v2 request too (Salt 3006.0–3006.11 minions) | [`open_request_with_legacy`] + [`NonceLedger`] | the same, `version <= 2` branches |
//! | master → minion replies | [`seal_clear_reply`], [`seal_aes_reply`] | `send_clear`, `Crypticle(session).dumps(ret, nonce)` |
//! | minion: read a reply | [`open_clear_reply`], [`open_aes_reply`] | `_uncrypted_transfer`, `_crypted_transfer` |
//! | master → minions, publish | [`wrap_publish`] with a [`SerialCounter`]; loads from [`PublishJob`] | `PubServerChannel.wrap_payload`, `ClearFuncs._prep_pub` |
//! | minion: read a publish | [`unwrap_publish`] → [`PublishLoad`] | `AsyncPubChannel._decode_payload`, `Minion._target_load` |
//! | master → minion, private pillar (`_pillar` v2) | [`seal_private_pillar`], [`open_private_pillar`] | `_encrypt_private`, `crypted_transfer_decode_dictentry` |
//! | job returns, minion events | [`JobReturn`] / [`ReturnLoad`], [`MinionEvent`] / [`minion_event_fires`] | `Minion._thread_return`, `AESFuncs._return`, `_minion_event` |
//!
//! # Replay protection
//!
//! Stock Salt checks a request's `ts` only when `request_server_ttl` > 0
//! (default 0) and never remembers nonces, so a captured aes request can
//! be replayed for as long as the minion's session key lives. Brine's
//! [`open_request`] always runs the request through a [`ReplayGuard`]: `ts`
//! must be within ±`ttl` of the master's clock and each nonce is accepted
//! once within that window. Stock minions send both, so they are unaffected.
//! Version-2 requests carry no `ts`: their nonces are remembered for as
//! long as the AES key that encrypted them is in use ([`NonceLedger`]).
//! Publishes are protected by their `serial` (strictly increasing per AES
//! key), enforced by the minion's [`Crypticle`](crate::Crypticle).

mod client;
mod error;
mod job;
pub mod legacy;
mod pillar;
mod publish;
mod replay;
mod ret;
mod server;

pub use client::{
    Tok, open_aes_reply, open_clear_reply, package_aes, package_aes_with_nonce, package_clear,
};
pub use error::{EnvelopeError, LoadError, PublishError, RequestError};
pub use job::{PublishJob, PublishLoad, condition_input};
pub use legacy::{LEGACY_VERSION, Legacy, NonceLedger};
pub use pillar::{open_private_pillar, seal_private_pillar};
pub use publish::{SerialCounter, unwrap_publish, wrap_publish, wrap_publish_with_serial};
pub use replay::{ReplayError, ReplayGuard};
pub use ret::{JobReturn, MinionEvent, ReturnLoad, is_blacklisted_minion_tag, minion_event_fires};
pub use server::{
    OpenedRequest, open_request, open_request_with_legacy, seal_aes_reply, seal_clear_reply,
};

use crate::serial::Value;

/// The request envelope version Salt 3007 minions send and Brine speaks.
pub const VERSION: i64 = 3;

/// The message a master sends back (in clear) when it cannot use a request
/// at all (Salt's `"bad load"`).
pub const BAD_LOAD: &str = "bad load";

/// One `(key, value)` map entry with a text key.
fn entry(key: &str, value: impl Into<Value>) -> (Value, Value) {
    (Value::from(key), value.into())
}

/// A text value from a map, if the key is there and holds text.
fn get_str<'a>(map: &'a Value, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

#[cfg(test)]
pub(crate) mod tests;
