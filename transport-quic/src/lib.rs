//! Brine's QUIC transport backend, on quinn and rustls (TLS 1.3 always).
//!
//! The master and minion pick it with `transport: quic`; they only see the
//! [`brine_transport_api`] traits, built by [`QuicTransport`], which
//! [`register`] adds to a [`Registry`] under [`NAME`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use brine_transport_api::{Registry, ServerOptions, TlsOptions};
//! let mut registry = Registry::new();
//! brine_transport_quic::register(&mut registry)?;
//! let quic = registry.get("quic")?;
//! let mut opts = ServerOptions::new("0.0.0.0:4505".parse()?);
//! opts.tls = Some(TlsOptions { pki_dir: Some("/etc/brine/pki/master".into()), ..Default::default() });
//! let publisher = quic.bind_publisher(opts).await?;
//! # let _ = publisher; Ok(()) }
//! ```
//!
//! # TLS
//!
//! | end | options | trust |
//! | --- | --- | --- |
//! | server | `cert` + `key` | that certificate chain and key |
//! | server | `pki_dir` only | a self-signed certificate generated at first start as `<pki_dir>/quic.crt` + `quic.key` (key mode 0600, written atomically) and reused afterwards; its names are `brine-master`, `localhost`, `127.0.0.1`, `::1` and `server_name` if set |
//! | client | `ca` | servers whose certificate is in that file (a pin), or chains to a root in it and carries `server_name` (default `brine-master`) |
//! | client | `pki_dir` only | trust on first use: the first server certificate seen is stored as `<pki_dir>/quic_master.crt` and required from then on; another one fails with [`TransportError::Tls`] ("the master's certificate has changed"), as a Salt minion treats a changed master key |
//!
//! No TLS options at all is an [`TransportError::InvalidOption`] naming `tls`.
//! The ALPN protocol is `brine/1`.
//!
//! # Connections and streams
//!
//! - **One connection per minion for both channels.** A [`QuicTransport`]
//!   value keeps one quinn endpoint per bound address, so a publish server and
//!   a request server bound to the same address share it; and one client
//!   connection per (server address, identity, options), so a minion's
//!   `subscribe` and `connect_requests` to that address share one connection.
//!   Servers on different addresses (Salt's 4505/4506 layout) simply mean two
//!   connections. Clones of a `QuicTransport` share this state; separate
//!   values do not.
//! - **Publish:** the minion opens a bidirectional stream and sends its
//!   identity; the server registers it (so [`Audience::Minions`] reaches
//!   only the listed minions), acknowledges, and from then on writes
//!   length-prefixed frames on that one long stream: ordered and reliable
//!   (datagrams would be neither). The client reports
//!   [`Received::Connected`] only after the acknowledgement, so every frame
//!   published afterwards arrives. Each subscriber has a bounded queue
//!   ([`Limits::queue_depth`]) drained by its own writer; `publish` never
//!   waits, and drops a subscriber whose queue is full with a warning. The
//!   client resubscribes (and reconnects) with [`Backoff`] until closed.
//! - **Requests:** one long-lived stream per connection carries all of a
//!   client's requests, many in flight, each matched to its reply by an id
//!   (replies come in any order); the client opens it at its first request
//!   and again after it or the connection breaks, and a request waiting on
//!   a broken stream fails at once with a typed error. An oversized request
//!   is refused from its head, its bytes skipped unread, with a status the
//!   client reports as [`TransportError::FrameTooLarge`], and the stream
//!   goes on. Concurrency is bounded by [`Limits::max_in_flight`] per
//!   server and by a per-stream cap, past which the server stops reading
//!   and QUIC's flow control holds the client back.
//! - **Liveness:** both sides send QUIC keep-alives every 5 s and drop a
//!   connection silent for 15 s (settings `quic_keepalive` and
//!   `quic_idle_timeout`, see [`Config`]); clients then reconnect.
//! - **Close** closes the endpoint (sending CONNECTION_CLOSE to every peer),
//!   ends every task, and returns once the UDP port can be bound again.
//!
//! [`Registry`]: brine_transport_api::Registry
//! [`Audience::Minions`]: brine_transport_api::Audience::Minions
//! [`Received::Connected`]: brine_transport_api::Received::Connected
//! [`Limits::queue_depth`]: brine_transport_api::Limits::queue_depth
//! [`Limits::max_in_flight`]: brine_transport_api::Limits::max_in_flight
//! [`Backoff`]: brine_transport_api::Backoff

mod config;
mod error;
mod link;
pub mod pki;
mod publish;
mod request;
mod server;
mod subscribe;
mod tls;
mod udp;
mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use brine_transport_api::{
    Capabilities, ClientOptions, DuplicateTransport, Limits, PublishClient, PublishServer,
    Registry, RequestClient, RequestHandler, RequestServer, ServerOptions, Transport,
    TransportError,
};

pub use config::{
    Config, DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE, IDLE_TIMEOUT_KEY, KEEPALIVE_KEY,
};
pub use error::{Error, Opaque};
pub use tls::ALPN;

/// The `transport` config value that selects this backend.
pub const NAME: &str = "quic";

/// Adds the QUIC backend to `registry` under [`NAME`].
///
/// # Errors
/// [`DuplicateTransport`] if a transport named `quic` is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateTransport> {
    registry.register(Arc::new(QuicTransport::new()))
}

/// The QUIC backend. Cheap to clone; clones share bound endpoints and
/// client connections (see the crate docs).
#[derive(Debug, Clone, Default)]
pub struct QuicTransport {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    endpoints: server::Endpoints,
    links: link::Links,
    /// Serialises certificate generation under a shared `pki_dir`.
    pki_lock: tokio::sync::Mutex<()>,
}

impl QuicTransport {
    /// A transport with no endpoints or connections yet.
    pub fn new() -> Self {
        Self::default()
    }
}

fn check_limits(limits: &Limits) -> Result<(), TransportError> {
    if limits.queue_depth == 0 {
        return Err(error::invalid_option("queue_depth", "must be at least 1"));
    }
    if limits.max_in_flight == 0 {
        return Err(error::invalid_option("max_in_flight", "must be at least 1"));
    }
    Ok(())
}

#[async_trait]
impl Transport for QuicTransport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::plain()
            .with_targeted_publish(true)
            .with_tls_always(true)
            .with_tls_optional(false)
            .with_reports_oversized_requests(true)
    }

    async fn bind_publisher(
        &self,
        opts: ServerOptions,
    ) -> Result<Box<dyn PublishServer>, TransportError> {
        check_limits(&opts.limits)?;
        let config = Config::from_settings(&opts.settings)?;
        let hub = Arc::new(publish::Hub::new(opts.limits));
        let endpoint = server::attach(
            &self.inner.endpoints,
            &self.inner.pki_lock,
            &opts,
            config,
            server::Attach::Publisher(hub.clone()),
        )
        .await?;
        Ok(Box::new(publish::QuicPublishServer::new(hub, endpoint)))
    }

    async fn subscribe(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn PublishClient>, TransportError> {
        check_limits(&opts.limits)?;
        if opts.identity.len() > wire::MAX_IDENTITY {
            return Err(error::invalid_option(
                "id",
                format!("longer than {} bytes", wire::MAX_IDENTITY),
            ));
        }
        let link = link::Link::obtain(&self.inner.links, &opts).await?;
        Ok(Box::new(subscribe::QuicPublishClient::start(
            link,
            opts.identity.clone(),
            opts.limits,
            opts.backoff,
            opts.connect_timeout,
        )))
    }

    async fn bind_requests(
        &self,
        opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn RequestServer>, TransportError> {
        check_limits(&opts.limits)?;
        let config = Config::from_settings(&opts.settings)?;
        let service = Arc::new(request::Service::new(handler, opts.limits));
        let endpoint = server::attach(
            &self.inner.endpoints,
            &self.inner.pki_lock,
            &opts,
            config,
            server::Attach::Requests(service.clone()),
        )
        .await?;
        Ok(Box::new(request::QuicRequestServer::new(service, endpoint)))
    }

    async fn connect_requests(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn RequestClient>, TransportError> {
        check_limits(&opts.limits)?;
        let link = link::Link::obtain(&self.inner.links, &opts).await?;
        Ok(Box::new(request::QuicRequestClient::new(link, opts.limits)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_once_under_its_name() {
        let mut registry = Registry::new();
        register(&mut registry).unwrap();
        assert_eq!(registry.names().collect::<Vec<_>>(), vec![NAME]);
        assert!(register(&mut registry).is_err());
        let quic = registry.get("QUIC").unwrap();
        assert!(quic.capabilities().tls_always);
        assert!(quic.capabilities().targeted_publish);
    }

    fn assert_send_sync<T: Send + Sync>() {}

    fn loopback() -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], 0))
    }

    /// Proves the sharing from the inside: one server endpoint, one client
    /// link, one QUIC connection for both channels.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_channels_share_one_connection_when_addresses_match() {
        use brine_transport_api::{Audience, Received, TlsOptions, handler_fn};
        use bytes::Bytes;
        use std::time::Duration;

        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("master");
        let cert = pki::ensure_self_signed(&pki_dir, "").unwrap().cert;
        let quic = QuicTransport::new();
        let mut server_opts = ServerOptions::new(loopback());
        server_opts.tls = Some(TlsOptions {
            pki_dir: Some(pki_dir),
            ..TlsOptions::default()
        });
        let publisher = quic.bind_publisher(server_opts.clone()).await.unwrap();
        let addr = publisher.local_addr();
        server_opts.bind = addr;
        let echo = handler_fn(|frame: Bytes, _| async move { frame });
        let requests = quic
            .bind_requests(server_opts.clone(), echo.clone())
            .await
            .unwrap();
        assert_eq!(requests.local_addr(), addr);
        let again = quic
            .bind_requests(server_opts.clone(), echo)
            .await
            .unwrap_err();
        assert!(again.is_addr_in_use(), "{again}");

        let mut client_opts = ClientOptions::new(addr, "minion-1");
        client_opts.tls = Some(TlsOptions {
            ca: Some(cert),
            ..TlsOptions::default()
        });
        let sub = quic.subscribe(client_opts.clone()).await.unwrap();
        let req = quic.connect_requests(client_opts).await.unwrap();
        let step = Duration::from_secs(20);
        assert_eq!(
            tokio::time::timeout(step, sub.recv())
                .await
                .unwrap()
                .unwrap(),
            Received::Connected
        );
        let reply = req.request(Bytes::from_static(b"hi"), step).await.unwrap();
        assert_eq!(&reply[..], b"hi");

        let live_links = quic.inner.links.live();
        assert_eq!(
            live_links, 1,
            "subscribe and connect_requests share one link"
        );
        let endpoint = quic.inner.endpoints.lock().unwrap()[&addr]
            .upgrade()
            .unwrap();
        assert_eq!(
            endpoint.open_connections(),
            1,
            "one connection carries both channels"
        );
        drop(endpoint);

        publisher
            .publish(Bytes::from_static(b"job"), &Audience::All)
            .await
            .unwrap();
        assert_eq!(
            tokio::time::timeout(step, sub.recv())
                .await
                .unwrap()
                .unwrap(),
            Received::Frame(Bytes::from_static(b"job"))
        );

        // The request server keeps serving once the publisher is gone.
        publisher.close().await.unwrap();
        let reply = req
            .request(Bytes::from_static(b"still"), step)
            .await
            .unwrap();
        assert_eq!(&reply[..], b"still");

        sub.close().await.unwrap();
        req.close().await.unwrap();
        requests.close().await.unwrap();
        assert!(quic.inner.endpoints.lock().unwrap().is_empty());
        std::net::UdpSocket::bind(addr).expect("port released after both servers closed");
    }

    /// A client that closes and exits at once (the `brine` command line)
    /// tells the server: the server's connection goes away long before the
    /// idle timeout (60 s here) would have ended it.
    #[test]
    fn a_client_that_closes_and_exits_tells_the_server() {
        use brine_transport_api::{TlsOptions, handler_fn};
        use bytes::Bytes;
        use std::time::{Duration, Instant};

        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("master");
        let server_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let quic = QuicTransport::new();
        let mut server_opts = ServerOptions::new(loopback());
        server_opts.settings.set(IDLE_TIMEOUT_KEY, "60");
        server_opts.tls = Some(TlsOptions {
            pki_dir: Some(pki_dir.clone()),
            ..TlsOptions::default()
        });
        let echo = handler_fn(|frame: Bytes, _| async move { frame });
        let requests = server_rt
            .block_on(quic.bind_requests(server_opts, echo))
            .unwrap();
        let addr = requests.local_addr();
        let cert = pki::ensure_self_signed(&pki_dir, "").unwrap().cert;

        // The client's whole life, in a runtime dropped right after close.
        let client_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        client_rt.block_on(async {
            let client = QuicTransport::new();
            let mut opts = ClientOptions::new(addr, "cli");
            opts.settings.set(IDLE_TIMEOUT_KEY, "60");
            opts.tls = Some(TlsOptions {
                ca: Some(cert),
                ..TlsOptions::default()
            });
            let req = client.connect_requests(opts).await.unwrap();
            let reply = req
                .request(Bytes::from_static(b"hi"), Duration::from_secs(20))
                .await
                .unwrap();
            assert_eq!(&reply[..], b"hi");
            req.close().await.unwrap();
        });
        drop(client_rt);

        let endpoint = quic.inner.endpoints.lock().unwrap()[&addr]
            .upgrade()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        server_rt.block_on(async {
            while endpoint.open_connections() > 0 {
                assert!(
                    Instant::now() < deadline,
                    "the server still holds the closed client's connection"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        drop(endpoint);
        server_rt.block_on(requests.close()).unwrap();
    }

    #[test]
    fn handles_are_send_sync() {
        assert_send_sync::<QuicTransport>();
        assert_send_sync::<publish::QuicPublishServer>();
        assert_send_sync::<subscribe::QuicPublishClient>();
        assert_send_sync::<request::QuicRequestServer>();
        assert_send_sync::<request::QuicRequestClient>();
    }
}
