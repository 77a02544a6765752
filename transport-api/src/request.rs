//! The request channel: clients send a frame and await exactly one reply.

use std::{fmt, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;

use crate::TransportError;

/// Who sent a request, as far as the transport knows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peer {
    /// The remote socket address, when the backend exposes it.
    pub addr: Option<SocketAddr>,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("unknown peer"),
        }
    }
}

/// Turns a request frame into its reply frame; supplied by the master core.
///
/// The handler always returns a reply (errors are encoded by the protocol
/// layer): a request server never leaves a client waiting, unlike a wedged
/// Salt MWorker.
#[async_trait]
pub trait RequestHandler: Send + Sync + 'static {
    /// Handles one request.
    async fn handle(&self, request: Bytes, peer: Peer) -> Bytes;
}

struct FnHandler<F>(F);

#[async_trait]
impl<F, Fut> RequestHandler for FnHandler<F>
where
    F: Fn(Bytes, Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Bytes> + Send + 'static,
{
    async fn handle(&self, request: Bytes, peer: Peer) -> Bytes {
        (self.0)(request, peer).await
    }
}

/// A [`RequestHandler`] from an async closure.
///
/// ```
/// use brine_transport_api::handler_fn;
/// let echo = handler_fn(|frame, _peer| async move { frame });
/// # let _ = echo;
/// ```
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn RequestHandler>
where
    F: Fn(Bytes, Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Bytes> + Send + 'static,
{
    Arc::new(FnHandler(f))
}

/// The master's end of the request channel (Salt's port 4506).
///
/// # Note for implementers
/// - Serve many requests concurrently (up to
///   [`Limits::max_in_flight`](crate::Limits)), each through the handler
///   given at bind time; every request gets exactly one reply.
/// - A frame over `max_frame_size` is refused before it is allocated; the
///   client sees [`TransportError::FrameTooLarge`] where the framing lets the
///   server say so, and the server goes on serving everyone else.
/// - Garbage, truncated frames and abrupt disconnects end that connection
///   only, with a logged reason; they never panic or wedge the server.
/// - `close` stops accepting, ends every connection task and releases the port.
#[async_trait]
pub trait RequestServer: Send + Sync + fmt::Debug {
    /// The address actually bound.
    fn local_addr(&self) -> SocketAddr;

    /// Stops the server; see the implementer notes.
    async fn close(&self) -> Result<(), TransportError>;
}

/// A client's end of the request channel (Salt's `ReqChannel`).
///
/// # Note for implementers
/// - Many requests may be in flight at once from one client (`&self`).
/// - Reconnect by itself when the server comes back; a request made while
///   the server is down fails with a typed error within its timeout.
/// - A reply that arrives after its request timed out is discarded, never
///   handed to another request.
#[async_trait]
pub trait RequestClient: Send + Sync + fmt::Debug {
    /// Sends `frame` and waits up to `timeout` for its reply.
    ///
    /// # Errors
    /// [`TransportError::Timeout`] when no reply came in time;
    /// [`TransportError::FrameTooLarge`] when `frame` or the reply is over
    /// the limit; [`TransportError::Closed`] after `close`; connection
    /// errors when the server cannot be reached.
    ///
    /// # Cancel safety
    /// Cancelling drops the request; its reply, if any, is discarded.
    async fn request(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError>;

    /// Disconnects and ends the client's tasks.
    async fn close(&self) -> Result<(), TransportError>;
}

/// Helpers over any [`RequestClient`].
#[async_trait]
pub trait RequestClientExt: RequestClient {
    /// Salt's `SREQ` `tries`: sends up to `tries` times (at least once),
    /// retrying only errors for which [`TransportError::is_retryable`] holds.
    ///
    /// # Errors
    /// The last error when every try failed.
    async fn request_with_tries(
        &self,
        frame: Bytes,
        timeout: Duration,
        tries: u32,
    ) -> Result<Bytes, TransportError> {
        let mut attempt = 1;
        loop {
            match self.request(frame.clone(), timeout).await {
                Err(err) if err.is_retryable() && attempt < tries => {
                    tracing::debug!(attempt, error = %err, "request failed, retrying");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

impl<T: RequestClient + ?Sized> RequestClientExt for T {}
