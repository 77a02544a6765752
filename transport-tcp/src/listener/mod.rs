//! Listening sockets: one per bound address per transport value, shared by
//! the publish server and the request server when both bind the same
//! address (see `shared.rs` for the wire).
//!
//! A listener with one service serves every connection as that service
//! does, exactly as an unshared server. Once a second service attaches,
//! the listener is *shared* for the rest of its life: it reads each new
//! connection's first frame to tell a subscriber, a shared connection and a
//! plain request connection apart. Detaching a service ends the connections
//! that use it (and every shared connection) and waits for them; detaching
//! the last one stops the accept loop and releases the port.

mod dispatch;
mod serve_shared;

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
};

use brine_transport_api::{ServerOptions, TlsOptions, TransportError};
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::{
    net::{self, AcceptLoop, Acceptor},
    publish::server::Hub,
    request::server::Service as RequestService,
};

type Map = Mutex<HashMap<SocketAddr, Weak<Listener>>>;

/// The listeners a transport value has bound, by local address.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    map: Arc<Map>,
    /// Serialises binds, so two servers bound at once to one address
    /// share instead of racing for the port.
    binding: tokio::sync::Mutex<()>,
}

/// A service asking to be attached to a listener.
pub(crate) enum Service {
    Publisher(Arc<Hub>),
    Requests(Arc<RequestService>),
}

/// Which service detaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Publisher,
    Requests,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Publisher => "publish server",
            Self::Requests => "request server",
        }
    }
}

impl Service {
    fn role(&self) -> Role {
        match self {
            Self::Publisher(_) => Role::Publisher,
            Self::Requests(_) => Role::Requests,
        }
    }
}

/// A bound listening socket and the services on it.
#[derive(Debug)]
pub(crate) struct Listener {
    addr: SocketAddr,
    tls: Option<TlsOptions>,
    services: Arc<Mutex<Services>>,
    accept: AcceptLoop,
    registry: Weak<Map>,
}

/// What a connection task holds while it uses a service: the service, a
/// signal that it detached, and a token whose drop tells the detaching side
/// this connection is gone.
pub(crate) struct Handle<S> {
    pub(crate) service: Arc<S>,
    stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl<S> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Self {
            service: Arc::clone(&self.service),
            stop: self.stop.clone(),
            _alive: self._alive.clone(),
        }
    }
}

impl<S> Handle<S> {
    /// Resolves once the service has detached.
    pub(crate) async fn detached(&self) {
        let mut stop = self.stop.clone();
        // An error means the attachment is gone, which is a detach too.
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
}

/// A service attached to a listener.
struct Attachment<S> {
    handle: Handle<S>,
    stop: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
}

impl<S> Attachment<S> {
    fn new(service: Arc<S>) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        // Nothing is ever sent: `recv` returns `None` once every handle is gone.
        let (alive, done) = mpsc::channel(1);
        Self {
            handle: Handle {
                service,
                stop: stop_rx,
                _alive: alive,
            },
            stop,
            done,
        }
    }

    /// Tells its connections to end, keeping what is needed to wait for them.
    fn signal(self) -> Detaching {
        self.stop.send_replace(true);
        Detaching {
            _stop: self.stop,
            done: self.done,
        }
    }
}

/// A detached service whose connections are ending.
struct Detaching {
    _stop: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
}

impl Detaching {
    async fn wait(mut self) {
        while self.done.recv().await.is_some() {}
    }
}

/// The services on a listener.
struct Services {
    publisher: Option<Attachment<Hub>>,
    requests: Option<Attachment<RequestService>>,
    /// Set once two services have shared the listener: from then on each
    /// connection's first frame says which service it wants.
    shared: bool,
    /// Bumped whenever a service attaches to or detaches from a shared
    /// listener; shared connections end on it.
    reshaped: watch::Sender<u64>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("publisher", &self.publisher.is_some())
            .field("requests", &self.requests.is_some())
            .field("shared", &self.shared)
            .finish()
    }
}

/// What a new connection may use, taken when it is accepted.
pub(crate) struct Snapshot {
    pub(crate) publisher: Option<Handle<Hub>>,
    pub(crate) requests: Option<Handle<RequestService>>,
    pub(crate) shared: bool,
    pub(crate) reshaped: watch::Receiver<u64>,
}

impl Services {
    fn new(service: Service) -> Self {
        let mut services = Self {
            publisher: None,
            requests: None,
            shared: false,
            reshaped: watch::Sender::new(0),
        };
        services.put(service);
        services
    }

    fn put(&mut self, service: Service) {
        match service {
            Service::Publisher(hub) => self.publisher = Some(Attachment::new(hub)),
            Service::Requests(svc) => self.requests = Some(Attachment::new(svc)),
        }
    }

    fn has(&self, role: Role) -> bool {
        match role {
            Role::Publisher => self.publisher.is_some(),
            Role::Requests => self.requests.is_some(),
        }
    }

    fn is_empty(&self) -> bool {
        self.publisher.is_none() && self.requests.is_none()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            publisher: self.publisher.as_ref().map(|a| a.handle.clone()),
            requests: self.requests.as_ref().map(|a| a.handle.clone()),
            shared: self.shared,
            reshaped: self.reshaped.subscribe(),
        }
    }

    fn reshape(&self) {
        self.reshaped.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds `opts.bind`, or joins the listener this transport value already
/// has there, and attaches `service` to it.
///
/// # Errors
/// [`TransportError::Bind`] when the address is taken (also by the same
/// kind of server bound twice); [`TransportError::InvalidOption`] for TLS
/// options that differ from those of the server already bound there;
/// invalid settings or TLS material.
pub(crate) async fn attach(
    listeners: &Listeners,
    opts: &ServerOptions,
    service: Service,
) -> Result<Arc<Listener>, TransportError> {
    let _binding = listeners.binding.lock().await;
    let service = match join(listeners, opts, service)? {
        Ok(listener) => return Ok(listener),
        Err(service) => service,
    };
    let acceptor = Acceptor::new(opts).await?;
    let tcp = net::bind(opts.bind).await?;
    let addr = tcp.local_addr().map_err(|source| TransportError::Bind {
        addr: opts.bind.to_string(),
        source,
    })?;
    let channel = match service.role() {
        Role::Publisher => "publish",
        Role::Requests => "request",
    };
    let services = Arc::new(Mutex::new(Services::new(service)));
    let dispatching = Arc::clone(&services);
    let accept = AcceptLoop::start(channel, tcp, acceptor, move |io, peer| {
        dispatch::serve(io, peer, lock(&dispatching).snapshot())
    });
    let listener = Arc::new(Listener {
        addr,
        tls: opts.tls.clone(),
        services,
        accept,
        registry: Arc::downgrade(&listeners.map),
    });
    let mut map = lock(&listeners.map);
    map.retain(|_, weak| weak.strong_count() > 0);
    map.insert(addr, Arc::downgrade(&listener));
    Ok(listener)
}

/// Attaches `service` to the live listener at `opts.bind`, if there is one;
/// otherwise hands the service back.
fn join(
    listeners: &Listeners,
    opts: &ServerOptions,
    service: Service,
) -> Result<Result<Arc<Listener>, Service>, TransportError> {
    if opts.bind.port() == 0 {
        return Ok(Err(service));
    }
    let Some(listener) = lock(&listeners.map).get(&opts.bind).and_then(Weak::upgrade) else {
        return Ok(Err(service));
    };
    if listener.tls != opts.tls {
        return Err(TransportError::InvalidOption {
            option: "tls".to_owned(),
            reason: format!(
                "differs from the tls options of the server already bound at {}",
                opts.bind
            ),
        });
    }
    let role = service.role();
    let mut services = lock(&listener.services);
    if services.is_empty() {
        // Closing: its port is about to be free, not to be shared.
        return Ok(Err(service));
    }
    if services.has(role) {
        return Err(TransportError::Bind {
            addr: opts.bind.to_string(),
            source: io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a {} is already bound there", role.name()),
            ),
        });
    }
    services.put(service);
    services.shared = true;
    services.reshape();
    drop(services);
    info!(addr = %listener.addr, service = role.name(), "sharing the listener: one connection per minion for both channels");
    Ok(Ok(listener))
}

impl Listener {
    /// The address actually bound.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Takes `role` off the listener: ends the connections that use it (and
    /// every shared connection) and waits for them; when no service is
    /// left, stops accepting and releases the port. Idempotent.
    pub(crate) async fn detach(&self, role: Role) {
        let Some((detaching, empty)) = self.take(role) else {
            return;
        };
        if empty {
            self.accept.stop().await;
        } else {
            info!(addr = %self.addr, service = role.name(), "detached from the shared listener; the other service goes on");
        }
        detaching.wait().await;
    }

    /// As [`detach`](Self::detach), without waiting (for `Drop`).
    pub(crate) fn detach_now(&self, role: Role) {
        if let Some((_, true)) = self.take(role) {
            self.accept.abort();
        }
    }

    fn take(&self, role: Role) -> Option<(Detaching, bool)> {
        let (detaching, empty) = {
            let mut services = lock(&self.services);
            let detaching = match role {
                Role::Publisher => services.publisher.take().map(Attachment::signal),
                Role::Requests => services.requests.take().map(Attachment::signal),
            }?;
            if services.shared {
                services.reshape();
            }
            (detaching, services.is_empty())
        };
        if empty {
            self.unregister();
        }
        Some((detaching, empty))
    }

    /// Forgets this listener in its transport value's map, so a new bind
    /// makes a fresh one.
    fn unregister(&self) {
        let Some(map) = self.registry.upgrade() else {
            return;
        };
        // `try_lock`: this may run in `Drop` on a thread that holds the map;
        // an entry left behind no longer upgrades and is pruned later.
        if let Ok(mut map) = map.try_lock()
            && map
                .get(&self.addr)
                .is_some_and(|weak| std::ptr::eq(weak.as_ptr(), self))
        {
            map.remove(&self.addr);
        }
    }
}
