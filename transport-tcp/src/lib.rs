//! Brine's `tcp` transport: raw TCP on tokio with length-prefixed frames
//! and optional TLS (rustls, ring provider).
//!
//! The master and minion never name this crate: the daemons' registry maps
//! `transport: tcp` to [`TcpTransport`] through [`register`], and the cores
//! use it as an `Arc<dyn Transport>`. Frames are opaque bytes; jobs, keys and
//! msgpack live in `brine-protocol`, above every transport.
//!
//! | channel | frames (after the `u32` BE length) | full layout |
//! | --- | --- | --- |
//! | publish (4505) | subscriber → server `0x01` + minion id (hello); server → subscriber `0x02` (welcome), then `0x03` + payload per publish | `src/publish/mod.rs` |
//! | request (4506) | request `id: u64 BE` + body; reply `id: u64 BE`, `status: u8` (0 ok, 1 too large, 2 no request server), body; many in flight per connection | `src/request/mod.rs` |
//! | both on one address (`publish_port == ret_port`) | client → server `0x04` + minion id (shared hello), then requests as above; server → client `0x02` (welcome, or `0x06`: no publish server now), then `0x03` + payload per publish and `0x05` + reply per reply | `src/shared.rs` |
//! | event bus | the built-in Unix-socket bus of `brine-transport-api` | |
//!
//! **One connection per minion when both channels share an address.** A
//! [`TcpTransport`] value keeps one listener per bound address: a publish
//! server and a request server bound to the same address share it, instead
//! of the second failing with "address in use". A shared listener tells
//! connections apart by their first frame (publish hello, shared hello, or
//! a request), so old-style clients keep working. On the minion side, a
//! publish client and a request client made by the same value with the same
//! options (address, identity, TLS, settings, backoff) share one link and
//! open one *shared* connection, which is only ever sent to an address
//! both clients use, so only to a shared listener. A master with
//! `publish_port == ret_port` thus holds one socket per minion instead of
//! two. Servers on different addresses (Salt's 4505/4506 layout) behave
//! exactly as before: two connections, the wire above. Closing one of two
//! servers on a shared listener keeps the other serving (shared
//! connections are closed so their clients reconnect to what is left); the
//! port is released when both are closed. Clones of a `TcpTransport` share
//! listeners and links; separate values share nothing.
//!
//! Every frame is a `u32` big-endian length and a payload, read with the
//! [`framing`](brine_transport_api::framing) helpers: a length over
//! [`Limits::max_frame_size`](brine_transport_api::Limits) is refused before
//! anything of that size is allocated. An oversized request is skipped and
//! answered with an error the client reports as
//! [`TransportError::FrameTooLarge`](brine_transport_api::TransportError),
//! and the connection goes on. Each subscriber has a queue of
//! `queue_depth` frames; `publish` never waits, and drops a subscriber whose
//! queue is full with a warning naming it (on a shared connection the whole
//! connection goes; the minion reconnects and re-authenticates). Replies
//! have their own queue of `max_in_flight`, so neither kind holds up the
//! other.
//!
//! TLS is on when `ServerOptions::tls` / `ClientOptions::tls` is set (a
//! server joining a shared listener must give the same TLS options): the
//! server needs `cert` and `key` PEM files, the client a `ca` PEM file (a CA
//! or the server's pinned certificate) and checks the name in `server_name`,
//! or [`DEFAULT_SERVER_NAME`] when it is empty.
//!
//! Settings read (all optional): `tcp_keepalive` (bool, default on) and
//! `tcp_keepalive_idle` (seconds, `-1` for the OS default), as in Salt.
//! `TCP_NODELAY` is always on.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use brine_transport_api::{ClientOptions, Registry, ServerOptions, handler_fn};
//!
//! let mut registry = Registry::new();
//! brine_transport_tcp::register(&mut registry)?;
//! let tcp = registry.get("tcp")?;
//! let server = tcp
//!     .bind_requests(
//!         ServerOptions::new("127.0.0.1:0".parse()?),
//!         handler_fn(|frame, _peer| async move { frame }),
//!     )
//!     .await?;
//! let client = tcp
//!     .connect_requests(ClientOptions::new(server.local_addr(), "minion-1"))
//!     .await?;
//! let reply = client
//!     .request("ping".into(), std::time::Duration::from_secs(5))
//!     .await?;
//! assert_eq!(&reply[..], b"ping");
//! # Ok(()) }
//! ```

mod config;
mod error;
mod link;
mod listener;
mod net;
mod publish;
mod request;
mod shared;
mod tls;

use std::sync::Arc;

use async_trait::async_trait;
use brine_transport_api::{
    Capabilities, ClientOptions, DuplicateTransport, PublishClient, PublishServer, Registry,
    RequestClient, RequestHandler, RequestServer, ServerOptions, Transport, TransportError,
};

pub use publish::MAX_IDENTITY;
pub use tls::DEFAULT_SERVER_NAME;

/// The registry name: `transport: tcp`.
pub const NAME: &str = "tcp";

/// The TCP backend. Cheap to clone; clones share their listeners and
/// links, so servers bound to one address share a listener and a minion's
/// two clients for one address share a connection (see the crate docs).
/// Separate values share nothing.
#[derive(Debug, Clone, Default)]
pub struct TcpTransport {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    listeners: listener::Listeners,
    links: link::Links,
}

impl TcpTransport {
    /// A backend with nothing bound or connected yet.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Adds [`TcpTransport`] to `registry` under [`NAME`].
///
/// # Errors
/// [`DuplicateTransport`] if `tcp` is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateTransport> {
    registry.register(Arc::new(TcpTransport::new()))
}

#[async_trait]
impl Transport for TcpTransport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::plain()
            .with_targeted_publish(true)
            .with_tls_optional(true)
            .with_reports_oversized_requests(true)
    }

    async fn bind_publisher(
        &self,
        opts: ServerOptions,
    ) -> Result<Box<dyn PublishServer>, TransportError> {
        Ok(Box::new(
            publish::server::bind(&self.inner.listeners, opts).await?,
        ))
    }

    async fn subscribe(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn PublishClient>, TransportError> {
        Ok(Box::new(
            publish::client::subscribe(&self.inner.links, opts).await?,
        ))
    }

    async fn bind_requests(
        &self,
        opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn RequestServer>, TransportError> {
        Ok(Box::new(
            request::server::bind(&self.inner.listeners, opts, handler).await?,
        ))
    }

    async fn connect_requests(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn RequestClient>, TransportError> {
        Ok(Box::new(
            request::client::connect(&self.inner.links, opts).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_once_under_its_name() {
        let mut registry = Registry::new();
        register(&mut registry).unwrap();
        assert_eq!(registry.get("TCP").unwrap().name(), NAME);
        assert!(register(&mut registry).is_err());
    }

    #[test]
    fn capabilities_as_documented() {
        let caps = TcpTransport::new().capabilities();
        assert!(caps.targeted_publish && caps.tls_optional && caps.reports_oversized_requests);
        assert!(!caps.tls_always);
    }

    fn _assert_send_sync<T: Send + Sync>() {}
    fn _ends_are_send_sync() {
        _assert_send_sync::<publish::server::Server>();
        _assert_send_sync::<publish::client::Client>();
        _assert_send_sync::<request::server::Server>();
        _assert_send_sync::<request::client::Client>();
    }
}
