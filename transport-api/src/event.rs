//! The event bus: tagged events fired by any component and read by any
//! number of local subscribers, filtered by tag prefix.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::TransportError;

/// One event: a tag such as `salt/job/<jid>/ret/<id>` and opaque data (the
/// protocol layer puts msgpack there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The tag subscribers filter on by prefix.
    pub tag: String,
    /// The payload, opaque to the transport.
    pub data: Bytes,
}

impl Event {
    /// An event with `tag` and `data`.
    pub fn new(tag: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self {
            tag: tag.into(),
            data: data.into(),
        }
    }
}

/// The daemon's side of the event bus: in-process fire and subscribe, plus
/// an IPC endpoint under `sock_dir` for local tools (CLI, netapi).
///
/// # Note for implementers
/// - `fire` never blocks and never waits for subscribers: every subscriber
///   (in-process or IPC) has a queue bounded by the configured depth, and
///   one that falls behind is dropped with a logged reason
///   ([`TransportError::Lagged`] on its next read).
/// - Events fired by IPC clients are delivered to every subscriber, as if
///   fired in process.
/// - `close` removes the socket file and ends every task the bus started.
#[async_trait]
pub trait EventBus: Send + Sync + fmt::Debug {
    /// Delivers `event` to every subscriber whose prefix matches its tag.
    ///
    /// # Errors
    /// [`TransportError::Closed`] after `close`.
    fn fire(&self, event: Event) -> Result<(), TransportError>;

    /// A new in-process subscription to tags starting with `prefix`
    /// (`""` for every event). Sees only events fired after this call.
    fn subscribe(&self, prefix: &str) -> Box<dyn EventSubscription>;

    /// Stops the IPC endpoint and ends subscriptions.
    async fn close(&self) -> Result<(), TransportError>;
}

/// A stream of events matching one tag prefix.
#[async_trait]
pub trait EventSubscription: Send + fmt::Debug {
    /// The next matching event.
    ///
    /// # Errors
    /// [`TransportError::Lagged`] once, when this subscriber fell behind and
    /// was dropped; [`TransportError::Closed`] when the bus is gone.
    ///
    /// # Cancel safety
    /// Cancel safe.
    async fn next(&mut self) -> Result<Event, TransportError>;
}

/// A local tool's side of the event bus, over IPC.
#[async_trait]
pub trait EventClient: Send + Sync + fmt::Debug {
    /// Fires `event` on the daemon's bus.
    ///
    /// # Errors
    /// Connection errors when the daemon is not running.
    async fn fire(&self, event: Event) -> Result<(), TransportError>;

    /// Subscribes to tags starting with `prefix`. The subscription is live
    /// when this returns: events fired afterwards are seen.
    ///
    /// # Errors
    /// Connection errors when the daemon is not running.
    async fn subscribe(&self, prefix: &str) -> Result<Box<dyn EventSubscription>, TransportError>;
}
