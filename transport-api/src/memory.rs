//! An in-process transport for fast tests of the cores: no sockets, the
//! same semantics.
//!
//! A [`MemoryTransport`] is a little network of its own. Its "addresses" are
//! fake [`SocketAddr`]s: the IP is whatever the caller binds, the port comes
//! from a counter inside the value (port 0) or is the one asked for, and the
//! table of listeners lives in the transport value, shared by its clones, so
//! two `MemoryTransport::new()` values never see each other and tests stay
//! independent. Only the port identifies a listener (one host).
//!
//! What it keeps of the contract:
//! - bounded queues: a subscriber's server-side queue holds
//!   [`Limits::queue_depth`](crate::Limits) frames and one that is full is
//!   dropped with a logged reason; the client buffers at most its own depth;
//! - frame limits on send and receive, with
//!   [`TransportError::FrameTooLarge`] reported to a requester whose frame
//!   the server refuses;
//! - reconnects: request clients look the address up on every request and
//!   subscribers poll it with their [`Backoff`](crate::Backoff), so both work
//!   again once a server is bound on the same address;
//! - owned tasks, ended by `close` and by drop; `close` frees the address.
//!
//! The event bus is the built-in one ([`crate::ipc`]).
//!
//! ```
//! # async fn demo() -> Result<(), brine_transport_api::TransportError> {
//! use std::time::Duration;
//! use brine_transport_api::{handler_fn, memory::MemoryTransport, ClientOptions, ServerOptions, Transport};
//! let net = MemoryTransport::new();
//! let server = net
//!     .bind_requests(ServerOptions::new("127.0.0.1:0".parse().unwrap()), handler_fn(|f, _| async move { f }))
//!     .await?;
//! let client = net.connect_requests(ClientOptions::new(server.local_addr(), "m1")).await?;
//! assert_eq!(&client.request("hi".into(), Duration::from_secs(1)).await?[..], b"hi");
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```

use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::{
    sync::{mpsc, oneshot},
    task::{JoinHandle, JoinSet},
};
use tracing::{debug, warn};

use crate::{
    Audience, Capabilities, ClientOptions, Limits, Peer, PublishClient, PublishServer, Received,
    RequestClient, RequestHandler, RequestServer, ServerOptions, Transport, TransportError,
};

/// The registry name of [`MemoryTransport`].
pub const NAME: &str = "memory";

/// The first port handed out for port 0.
const FIRST_PORT: u16 = 10_000;

/// The in-process transport; see the [module docs](self).
///
/// Clones share one network: a server bound through one clone is reached
/// through any other.
#[derive(Debug, Clone, Default)]
pub struct MemoryTransport {
    net: Arc<Network>,
}

impl MemoryTransport {
    /// A new, empty network.
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Default)]
struct Network {
    next_port: AtomicU16,
    next_id: AtomicU64,
    listeners: Mutex<HashMap<u16, Listener>>,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listening = self.table().len();
        f.debug_struct("Network")
            .field("listening", &listening)
            .finish()
    }
}

#[derive(Clone)]
enum Listener {
    Requests {
        id: u64,
        calls: mpsc::Sender<Call>,
        limits: Limits,
    },
    Publisher {
        id: u64,
        hub: Arc<Hub>,
    },
}

impl Listener {
    fn id(&self) -> u64 {
        match self {
            Self::Requests { id, .. } | Self::Publisher { id, .. } => *id,
        }
    }
}

impl Network {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u16, Listener>> {
        // The table holds plain data; a panic elsewhere cannot leave it torn.
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a listener built by `make` at `at` (port 0: a free port).
    fn bind(
        &self,
        at: SocketAddr,
        make: impl FnOnce(u64) -> Listener,
    ) -> Result<SocketAddr, TransportError> {
        let mut table = self.table();
        let port = if at.port() == 0 {
            self.free_port(&table).ok_or_else(|| TransportError::Bind {
                addr: at.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AddrNotAvailable,
                    "no free memory port",
                ),
            })?
        } else if table.contains_key(&at.port()) {
            return Err(TransportError::Bind {
                addr: at.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "memory port in use"),
            });
        } else {
            at.port()
        };
        table.insert(port, make(self.next_id()));
        Ok(SocketAddr::new(at.ip(), port))
    }

    fn free_port(&self, table: &HashMap<u16, Listener>) -> Option<u16> {
        for _ in 0..=u16::MAX {
            let raw = self.next_port.fetch_add(1, Ordering::Relaxed);
            let port = FIRST_PORT.wrapping_add(raw);
            if port != 0 && !table.contains_key(&port) {
                return Some(port);
            }
        }
        None
    }

    /// Removes the listener at `port` if it is still the one with `id`.
    fn unbind(&self, port: u16, id: u64) {
        let mut table = self.table();
        if table.get(&port).is_some_and(|l| l.id() == id) {
            table.remove(&port);
        }
    }

    fn lookup(&self, addr: SocketAddr) -> Option<Listener> {
        self.table().get(&addr.port()).cloned()
    }

    /// A fake address for a client end (so handlers see a peer).
    fn client_addr(&self) -> SocketAddr {
        let port = FIRST_PORT.wrapping_add(self.next_port.fetch_add(1, Ordering::Relaxed));
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::plain()
    }

    async fn bind_publisher(
        &self,
        opts: ServerOptions,
    ) -> Result<Box<dyn PublishServer>, TransportError> {
        check_limits(&opts.limits)?;
        let hub = Arc::new(Hub {
            limits: opts.limits,
            subscribers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let mut id = 0;
        let addr = self.net.bind(opts.bind, |assigned| {
            id = assigned;
            Listener::Publisher {
                id: assigned,
                hub: hub.clone(),
            }
        })?;
        debug!(%addr, "memory publisher bound");
        Ok(Box::new(MemoryPublishServer {
            net: self.net.clone(),
            addr,
            id,
            hub,
        }))
    }

    async fn subscribe(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn PublishClient>, TransportError> {
        check_limits(&opts.limits)?;
        let (out, rx) = mpsc::channel(opts.limits.queue_depth);
        let task = tokio::spawn(follow(self.net.clone(), opts, out));
        Ok(Box::new(MemoryPublishClient {
            rx: tokio::sync::Mutex::new(rx),
            task: Mutex::new(Some(task)),
            closed: AtomicBool::new(false),
        }))
    }

    async fn bind_requests(
        &self,
        opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn RequestServer>, TransportError> {
        check_limits(&opts.limits)?;
        let (calls, rx) = mpsc::channel(opts.limits.max_in_flight);
        let limits = opts.limits;
        let mut id = 0;
        let addr = self.net.bind(opts.bind, |assigned| {
            id = assigned;
            Listener::Requests {
                id: assigned,
                calls,
                limits,
            }
        })?;
        let task = tokio::spawn(serve(rx, handler, limits));
        debug!(%addr, "memory request server bound");
        Ok(Box::new(MemoryRequestServer {
            net: self.net.clone(),
            addr,
            id,
            task: Mutex::new(Some(task)),
        }))
    }

    async fn connect_requests(
        &self,
        opts: ClientOptions,
    ) -> Result<Box<dyn RequestClient>, TransportError> {
        check_limits(&opts.limits)?;
        Ok(Box::new(MemoryRequestClient {
            net: self.net.clone(),
            peer: Peer {
                addr: Some(self.net.client_addr()),
            },
            opts,
            closed: AtomicBool::new(false),
        }))
    }
}

fn check_limits(limits: &Limits) -> Result<(), TransportError> {
    let invalid = |option: &str| TransportError::InvalidOption {
        option: option.to_owned(),
        reason: "must be at least 1".to_owned(),
    };
    if limits.queue_depth == 0 {
        return Err(invalid("queue_depth"));
    }
    if limits.max_in_flight == 0 {
        return Err(invalid("max_in_flight"));
    }
    Ok(())
}

fn too_large(peer: SocketAddr, len: usize, max: usize) -> TransportError {
    TransportError::FrameTooLarge {
        peer: peer.to_string(),
        len: len as u64,
        max,
    }
}

/// Takes a task handle out of its slot, aborts it and waits until it ended.
async fn end_task(slot: &Mutex<Option<JoinHandle<()>>>) {
    let task = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(task) = task {
        task.abort();
        // Cancelled (or already finished): either way it no longer runs.
        let _ = task.await;
    }
}

fn abort_task(slot: &Mutex<Option<JoinHandle<()>>>) {
    if let Some(task) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
        task.abort();
    }
}

// ---------------------------------------------------------------- requests

/// One request on its way to a server.
struct Call {
    frame: Bytes,
    peer: Peer,
    reply: oneshot::Sender<Result<Bytes, TransportError>>,
}

/// Runs at most `max_in_flight` handlers at once; ends (aborting them) when
/// the server's task is aborted.
async fn serve(mut calls: mpsc::Receiver<Call>, handler: Arc<dyn RequestHandler>, limits: Limits) {
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            call = calls.recv(), if running.len() < limits.max_in_flight => {
                let Some(call) = call else { break };
                let handler = handler.clone();
                running.spawn(async move {
                    let reply = handler.handle(call.frame, call.peer.clone()).await;
                    let reply = if reply.len() > limits.max_frame_size {
                        warn!(peer = %call.peer, len = reply.len(), max = limits.max_frame_size,
                            "reply over the frame limit; refused");
                        Err(TransportError::FrameTooLarge {
                            peer: "memory request server".to_owned(),
                            len: reply.len() as u64,
                            max: limits.max_frame_size,
                        })
                    } else {
                        Ok(reply)
                    };
                    // The requester may have given up; its loss.
                    let _ = call.reply.send(reply);
                });
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}

#[derive(Debug)]
struct MemoryRequestServer {
    net: Arc<Network>,
    addr: SocketAddr,
    id: u64,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[async_trait]
impl RequestServer for MemoryRequestServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.net.unbind(self.addr.port(), self.id);
        end_task(&self.task).await;
        Ok(())
    }
}

impl Drop for MemoryRequestServer {
    fn drop(&mut self) {
        self.net.unbind(self.addr.port(), self.id);
        abort_task(&self.task);
    }
}

#[derive(Debug)]
struct MemoryRequestClient {
    net: Arc<Network>,
    peer: Peer,
    opts: ClientOptions,
    closed: AtomicBool,
}

impl MemoryRequestClient {
    async fn exchange(&self, frame: Bytes) -> Result<Bytes, TransportError> {
        let server = self.opts.connect;
        let refused = || TransportError::ConnectionRefused {
            peer: server.to_string(),
        };
        let Some(Listener::Requests { calls, limits, .. }) = self.net.lookup(server) else {
            return Err(refused());
        };
        if frame.len() > limits.max_frame_size {
            return Err(too_large(server, frame.len(), limits.max_frame_size));
        }
        let (reply, answer) = oneshot::channel();
        let call = Call {
            frame,
            peer: self.peer.clone(),
            reply,
        };
        calls.send(call).await.map_err(|_| refused())?;
        let reply = answer.await.map_err(|_| TransportError::ConnectionLost {
            peer: server.to_string(),
            source: None,
        })??;
        if reply.len() > self.opts.limits.max_frame_size {
            return Err(too_large(
                server,
                reply.len(),
                self.opts.limits.max_frame_size,
            ));
        }
        Ok(reply)
    }
}

#[async_trait]
impl RequestClient for MemoryRequestClient {
    async fn request(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let max = self.opts.limits.max_frame_size;
        if frame.len() > max {
            return Err(too_large(self.opts.connect, frame.len(), max));
        }
        tokio::time::timeout(timeout, self.exchange(frame))
            .await
            .map_err(|_| TransportError::Timeout {
                peer: self.opts.connect.to_string(),
                after: timeout,
            })?
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

// ----------------------------------------------------------------- publish

/// A publisher's subscribers and their bounded queues.
#[derive(Debug)]
struct Hub {
    limits: Limits,
    subscribers: Mutex<Vec<Slot>>,
    closed: AtomicBool,
}

#[derive(Debug)]
struct Slot {
    identity: String,
    queue: mpsc::Sender<Bytes>,
}

impl Hub {
    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A new subscriber's queue, or `None` once the server is closed.
    fn attach(&self, identity: &str) -> Option<mpsc::Receiver<Bytes>> {
        let mut slots = self.slots();
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let (queue, rx) = mpsc::channel(self.limits.queue_depth);
        slots.push(Slot {
            identity: identity.to_owned(),
            queue,
        });
        Some(rx)
    }
}

#[derive(Debug)]
struct MemoryPublishServer {
    net: Arc<Network>,
    addr: SocketAddr,
    id: u64,
    hub: Arc<Hub>,
}

impl MemoryPublishServer {
    fn shut(&self) {
        self.net.unbind(self.addr.port(), self.id);
        let mut slots = self.hub.slots();
        self.hub.closed.store(true, Ordering::Release);
        // Dropping the queues tells every subscriber it was disconnected.
        slots.clear();
    }
}

#[async_trait]
impl PublishServer for MemoryPublishServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn publish(&self, frame: Bytes, audience: &Audience) -> Result<(), TransportError> {
        if self.hub.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let max = self.hub.limits.max_frame_size;
        if frame.len() > max {
            return Err(too_large(self.addr, frame.len(), max));
        }
        let depth = self.hub.limits.queue_depth;
        self.hub.slots().retain(|slot| {
            if !audience.includes(&slot.identity) {
                return true;
            }
            match slot.queue.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(identity = %slot.identity, queue_depth = depth,
                        "subscriber fell behind its queue; dropped so it delays nobody");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        Ok(())
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.shut();
        Ok(())
    }
}

impl Drop for MemoryPublishServer {
    fn drop(&mut self) {
        self.shut();
    }
}

/// A subscriber's background task: attach, forward, reattach with backoff.
async fn follow(net: Arc<Network>, opts: ClientOptions, out: mpsc::Sender<Received>) {
    let mut attempt = 0;
    loop {
        let queue = match net.lookup(opts.connect) {
            Some(Listener::Publisher { hub, .. }) => hub.attach(&opts.identity),
            _ => None,
        };
        let Some(mut queue) = queue else {
            tokio::time::sleep(opts.backoff.delay(attempt)).await;
            attempt = attempt.saturating_add(1);
            continue;
        };
        attempt = 0;
        if out.send(Received::Connected).await.is_err() {
            return;
        }
        let reason = loop {
            let Some(frame) = queue.recv().await else {
                break "server closed the subscription".to_owned();
            };
            if frame.len() > opts.limits.max_frame_size {
                warn!(
                    len = frame.len(),
                    max = opts.limits.max_frame_size,
                    "published frame over the frame limit; reconnecting"
                );
                break format!(
                    "frame of {} bytes over the {}-byte limit",
                    frame.len(),
                    opts.limits.max_frame_size
                );
            }
            if out.send(Received::Frame(frame)).await.is_err() {
                return;
            }
        };
        drop(queue);
        if out.send(Received::Disconnected { reason }).await.is_err() {
            return;
        }
        tokio::time::sleep(opts.backoff.delay(0)).await;
    }
}

#[derive(Debug)]
struct MemoryPublishClient {
    rx: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    task: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
}

#[async_trait]
impl PublishClient for MemoryPublishClient {
    async fn recv(&self) -> Result<Received, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        // The receiver is the only thing behind this lock; `recv` on it is
        // cancel safe, so a cancelled call loses nothing.
        self.rx
            .lock()
            .await
            .recv()
            .await
            .ok_or(TransportError::Closed)
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        end_task(&self.task).await;
        Ok(())
    }
}

impl Drop for MemoryPublishClient {
    fn drop(&mut self) {
        abort_task(&self.task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler_fn;

    fn any_port() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[tokio::test]
    async fn networks_are_separate_and_ports_are_exclusive() {
        let a = MemoryTransport::new();
        let b = MemoryTransport::new();
        let echo = handler_fn(|f, _| async move { f });
        let server = a
            .bind_requests(ServerOptions::new(any_port()), echo.clone())
            .await
            .unwrap();
        let addr = server.local_addr();
        let err = a
            .bind_requests(ServerOptions::new(addr), echo.clone())
            .await
            .unwrap_err();
        assert!(err.is_addr_in_use(), "{err}");
        let stranger = b
            .connect_requests(ClientOptions::new(addr, "m"))
            .await
            .unwrap();
        let err = stranger
            .request(Bytes::new(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, TransportError::ConnectionRefused { .. }),
            "{err}"
        );
        server.close().await.unwrap();
        let again = a
            .bind_requests(ServerOptions::new(addr), echo)
            .await
            .unwrap();
        assert_eq!(again.local_addr(), addr);
    }

    #[tokio::test]
    async fn a_full_queue_drops_only_that_subscriber() {
        let net = MemoryTransport::new();
        let mut opts = ServerOptions::new(any_port());
        opts.limits.queue_depth = 2;
        let server = net.bind_publisher(opts).await.unwrap();
        let mut copts = ClientOptions::new(server.local_addr(), "slow");
        copts.limits.queue_depth = 1;
        let slow = net.subscribe(copts.clone()).await.unwrap();
        copts.identity = "fast".into();
        let fast = net.subscribe(copts).await.unwrap();
        assert_eq!(slow.recv().await.unwrap(), Received::Connected);
        assert_eq!(fast.recv().await.unwrap(), Received::Connected);
        for i in 0..20u8 {
            server
                .publish(Bytes::from(vec![i]), &Audience::All)
                .await
                .unwrap();
            assert_eq!(
                fast.recv().await.unwrap(),
                Received::Frame(Bytes::from(vec![i]))
            );
        }
        let mut seen = 0;
        loop {
            match slow.recv().await.unwrap() {
                Received::Frame(_) => seen += 1,
                Received::Disconnected { .. } => break,
                Received::Connected => panic!("connected twice without a drop"),
            }
        }
        assert!(seen < 20, "slow subscriber got everything: {seen}");
        server.close().await.unwrap();
    }
}
