//! The listening side: one quinn endpoint per bound address, shared by the
//! publish server and the request server when both bind the same address
//! (so each minion needs one connection for both channels).
//!
//! The endpoint's accept loop owns one task per connection, which owns one
//! task per stream; the first byte of a stream picks the service (see
//! [`wire`]). When the last service detaches, the endpoint
//! closes every connection, its tasks end and its UDP port is released.

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use brine_transport_api::{ServerOptions, TlsOptions, TransportError};
use quinn::{Connection, RecvStream, SendStream};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::{
    config::Config,
    error::{self, Error, Opaque},
    publish::Hub,
    request::{self, Service},
    tls::ServerIdentity,
    wire::{self, code},
};

/// How long a new stream may take to say what it is.
const STREAM_KIND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `close` waits for connections to finish closing before it
/// moves them off the port.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(300);
/// How long `close` waits for the UDP port to be free again.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The endpoints this transport value has bound, by local address.
pub(crate) type Endpoints = Arc<Mutex<HashMap<SocketAddr, Weak<ServerEndpoint>>>>;

/// The services bound at one address.
#[derive(Debug, Default)]
pub(crate) struct Services {
    publisher: Option<Arc<Hub>>,
    requests: Option<Arc<Service>>,
}

/// A service asking to be attached to an endpoint.
pub(crate) enum Attach {
    Publisher(Arc<Hub>),
    Requests(Arc<Service>),
}

impl Attach {
    fn name(&self) -> &'static str {
        match self {
            Self::Publisher(_) => "publish server",
            Self::Requests(_) => "request server",
        }
    }
}

/// Which service detaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Publisher,
    Requests,
}

/// A bound quinn endpoint and the services on it.
#[derive(Debug)]
pub(crate) struct ServerEndpoint {
    addr: SocketAddr,
    endpoint: Mutex<Option<quinn::Endpoint>>,
    services: Arc<Mutex<Services>>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
    tls: Option<TlsOptions>,
    registry: Weak<Mutex<HashMap<SocketAddr, Weak<ServerEndpoint>>>>,
}

impl ServerEndpoint {
    /// The address actually bound.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections currently open on the endpoint.
    #[cfg(test)]
    pub(crate) fn open_connections(&self) -> usize {
        lock(&self.endpoint)
            .as_ref()
            .map_or(0, quinn::Endpoint::open_connections)
    }

    /// Removes `role`; when nothing is left, closes the endpoint at once
    /// (without waiting) and returns `true`.
    pub(crate) fn detach(&self, role: Role) -> bool {
        let empty = {
            let mut services = lock(&self.services);
            match role {
                Role::Publisher => services.publisher = None,
                Role::Requests => services.requests = None,
            }
            services.publisher.is_none() && services.requests.is_none()
        };
        if empty {
            self.stop(false);
        }
        empty
    }

    /// Closes the endpoint and ends the accept loop, without waiting.
    ///
    /// From `Drop` (`in_drop`), the registry is only `try_lock`ed: the last
    /// handle may be dropped on a thread that holds it. An entry left behind
    /// then is harmless: its `Weak` no longer upgrades and is pruned on the
    /// next bind.
    fn stop(&self, in_drop: bool) {
        if let Some(registry) = self.registry.upgrade() {
            let map = if in_drop {
                registry.try_lock().ok()
            } else {
                Some(lock(&registry))
            };
            if let Some(mut map) = map
                && map
                    .get(&self.addr)
                    .is_some_and(|w| std::ptr::eq(w.as_ptr(), self))
            {
                map.remove(&self.addr);
            }
        }
        if let Some(endpoint) = lock(&self.endpoint).as_ref() {
            endpoint.close(code::CLOSING, b"server closing");
        }
        if let Some(accept) = lock(&self.accept).as_ref() {
            accept.abort();
        }
    }

    /// After [`detach`](Self::detach) returned `true`: waits (bounded) until
    /// every task has ended, connections have closed and the UDP port can
    /// be bound again.
    pub(crate) async fn released(&self) {
        let accept = lock(&self.accept).take();
        if let Some(accept) = accept {
            accept.abort();
            let _ = accept.await;
        }
        let endpoint = lock(&self.endpoint).take();
        if let Some(endpoint) = endpoint {
            endpoint.close(code::CLOSING, b"server closing");
            if tokio::time::timeout(DRAIN_TIMEOUT, endpoint.wait_idle())
                .await
                .is_err()
            {
                // The close frames are out; what is left is QUIC's draining
                // period (three probe timeouts per connection, long when
                // round trips were slow). Move those connections to a
                // throwaway socket so the port is free now.
                tracing::debug!(addr = %self.addr, "connections still draining; releasing the port");
                // quinn keeps the previous socket of a rebind until traffic
                // arrives on the new one, so rebind twice to let go of ours.
                let spare = SocketAddr::new(self.addr.ip(), 0);
                let moved = std::net::UdpSocket::bind(spare)
                    .and_then(|s| endpoint.rebind(s))
                    .and_then(|()| std::net::UdpSocket::bind(spare))
                    .and_then(|s| endpoint.rebind(s));
                if let Err(err) = moved {
                    tracing::debug!(error = %err, "cannot move draining connections");
                }
            }
        }
        // quinn's driver lets go of the socket once the last handle is gone;
        // poll (bounded) until the port can be bound again.
        let deadline = tokio::time::Instant::now() + RELEASE_TIMEOUT;
        loop {
            if std::net::UdpSocket::bind(self.addr).is_ok() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(addr = %self.addr, "udp port still busy after close");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for ServerEndpoint {
    fn drop(&mut self) {
        self.stop(true);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Streams one client may have open at once: its subscription and a
/// re-subscription while the old one winds down, its request stream (which
/// carries all its requests) and a replacement while a broken one winds
/// down, and a spare. quinn sets up state for every stream a peer may open
/// (~180 bytes each, and in time a recycled receive buffer of ~450): the 32
/// a connection had when each request took a stream of its own came to
/// ~20 KB a connection, 0.2 GB for 10,000 minions.
const STREAMS_PER_CONNECTION: usize = 5;

/// Binds `opts.bind`, or joins the endpoint this transport already has
/// there, and attaches `service` to it.
///
/// # Errors
/// [`TransportError::Bind`] when the address is taken (also by the same
/// service bound twice); [`TransportError::InvalidOption`] for TLS
/// problems, or TLS options that differ from those of the service already
/// bound at that address.
pub(crate) async fn attach(
    endpoints: &Endpoints,
    pki_lock: &tokio::sync::Mutex<()>,
    opts: &ServerOptions,
    config: Config,
    service: Attach,
) -> Result<Arc<ServerEndpoint>, TransportError> {
    if let Some(shared) = join_existing(endpoints, opts, &service)? {
        return Ok(shared);
    }
    let identity = {
        // One generation at a time, so two servers starting together with
        // the same pki_dir end up with the same certificate.
        let _generating = pki_lock.lock().await;
        let tls = opts.tls.clone();
        tokio::task::spawn_blocking(move || ServerIdentity::load(tls.as_ref()))
            .await
            .map_err(|e| error::backend(Error::Task(Opaque::new(e))))??
    };
    let mut map = lock(endpoints);
    // Another bind may have won the race for this address meanwhile.
    if let Some(shared) = join_locked(&map, opts, &service)? {
        return Ok(shared);
    }
    let mut services = Services::default();
    match service {
        Attach::Publisher(hub) => services.publisher = Some(hub),
        Attach::Requests(svc) => services.requests = Some(svc),
    }
    let server_config = identity.server_config(&config, STREAMS_PER_CONNECTION)?;
    let endpoint = crate::udp::endpoint(opts.bind, Some(server_config)).map_err(|source| {
        TransportError::Bind {
            addr: opts.bind.to_string(),
            source,
        }
    })?;
    let addr = endpoint
        .local_addr()
        .map_err(|source| TransportError::Bind {
            addr: opts.bind.to_string(),
            source,
        })?;
    let services = Arc::new(Mutex::new(services));
    let accept = tokio::spawn(
        accept_loop(endpoint.clone(), services.clone())
            .instrument(tracing::debug_span!("quic_server", %addr)),
    );
    let shared = Arc::new(ServerEndpoint {
        addr,
        endpoint: Mutex::new(Some(endpoint)),
        services,
        accept: Mutex::new(Some(accept)),
        tls: opts.tls.clone(),
        registry: Arc::downgrade(endpoints),
    });
    map.retain(|_, weak| weak.strong_count() > 0);
    map.insert(addr, Arc::downgrade(&shared));
    tracing::info!(%addr, "quic endpoint listening");
    Ok(shared)
}

fn join_existing(
    endpoints: &Endpoints,
    opts: &ServerOptions,
    service: &Attach,
) -> Result<Option<Arc<ServerEndpoint>>, TransportError> {
    let map = lock(endpoints);
    join_locked(&map, opts, service)
}

fn join_locked(
    map: &HashMap<SocketAddr, Weak<ServerEndpoint>>,
    opts: &ServerOptions,
    service: &Attach,
) -> Result<Option<Arc<ServerEndpoint>>, TransportError> {
    if opts.bind.port() == 0 {
        return Ok(None);
    }
    let Some(shared) = map.get(&opts.bind).and_then(Weak::upgrade) else {
        return Ok(None);
    };
    if shared.tls != opts.tls {
        return Err(error::invalid_option(
            "tls",
            format!(
                "differs from the tls options of the server already bound at {}",
                opts.bind
            ),
        ));
    }
    let mut services = lock(&shared.services);
    if services.publisher.is_none() && services.requests.is_none() {
        // Closing: its port is about to be free, not to be shared.
        return Ok(None);
    }
    let taken = match service {
        Attach::Publisher(_) => services.publisher.is_some(),
        Attach::Requests(_) => services.requests.is_some(),
    };
    if taken {
        return Err(TransportError::Bind {
            addr: opts.bind.to_string(),
            source: io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a {} is already bound there", service.name()),
            ),
        });
    }
    match service {
        Attach::Publisher(hub) => services.publisher = Some(hub.clone()),
        Attach::Requests(svc) => services.requests = Some(svc.clone()),
    }
    drop(services);
    tracing::info!(addr = %opts.bind, service = service.name(), "sharing the quic endpoint");
    Ok(Some(shared))
}

async fn accept_loop(endpoint: quinn::Endpoint, services: Arc<Mutex<Services>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let peer = incoming.remote_address();
                connections.spawn(
                    serve_connection(incoming, services.clone())
                        .instrument(tracing::debug_span!("connection", %peer)),
                );
            }
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(err) = done
                    && err.is_panic()
                {
                    tracing::error!(error = %err, "connection task panicked");
                }
            }
        }
    }
    tracing::debug!("accept loop ended");
}

async fn serve_connection(incoming: quinn::Incoming, services: Arc<Mutex<Services>>) {
    let peer = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(err) => {
            tracing::debug!(%peer, error = %err, "handshake failed");
            return;
        }
    };
    tracing::debug!(%peer, "connection established");
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    // Boxed: a stream's task lives long and its future is
                    // large; the spawned cell stays small (see the request
                    // handler's task in `request::service`).
                    let serve = Box::pin(serve_stream(conn.clone(), services.clone(), send, recv));
                    streams.spawn(serve);
                }
                Err(err) => {
                    tracing::debug!(%peer, reason = %err, "connection closed");
                    break;
                }
            },
            Some(done) = streams.join_next(), if !streams.is_empty() => {
                if let Err(err) = done
                    && err.is_panic()
                {
                    tracing::error!(%peer, error = %err, "stream task panicked");
                }
            }
        }
    }
}

async fn serve_stream(
    conn: Connection,
    services: Arc<Mutex<Services>>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let peer = conn.remote_address();
    let peer_text = peer.to_string();
    let kind = match tokio::time::timeout(
        STREAM_KIND_TIMEOUT,
        wire::read_array::<1>(&mut recv, &peer_text),
    )
    .await
    {
        Ok(Ok(Some([kind]))) => kind,
        Ok(Ok(None)) => return,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "stream failed before its kind");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "stream sent nothing in time; dropping it");
            let _ = send.reset(code::PROTOCOL);
            let _ = recv.stop(code::PROTOCOL);
            return;
        }
    };
    // Each service's future is boxed: only one of them is ever live.
    match kind {
        wire::KIND_REQUESTS => {
            let service = lock(&services).requests.clone();
            match service {
                Some(service) => Box::pin(service.serve(peer, send, recv)).await,
                None => request::service::refuse(peer, send, recv).await,
            }
        }
        wire::KIND_SUBSCRIBE => {
            let hub = lock(&services).publisher.clone();
            match hub {
                Some(hub) => Box::pin(hub.serve(peer, send, recv)).await,
                None => {
                    let _ = send.reset(code::NO_SERVICE);
                    let _ = recv.stop(code::NO_SERVICE);
                }
            }
        }
        other => {
            tracing::warn!(%peer, kind = other, "unknown stream kind; closing the connection");
            conn.close(code::PROTOCOL, b"unknown stream kind");
        }
    }
}
