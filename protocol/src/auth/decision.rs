//! The master's decision on an `_auth` request, as a pure function of the
//! key state (`ReqServerChannel._auth`).

use crate::crypto::{PublicKey, clean_key};
use crate::keys::{KeyError, KeyState, MasterPki, validate_minion_id};
use crate::serial::{Serialization, Value};

/// What the master's `pki_dir` holds for a minion id, in the precedence
/// Salt's `_auth` checks it: rejected, then accepted, then pending.
/// `minions_denied/` plays no part in the decision (Salt never reads it
/// there), so [`KeyOnFile::Denied`] behaves like [`KeyOnFile::None`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOnFile {
    /// No key for this id.
    None,
    /// `minions/<id>`, with its content.
    Accepted(String),
    /// `minions_pre/<id>`, with its content.
    Pending(String),
    /// `minions_rejected/<id>`.
    Rejected,
    /// Only `minions_denied/<id>`.
    Denied,
}

impl KeyOnFile {
    /// Reads the state of `id` from `pki` (the one file-system helper here).
    ///
    /// # Errors
    /// [`KeyError::InvalidId`] or [`KeyError::Io`].
    pub fn read(pki: &MasterPki, id: &str) -> Result<KeyOnFile, KeyError> {
        if pki.read_minion_key(KeyState::Rejected, id)?.is_some() {
            return Ok(KeyOnFile::Rejected);
        }
        if let Some(pem) = pki.read_minion_key(KeyState::Accepted, id)? {
            return Ok(KeyOnFile::Accepted(pem));
        }
        if let Some(pem) = pki.read_minion_key(KeyState::Pending, id)? {
            return Ok(KeyOnFile::Pending(pem));
        }
        if pki.read_minion_key(KeyState::Denied, id)?.is_some() {
            return Ok(KeyOnFile::Denied);
        }
        Ok(KeyOnFile::None)
    }
}

/// The master's settings that shape the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthPolicy {
    /// `open_mode`: accept every key, overwriting the stored one.
    pub open_mode: bool,
    /// `auto_accept`: accept new keys without an operator.
    pub auto_accept: bool,
    /// `max_minions`: 0 for unlimited.
    pub max_minions: usize,
    /// `serial`: what this master packs inside the AES layer; a minion must
    /// announce the same (no announcement means msgpack).
    pub serial: Serialization,
}

/// One `_auth` request as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The id the minion claims.
    pub id: &'a str,
    /// The public key it presented (`pub`).
    pub pub_pem: &'a str,
    /// What the `pki_dir` holds for that id.
    pub on_file: &'a KeyOnFile,
    /// Whether `autosign_file` / `autosign_grains` match this minion.
    pub autosign: bool,
    /// Whether `autoreject_file` matches this minion.
    pub autoreject: bool,
    /// How many minions are connected now (for `max_minions`).
    pub connected: usize,
    /// Whether this id is one of them.
    pub is_connected: bool,
    /// The `serial` the minion announced ([`AuthLoad::serial`](super::AuthLoad::serial)),
    /// `None` when it sent none: msgpack, as every stock Salt minion.
    pub serial: Option<&'a str>,
}

/// The `act` of a `salt/auth` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthAct {
    /// Accepted: the reply carries the AES and session keys.
    Accept,
    /// Pending acceptance (`ret: true`).
    Pend,
    /// Rejected (`ret: false`).
    Reject,
    /// A different key claims a known id (`ret: false`).
    Denied,
    /// `max_minions` reached (`ret: "full"`).
    Full,
    /// (Brine) The minion's `serial` differs from the master's: refused
    /// with `ret: "bad serial"` and the master's choice, no key file
    /// touched. Its event `act` is `reject`, the word Salt's consumers know.
    SerialMismatch,
}

impl AuthAct {
    /// Salt's name for it.
    pub fn name(self) -> &'static str {
        match self {
            AuthAct::Accept => "accept",
            AuthAct::Pend => "pend",
            AuthAct::Reject | AuthAct::SerialMismatch => "reject",
            AuthAct::Denied => "denied",
            AuthAct::Full => "full",
        }
    }
}

/// A change to the `pki_dir` that a decision requires, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOp {
    /// Write the presented key to `<state dir>/<id>`.
    Write {
        /// Where.
        state: KeyState,
        /// The `pub` string as the minion sent it.
        pem: String,
    },
    /// Move `<from>/<id>` to `<to>/<id>`.
    Move {
        /// Source state.
        from: KeyState,
        /// Destination state.
        to: KeyState,
    },
    /// Delete `<state dir>/<id>`.
    Remove(KeyState),
}

/// What to do with an `_auth` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The outcome.
    pub act: AuthAct,
    /// The `pki_dir` changes to make before replying.
    pub key_ops: Vec<KeyOp>,
    /// Whether Salt fires `salt/auth` for this outcome (not for an invalid
    /// id or an unusable key).
    pub fire_event: bool,
    /// The master's serialization ([`AuthPolicy::serial`]):
    /// [`build_auth_reply`](super::build_auth_reply) names it when refusing
    /// a mismatch and, unless it is msgpack, in an accepted reply.
    pub serial: Serialization,
}

impl Decision {
    fn new(act: AuthAct, key_ops: Vec<KeyOp>) -> Decision {
        Decision {
            act,
            key_ops,
            fire_event: true,
            serial: Serialization::Msgpack,
        }
    }

    fn silent_reject() -> Decision {
        Decision {
            fire_event: false,
            ..Decision::new(AuthAct::Reject, Vec::new())
        }
    }

    /// The event's `result`: true for accept and pend.
    pub fn result(&self) -> bool {
        matches!(self.act, AuthAct::Accept | AuthAct::Pend)
    }

    /// The `ret` of a non-accept reply: `true` (pending), `"full"`,
    /// `"bad serial"` ([`BAD_SERIAL`]), or `false`.
    pub fn ret(&self) -> Value {
        match self.act {
            AuthAct::Pend => Value::from(true),
            AuthAct::Full => Value::from("full"),
            AuthAct::SerialMismatch => Value::from(BAD_SERIAL),
            AuthAct::Accept | AuthAct::Reject | AuthAct::Denied => Value::from(false),
        }
    }

    /// The `salt/auth` event data `{result, act, id, pub}`, if one is fired.
    /// (Salt leaves `act` out when a key is already rejected; Brine always
    /// sets it.)
    pub fn event_data(&self, id: &str, pub_pem: &str) -> Option<Value> {
        self.fire_event.then(|| {
            [
                ("result", Value::from(self.result())),
                ("act", Value::from(self.act.name())),
                ("id", Value::from(id)),
                ("pub", Value::from(pub_pem)),
            ]
            .into_iter()
            .collect()
        })
    }

    /// Carries out [`Decision::key_ops`] for `id` in `pki` (atomic writes).
    ///
    /// # Errors
    /// [`KeyError`] from reading, writing or removing a key file.
    pub fn apply(&self, pki: &MasterPki, id: &str) -> Result<(), KeyError> {
        for op in &self.key_ops {
            match op {
                KeyOp::Write { state, pem } => pki.write_minion_key(*state, id, pem)?,
                KeyOp::Move { from, to } => {
                    if let Some(pem) = pki.read_minion_key(*from, id)? {
                        pki.write_minion_key(*to, id, &pem)?;
                        pki.remove_minion_key(*from, id)?;
                    }
                }
                KeyOp::Remove(state) => {
                    pki.remove_minion_key(*state, id)?;
                }
            }
        }
        Ok(())
    }
}

fn same_key(a: &str, b: &str) -> bool {
    clean_key(a) == clean_key(b)
}

fn write(state: KeyState, pem: &str) -> KeyOp {
    KeyOp::Write {
        state,
        pem: pem.to_owned(),
    }
}

/// The `ret` of a refusal for a `serial` mismatch (Brine only). A stock
/// Salt minion reads it as "pending" and retries; a Brine minion stops
/// with [`AuthError::SerialMismatch`](super::AuthError::SerialMismatch).
pub const BAD_SERIAL: &str = "bad serial";

/// Whether the minion's announced `serial` (none: msgpack) is the master's.
fn same_serial(master: Serialization, announced: Option<&str>) -> bool {
    match announced {
        None => master == Serialization::Msgpack,
        Some(name) => name.parse::<Serialization>().ok() == Some(master),
    }
}

/// Decides an `_auth` request as Salt's master does, first match winning:
///
/// 1. an invalid id, or (Brine) a `pub` that is not an RSA public key →
///    reject, no file touched, no event; next, (Brine) a minion `serial`
///    that is not the master's → [`AuthAct::SerialMismatch`], no file
///    touched, event fired;
/// 2. `max_minions` reached and the id not connected → full (Brine counts
///    "reached" as `connected >= max_minions`; Salt admits one more);
/// 3. `open_mode` → accept, (re)writing `minions/<id>` if it differs;
/// 4. key in `minions_rejected/` → reject;
/// 5. accepted key: different → write it to `minions_denied/`, denied;
///    same → accept;
/// 6. no key yet: `autoreject` → write to `minions_rejected/`, reject;
///    not autosigned (`auto_accept` or `autosign`) → write to
///    `minions_pre/`, pend; autosigned → accept, write `minions/<id>`;
/// 7. pending key: `autoreject` → move to `minions_rejected/`, reject;
///    different key → write to `minions_denied/`, denied; same key and not
///    autosigned → pend; same key and autosigned → accept, moving it from
///    `minions_pre/` to `minions/`.
pub fn decide(policy: &AuthPolicy, candidate: &Candidate<'_>) -> Decision {
    Decision {
        serial: policy.serial,
        ..decide_act(policy, candidate)
    }
}

fn decide_act(policy: &AuthPolicy, candidate: &Candidate<'_>) -> Decision {
    let pem = candidate.pub_pem;
    if validate_minion_id(candidate.id).is_err() || PublicKey::from_pem(pem).is_err() {
        return Decision::silent_reject();
    }
    if !same_serial(policy.serial, candidate.serial) {
        return Decision::new(AuthAct::SerialMismatch, Vec::new());
    }
    if policy.max_minions > 0
        && candidate.connected >= policy.max_minions
        && !candidate.is_connected
    {
        return Decision::new(AuthAct::Full, Vec::new());
    }
    let autosign = policy.auto_accept || candidate.autosign;
    if policy.open_mode {
        let ops = match candidate.on_file {
            KeyOnFile::Accepted(stored) if same_key(stored, pem) => Vec::new(),
            _ => vec![write(KeyState::Accepted, pem)],
        };
        return Decision::new(AuthAct::Accept, ops);
    }
    match candidate.on_file {
        KeyOnFile::Rejected => Decision::new(AuthAct::Reject, Vec::new()),
        KeyOnFile::Accepted(stored) if !same_key(stored, pem) => {
            Decision::new(AuthAct::Denied, vec![write(KeyState::Denied, pem)])
        }
        KeyOnFile::Accepted(_) => Decision::new(AuthAct::Accept, Vec::new()),
        KeyOnFile::None | KeyOnFile::Denied => {
            if candidate.autoreject {
                Decision::new(AuthAct::Reject, vec![write(KeyState::Rejected, pem)])
            } else if autosign {
                Decision::new(AuthAct::Accept, vec![write(KeyState::Accepted, pem)])
            } else {
                Decision::new(AuthAct::Pend, vec![write(KeyState::Pending, pem)])
            }
        }
        KeyOnFile::Pending(_) if candidate.autoreject => Decision::new(
            AuthAct::Reject,
            vec![KeyOp::Move {
                from: KeyState::Pending,
                to: KeyState::Rejected,
            }],
        ),
        KeyOnFile::Pending(stored) if !same_key(stored, pem) => {
            Decision::new(AuthAct::Denied, vec![write(KeyState::Denied, pem)])
        }
        KeyOnFile::Pending(_) if autosign => Decision::new(
            AuthAct::Accept,
            vec![
                write(KeyState::Accepted, pem),
                KeyOp::Remove(KeyState::Pending),
            ],
        ),
        KeyOnFile::Pending(_) => Decision::new(AuthAct::Pend, Vec::new()),
    }
}
