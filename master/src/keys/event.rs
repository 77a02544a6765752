//! `salt/key` events, shaped as Salt fires them.

use std::fmt;

use brine_protocol::Value;

/// The tag of key events (Salt's `tagify(prefix="key")`).
pub const KEY_EVENT_TAG: &str = "salt/key";

/// What happened to a key (Salt's `act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAct {
    /// `accept`: moved to `minions/` (by `brine-key` or auto-accept).
    Accept,
    /// `reject`: moved to `minions_rejected/`.
    Reject,
    /// `delete`: removed.
    Delete,
    /// `pend`: a new key is waiting in `minions_pre/` (fired by auth).
    Pend,
    /// `denied`: a key differing from the accepted one (fired by auth).
    Denied,
    /// `full`: `max_minions` reached (fired by auth).
    Full,
}

impl KeyAct {
    /// Salt's string for it.
    pub fn name(self) -> &'static str {
        match self {
            KeyAct::Accept => "accept",
            KeyAct::Reject => "reject",
            KeyAct::Delete => "delete",
            KeyAct::Pend => "pend",
            KeyAct::Denied => "denied",
            KeyAct::Full => "full",
        }
    }
}

impl fmt::Display for KeyAct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `salt/key` event for the caller to fire on the event bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    /// Salt's `result`.
    pub result: bool,
    /// Salt's `act`.
    pub act: KeyAct,
    /// The minion id.
    pub id: String,
    /// The public key, which auth events carry as `pub`.
    pub pub_key: Option<String>,
}

impl KeyEvent {
    /// A successful `act` on `id`, without the key.
    pub fn new(act: KeyAct, id: impl Into<String>) -> Self {
        KeyEvent {
            result: true,
            act,
            id: id.into(),
            pub_key: None,
        }
    }

    /// The tag to fire it under: [`KEY_EVENT_TAG`].
    pub fn tag(&self) -> &'static str {
        KEY_EVENT_TAG
    }

    /// The event data: `{"result": true, "act": "accept", "id": "m1"}`
    /// (plus `"pub"` when the key is known), in Salt's key order.
    pub fn data(&self) -> Value {
        let mut data: Value = [
            ("result", Value::Bool(self.result)),
            ("act", Value::from(self.act.name())),
            ("id", Value::from(self.id.as_str())),
        ]
        .into_iter()
        .collect();
        if let Some(key) = &self.pub_key {
            data.insert("pub", key.as_str());
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_shaped_as_salt_fires_it() {
        let event = KeyEvent::new(KeyAct::Delete, "m1");
        assert_eq!(event.tag(), "salt/key");
        assert_eq!(
            event.data(),
            [
                ("result", Value::Bool(true)),
                ("act", Value::from("delete")),
                ("id", Value::from("m1")),
            ]
            .into_iter()
            .collect()
        );
        let mut pend = KeyEvent::new(KeyAct::Pend, "m2");
        pend.pub_key = Some("PEM".into());
        assert_eq!(pend.data().get("pub").and_then(Value::as_str), Some("PEM"));
    }
}
