//! A transport that only forwards to a `Box<dyn Transport>`: proves the
//! suite (and the traits) work through dynamic dispatch and wrapping.

use std::sync::Arc;

use async_trait::async_trait;
use brine_conformance_tests::Harness;
use brine_transport_api::{
    Capabilities, ClientOptions, EventBus, EventBusOptions, EventClient, PublishClient,
    PublishServer, RequestClient, RequestHandler, RequestServer, ServerOptions, Transport,
    TransportError, memory::MemoryTransport,
};

/// Forwards every method to the boxed transport.
#[derive(Debug)]
pub struct Boxed(pub Box<dyn Transport>);

#[async_trait]
impl Transport for Boxed {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    async fn bind_publisher(
        &self,
        opts: ServerOptions,
    ) -> Result<Box<dyn PublishServer>, TransportError> {
        self.0.bind_publisher(opts).await
    }

    async fn subscribe(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn PublishClient>, TransportError> {
        self.0.subscribe(opts).await
    }

    async fn bind_requests(
        &self,
        opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn RequestServer>, TransportError> {
        self.0.bind_requests(opts, handler).await
    }

    async fn connect_requests(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn RequestClient>, TransportError> {
        self.0.connect_requests(opts).await
    }

    async fn bind_event_bus(
        &self,
        opts: EventBusOptions,
    ) -> Result<Box<dyn EventBus>, TransportError> {
        self.0.bind_event_bus(opts).await
    }

    async fn connect_event_bus(
        &self,
        opts: EventBusOptions,
    ) -> Result<Box<dyn EventClient>, TransportError> {
        self.0.connect_event_bus(opts).await
    }
}

/// The suite over `Arc<Boxed>` around [`MemoryTransport`].
#[derive(Debug)]
pub struct WrappedHarness {
    transport: Arc<dyn Transport>,
}

impl Default for WrappedHarness {
    fn default() -> Self {
        Self {
            transport: Arc::new(Boxed(Box::new(MemoryTransport::new()))),
        }
    }
}

impl Harness for WrappedHarness {
    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    fn binds_os_sockets(&self) -> bool {
        false
    }
}
