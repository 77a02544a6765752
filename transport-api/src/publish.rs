//! The publish channel: one server fans frames out to many subscribers.

use std::{fmt, net::SocketAddr};

use async_trait::async_trait;
use bytes::Bytes;

use crate::TransportError;

/// Who a published frame is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every connected subscriber.
    All,
    /// Only the subscribers that identified with one of these minion ids
    /// (Salt's `zmq_filtering` idea), so a targeted job need not reach
    /// everyone. A backend whose [`Capabilities::targeted_publish`] is false
    /// sends to everyone instead; minions re-check the target either way.
    ///
    /// [`Capabilities::targeted_publish`]: crate::Capabilities::targeted_publish
    Minions(Vec<String>),
}

impl Audience {
    /// Whether a subscriber with `identity` should receive the frame.
    pub fn includes(&self, identity: &str) -> bool {
        match self {
            Self::All => true,
            Self::Minions(ids) => ids.iter().any(|id| id == identity),
        }
    }
}

/// The master's end of the publish channel (Salt's port 4505).
///
/// # Note for implementers
/// - `publish` never waits on a slow subscriber: each subscriber has a queue
///   bounded by [`Limits::queue_depth`](crate::Limits); one that is full is
///   disconnected with a logged reason, and the others are unaffected.
/// - Frames to one subscriber arrive in the order they were published.
/// - A subscriber that connects after a publish does not receive it.
/// - `close` stops accepting, disconnects every subscriber, releases the
///   port and ends every task the server started before it returns.
#[async_trait]
pub trait PublishServer: Send + Sync + fmt::Debug {
    /// The address actually bound (useful with port 0).
    fn local_addr(&self) -> SocketAddr;

    /// Queues `frame` for every subscriber in `audience`.
    ///
    /// # Errors
    /// [`TransportError::FrameTooLarge`] if `frame` exceeds the limit;
    /// [`TransportError::Closed`] after `close`.
    async fn publish(&self, frame: Bytes, audience: &Audience) -> Result<(), TransportError>;

    /// Stops the server; see the implementer notes.
    async fn close(&self) -> Result<(), TransportError>;
}

/// What a subscriber receives: frames, and changes of its connection state
/// (so the minion core can re-authenticate after a reconnect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A published frame.
    Frame(Bytes),
    /// The subscription is live (first connect, or a reconnect); frames
    /// published from now on will arrive.
    Connected,
    /// The connection dropped; the client is reconnecting with backoff.
    Disconnected {
        /// Why, in a few words.
        reason: String,
    },
}

/// A minion's end of the publish channel.
///
/// # Note for implementers
/// - Connect in the background and reconnect by itself with
///   [`Backoff`](crate::Backoff), forever, until `close`; report each
///   transition with [`Received::Connected`] / [`Received::Disconnected`].
/// - Announce [`ClientOptions::identity`](crate::ClientOptions) to the server
///   so targeted publishes reach it.
/// - Buffer at most [`Limits::queue_depth`](crate::Limits) frames; enforce
///   `max_frame_size` on receive before allocating.
/// - `recv` is cancel safe: a cancelled `recv` loses nothing.
#[async_trait]
pub trait PublishClient: Send + Sync + fmt::Debug {
    /// The next frame or state change.
    ///
    /// # Errors
    /// [`TransportError::Closed`] after `close`; nothing else (connection
    /// trouble is reported as [`Received::Disconnected`] and retried).
    ///
    /// # Cancel safety
    /// Cancel safe.
    async fn recv(&self) -> Result<Received, TransportError>;

    /// Disconnects and ends the client's tasks; later `recv` calls fail with
    /// [`TransportError::Closed`].
    async fn close(&self) -> Result<(), TransportError>;
}
