//! The `Transport` factory trait: one value per backend, building every
//! channel end.

use std::{fmt, sync::Arc};

use async_trait::async_trait;

use crate::{
    ClientOptions, EventBus, EventBusOptions, EventClient, PublishClient, PublishServer,
    RequestClient, RequestHandler, RequestServer, ServerOptions, TransportError,
    ipc::{IpcEventBus, IpcEventClient},
};

/// What a backend can do, so the core and the conformance suite adapt
/// instead of failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`Audience::Minions`](crate::Audience) reaches only the listed minions.
    pub targeted_publish: bool,
    /// Every connection is encrypted and authenticated by TLS.
    pub tls_always: bool,
    /// TLS can be switched on with [`TlsOptions`](crate::TlsOptions).
    pub tls_optional: bool,
    /// A request server refuses an oversized frame with a reply the client
    /// turns into [`TransportError::FrameTooLarge`] (rather than only
    /// closing the connection).
    pub reports_oversized_requests: bool,
}

impl Capabilities {
    /// Everything on except TLS.
    pub const fn plain() -> Self {
        Self {
            targeted_publish: true,
            tls_always: false,
            tls_optional: false,
            reports_oversized_requests: true,
        }
    }

    /// With `targeted_publish` set to `on`.
    pub const fn with_targeted_publish(mut self, on: bool) -> Self {
        self.targeted_publish = on;
        self
    }

    /// With `tls_always` set to `on`.
    pub const fn with_tls_always(mut self, on: bool) -> Self {
        self.tls_always = on;
        self
    }

    /// With `tls_optional` set to `on`.
    pub const fn with_tls_optional(mut self, on: bool) -> Self {
        self.tls_optional = on;
        self
    }

    /// With `reports_oversized_requests` set to `on`.
    pub const fn with_reports_oversized_requests(mut self, on: bool) -> Self {
        self.reports_oversized_requests = on;
        self
    }
}

/// A transport backend: builds the publish channel, the request channel and
/// the event bus. The `transport` config key picks one by [`name`](Self::name)
/// from a [`Registry`](crate::Registry), as Salt's `Channel.factory(opts)` does.
///
/// # Note for implementers
/// - Methods take `&self` and the value is shared as `Arc<dyn Transport>`;
///   keep per-socket state in the returned channel ends.
/// - Bind methods return once the socket listens (port 0 allowed); connect
///   methods return at once and connect in the background, so a daemon can
///   start before its peer.
/// - Channel ends own their tasks: `close` (or drop) ends them.
/// - The event bus methods default to the built-in Unix-socket bus
///   ([`IpcEventBus`]); override them only to bring your own.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// The registry name (`zeromq`, `tcp`, `quic`, …), lowercase.
    fn name(&self) -> &'static str;

    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// Binds the publish server.
    ///
    /// # Errors
    /// [`TransportError::Bind`] when the address cannot be bound; TLS or
    /// option errors naming what is wrong.
    async fn bind_publisher(
        &self,
        opts: ServerOptions,
    ) -> Result<Box<dyn PublishServer>, TransportError>;

    /// Starts a subscriber that connects (and reconnects) to a publish server.
    ///
    /// # Errors
    /// Option or TLS configuration errors; never "server not up".
    async fn subscribe(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn PublishClient>, TransportError>;

    /// Binds the request server, serving every request through `handler`.
    ///
    /// # Errors
    /// As [`bind_publisher`](Self::bind_publisher).
    async fn bind_requests(
        &self,
        opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn RequestServer>, TransportError>;

    /// Starts a request client for a request server.
    ///
    /// # Errors
    /// Option or TLS configuration errors; never "server not up".
    async fn connect_requests(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn RequestClient>, TransportError>;

    /// Binds the daemon's event bus (in process plus IPC under `sock_dir`).
    ///
    /// # Errors
    /// [`TransportError::Bind`] when the socket cannot be bound.
    async fn bind_event_bus(
        &self,
        opts: EventBusOptions,
    ) -> Result<Box<dyn EventBus>, TransportError> {
        Ok(Box::new(IpcEventBus::bind(&opts).await?))
    }

    /// A local tool's client of a daemon's event bus.
    ///
    /// # Errors
    /// None for the built-in bus (it connects lazily).
    async fn connect_event_bus(
        &self,
        opts: EventBusOptions,
    ) -> Result<Box<dyn EventClient>, TransportError> {
        Ok(Box::new(IpcEventClient::new(&opts)))
    }
}

// Fails to compile if a trait stops being dyn-compatible.
#[allow(clippy::type_complexity)]
fn _dyn_compatible(
    _: (
        &dyn Transport,
        &dyn PublishServer,
        &dyn PublishClient,
        &dyn RequestServer,
    ),
    _: (
        &dyn RequestClient,
        &dyn RequestHandler,
        &dyn EventBus,
        &dyn EventClient,
    ),
) {
}
