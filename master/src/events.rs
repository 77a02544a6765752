//! Firing events on the master's bus, as Salt's `SaltEvent.fire_event`:
//! the data (a map) gets `_stamp` and travels as msgpack with bytes packed
//! as `bin` in [`Event::data`]; the tag travels beside it.

use std::sync::Arc;
use std::time::SystemTime;

use brine_protocol::Value;
use brine_protocol::tags::stamp_event;
use brine_transport_api::{Event, EventBus};
use tracing::warn;

/// The master's side of the event bus: stamps, packs and fires.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    bus: Arc<dyn EventBus>,
}

impl Events {
    pub(crate) fn new(bus: Arc<dyn EventBus>) -> Self {
        Events { bus }
    }

    /// Fires `data` under `tag`; a failure is logged, never fatal.
    pub(crate) fn fire(&self, tag: &str, mut data: Value) {
        if !matches!(data, Value::Map(_)) {
            data = [("data", data)].into_iter().collect();
        }
        if stamp_event(&mut data, SystemTime::now()).is_err() {
            return;
        }
        let bytes = match data.to_event_bytes() {
            Ok(bytes) => bytes,
            Err(err) => {
                warn!(tag, error = %err, "could not pack event; not fired");
                return;
            }
        };
        if let Err(err) = self.bus.fire(Event::new(tag, bytes)) {
            warn!(tag, error = %err, "could not fire event");
        }
    }
}

/// Decodes the data of an event fired by [`Events::fire`].
///
/// # Errors
/// [`brine_protocol::SerialError`] if the data is not msgpack.
pub fn decode_event_data(event: &Event) -> Result<Value, brine_protocol::SerialError> {
    Value::decode(&event.data)
}
