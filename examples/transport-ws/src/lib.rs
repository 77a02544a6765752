//! An example transport plugin: Brine's channels over WebSocket, in a crate
//! outside the built-in registry.
//!
//! This crate shows what a downstream author writes to add a transport
//! without forking Brine: implement [`Transport`] (here [`WsTransport`],
//! registry name [`NAME`] = `"ws"`), put it in a [`Registry`] next to the
//! built-ins with [`register`], and prove it with the conformance suite —
//! its `tests/conformance.rs` is the single line
//!
//! ```ignore
//! brine_conformance_tests::transport_conformance!(brine_transport_ws_example::TestHarness::default());
//! ```
//!
//! The wire (see `wire.rs`): binary WebSocket messages, one connection per
//! channel end; the request channel multiplexes many requests on one
//! connection by an id prefix; a subscriber opens with a hello carrying its
//! identity, so targeted publishes reach only the minions they name; every
//! subscriber has a bounded queue on the server and is disconnected when it
//! falls behind. The event bus is the built-in one.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use brine_transport_api::Registry;
//! let mut registry = Registry::new();
//! brine_transport_ws_example::register(&mut registry)?;
//! let transport = registry.get("ws")?;
//! assert_eq!(transport.name(), "ws");
//! # Ok(()) }
//! ```

mod error;
mod harness;
mod publish;
mod request;
mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use brine_transport_api::{
    Capabilities, ClientOptions, DuplicateTransport, PublishClient, PublishServer, Registry,
    RequestClient, RequestHandler, RequestServer, ServerOptions, Transport, TransportError,
};

pub use harness::TestHarness;

/// The registry name of this transport.
pub const NAME: &str = "ws";

/// Brine's channels over WebSocket (plain `ws://`, no TLS).
#[derive(Debug, Clone, Copy, Default)]
pub struct WsTransport;

/// Adds [`WsTransport`] to `registry` under [`NAME`].
///
/// # Errors
/// [`DuplicateTransport`] if a transport called `ws` is already there.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateTransport> {
    registry.register(Arc::new(WsTransport))
}

#[async_trait]
impl Transport for WsTransport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        // An oversized request breaks the WebSocket connection before its
        // id is read, so the client sees `ConnectionLost`, not `FrameTooLarge`.
        Capabilities::plain().with_reports_oversized_requests(false)
    }

    async fn bind_publisher(
        &self,
        opts: ServerOptions,
    ) -> Result<Box<dyn PublishServer>, TransportError> {
        Ok(Box::new(publish::WsPublishServer::bind(opts).await?))
    }

    async fn subscribe(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn PublishClient>, TransportError> {
        Ok(Box::new(publish::WsPublishClient::start(opts)))
    }

    async fn bind_requests(
        &self,
        opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn RequestServer>, TransportError> {
        Ok(Box::new(
            request::WsRequestServer::bind(opts, handler).await?,
        ))
    }

    async fn connect_requests(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn RequestClient>, TransportError> {
        Ok(Box::new(request::WsRequestClient::start(opts)))
    }
}
