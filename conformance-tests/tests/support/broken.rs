//! Deliberately broken transports: each wraps [`MemoryTransport`] and
//! breaks one promise, so the self-tests can show the suite notices.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use brine_conformance_tests::Harness;
use brine_transport_api::{
    Audience, Capabilities, ClientOptions, DEFAULT_MAX_FRAME_SIZE, PublishClient, PublishServer,
    RequestClient, RequestHandler, RequestServer, ServerOptions, Transport, TransportError,
    memory::MemoryTransport,
};
use bytes::Bytes;

/// The promise a [`Broken`] transport breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// Every 10th published frame over 32 bytes is silently lost.
    DropsPublishes,
    /// Every 10th reply a client gets is the one meant for its previous request.
    StaleReplies,
    /// Request servers ignore their `max_frame_size` and take anything.
    IgnoresFrameLimit,
    /// Every request client leaves a task running forever.
    LeaksTasks,
}

/// [`MemoryTransport`] with one [`Flaw`].
#[derive(Debug)]
pub struct Broken {
    inner: MemoryTransport,
    flaw: Flaw,
}

#[async_trait]
impl Transport for Broken {
    fn name(&self) -> &'static str {
        "broken-memory"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn bind_publisher(
        &self,
        opts: ServerOptions,
    ) -> Result<Box<dyn PublishServer>, TransportError> {
        let inner = self.inner.bind_publisher(opts).await?;
        if self.flaw != Flaw::DropsPublishes {
            return Ok(inner);
        }
        Ok(Box::new(LossyPublisher {
            inner,
            count: AtomicU64::new(0),
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
        mut opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn RequestServer>, TransportError> {
        if self.flaw == Flaw::IgnoresFrameLimit {
            opts.limits.max_frame_size = DEFAULT_MAX_FRAME_SIZE;
        }
        self.inner.bind_requests(opts, handler).await
    }

    async fn connect_requests(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn RequestClient>, TransportError> {
        let inner = self.inner.connect_requests(opts).await?;
        match self.flaw {
            Flaw::StaleReplies => Ok(Box::new(StaleClient {
                inner,
                count: AtomicU64::new(0),
                last: Mutex::new(None),
            })),
            Flaw::LeaksTasks => {
                tokio::spawn(std::future::pending::<()>());
                Ok(inner)
            }
            _ => Ok(inner),
        }
    }
}

#[derive(Debug)]
struct LossyPublisher {
    inner: Box<dyn PublishServer>,
    count: AtomicU64,
}

#[async_trait]
impl PublishServer for LossyPublisher {
    fn local_addr(&self) -> std::net::SocketAddr {
        self.inner.local_addr()
    }

    async fn publish(&self, frame: Bytes, audience: &Audience) -> Result<(), TransportError> {
        if frame.len() > 32 && self.count.fetch_add(1, Ordering::Relaxed) % 10 == 9 {
            return Ok(());
        }
        self.inner.publish(frame, audience).await
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}

#[derive(Debug)]
struct StaleClient {
    inner: Box<dyn RequestClient>,
    count: AtomicU64,
    last: Mutex<Option<Bytes>>,
}

#[async_trait]
impl RequestClient for StaleClient {
    async fn request(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        let reply = self.inner.request(frame, timeout).await?;
        let stale = self.count.fetch_add(1, Ordering::Relaxed) % 10 == 9;
        let previous = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(reply.clone());
        Ok(match previous {
            Some(previous) if stale => previous,
            _ => reply,
        })
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}

/// The suite over a [`Broken`] transport.
#[derive(Debug)]
pub struct BrokenHarness {
    transport: Arc<dyn Transport>,
}

impl BrokenHarness {
    /// A harness whose transport has `flaw`.
    pub fn new(flaw: Flaw) -> Self {
        Self {
            transport: Arc::new(Broken {
                inner: MemoryTransport::new(),
                flaw,
            }),
        }
    }
}

impl Harness for BrokenHarness {
    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    fn binds_os_sockets(&self) -> bool {
        false
    }
}
