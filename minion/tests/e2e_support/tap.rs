//! A transport that is a built-in one with a tap on its publisher: the
//! test sees every frame the master publishes and can publish its own
//! (forged, replayed) frames on the same real sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use brine_transport_api::{
    Audience, Capabilities, ClientOptions, EventBus, EventBusOptions, EventClient, PublishClient,
    PublishServer, RequestClient, RequestHandler, RequestServer, ServerOptions, Transport,
    TransportError,
};
use bytes::Bytes;

#[derive(Debug)]
pub struct Tap {
    inner: Arc<dyn Transport>,
    publisher: OnceLock<Arc<dyn PublishServer>>,
    frames: Arc<Mutex<Vec<Bytes>>>,
}

impl Tap {
    pub fn new(inner: Arc<dyn Transport>) -> Arc<Tap> {
        Arc::new(Tap {
            inner,
            publisher: OnceLock::new(),
            frames: Arc::default(),
        })
    }

    /// Every frame the master published so far.
    pub fn frames(&self) -> Vec<Bytes> {
        self.frames.lock().unwrap().clone()
    }

    /// Publishes `frame` to every subscriber, as if the master had.
    pub async fn inject(&self, frame: Bytes) {
        let publisher = self
            .publisher
            .get()
            .expect("the master bound its publisher");
        publisher.publish(frame, &Audience::All).await.unwrap();
    }
}

#[derive(Debug)]
struct TapPublisher {
    inner: Arc<dyn PublishServer>,
    frames: Arc<Mutex<Vec<Bytes>>>,
}

#[async_trait]
impl PublishServer for TapPublisher {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    async fn publish(&self, frame: Bytes, audience: &Audience) -> Result<(), TransportError> {
        self.frames.lock().unwrap().push(frame.clone());
        self.inner.publish(frame, audience).await
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}

#[async_trait]
impl Transport for Tap {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn bind_publisher(
        &self,
        opts: ServerOptions,
    ) -> Result<Box<dyn PublishServer>, TransportError> {
        let inner: Arc<dyn PublishServer> = Arc::from(self.inner.bind_publisher(opts).await?);
        let _ = self.publisher.set(Arc::clone(&inner));
        Ok(Box::new(TapPublisher {
            inner,
            frames: Arc::clone(&self.frames),
        }))
    }

    async fn subscribe(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn PublishClient>, TransportError> {
        self.inner.subscribe(opts).await
    }

    async fn bind_requests(
        &self,
        opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn RequestServer>, TransportError> {
        self.inner.bind_requests(opts, handler).await
    }

    async fn connect_requests(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn RequestClient>, TransportError> {
        self.inner.connect_requests(opts).await
    }

    async fn bind_event_bus(
        &self,
        opts: EventBusOptions,
    ) -> Result<Box<dyn EventBus>, TransportError> {
        self.inner.bind_event_bus(opts).await
    }

    async fn connect_event_bus(
        &self,
        opts: EventBusOptions,
    ) -> Result<Box<dyn EventClient>, TransportError> {
        self.inner.connect_event_bus(opts).await
    }
}
