//! The publish server: keeps one bounded queue and one writer per
//! subscriber, and drops a subscriber whose queue fills up. Its listener
//! may be shared with a request server (see `shared.rs`); a shared
//! connection registers its subscriber through [`Hub::register`] too.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use brine_transport_api::{
    Audience, Limits, PublishServer, ServerOptions, TransportError,
    framing::{encode_header, read_frame},
};
use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter},
    sync::{mpsc, oneshot},
};
use tracing::{debug, info, warn};

use super::{KIND_FRAME, KIND_WELCOME, MAX_HELLO, decode_hello};
use crate::{
    listener::{self, Listener, Listeners, Role},
    net::{BoxedIo, HANDSHAKE_TIMEOUT},
};

/// The TCP [`PublishServer`].
#[derive(Debug)]
pub(crate) struct Server {
    local_addr: SocketAddr,
    hub: Arc<Hub>,
    closed: AtomicBool,
    listener: Arc<Listener>,
}

/// Binds the publish server described by `opts` (on a listener of its own,
/// or on the request server's when that is bound to the same address by
/// the same transport value).
///
/// # Errors
/// [`TransportError::Bind`] if the address cannot be bound (or a publish
/// server is already bound there); invalid settings or TLS material.
pub(crate) async fn bind(
    listeners: &Listeners,
    opts: ServerOptions,
) -> Result<Server, TransportError> {
    let hub = Arc::new(Hub {
        subscribers: Subscribers::default(),
        limits: opts.limits,
    });
    let listener = listener::attach(
        listeners,
        &opts,
        listener::Service::Publisher(Arc::clone(&hub)),
    )
    .await?;
    let local_addr = listener.local_addr();
    info!(addr = %local_addr, tls = opts.tls.is_some(), "publish server listening");
    Ok(Server {
        local_addr,
        hub,
        closed: AtomicBool::new(false),
        listener,
    })
}

#[async_trait]
impl PublishServer for Server {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn publish(&self, frame: Bytes, audience: &Audience) -> Result<(), TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let max = self.hub.limits.max_frame_size;
        if frame.len() > max {
            return Err(TransportError::FrameTooLarge {
                peer: "publish".to_owned(),
                len: frame.len() as u64,
                max,
            });
        }
        self.hub.subscribers.offer(&frame, audience);
        Ok(())
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        self.listener.detach(Role::Publisher).await;
        self.hub.subscribers.clear();
        info!(addr = %self.local_addr, "publish server closed");
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.listener.detach_now(Role::Publisher);
    }
}

/// The publish service: its subscribers and limits.
#[derive(Debug)]
pub(crate) struct Hub {
    subscribers: Subscribers,
    limits: Limits,
}

/// A subscriber's registration, held by its connection task: the frames
/// queued for it, and a signal that it was dropped. Deregisters on drop.
pub(crate) struct Subscription {
    pub(crate) queue: mpsc::Receiver<Bytes>,
    pub(crate) kicked: oneshot::Receiver<()>,
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.subscribers.remove(self.id);
    }
}

impl Hub {
    /// The server's limits.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Registers a subscriber: every frame published from now on for
    /// `identity` is queued for it.
    pub(crate) fn register(self: &Arc<Self>, identity: String, addr: SocketAddr) -> Subscription {
        let (queue, queued) = mpsc::channel(self.limits.queue_depth.max(1));
        let (kick, kicked) = oneshot::channel();
        let id = self.subscribers.insert(Subscriber {
            identity,
            addr,
            queue,
            _kick: kick,
        });
        Subscription {
            queue: queued,
            kicked,
            hub: Arc::clone(self),
            id,
        }
    }
}

/// A registered subscriber, as `publish` sees it.
#[derive(Debug)]
struct Subscriber {
    identity: String,
    addr: SocketAddr,
    queue: mpsc::Sender<Bytes>,
    /// Dropped with the entry, which ends the subscriber's connection task
    /// at once even while it is stuck writing.
    _kick: oneshot::Sender<()>,
}

/// Every live subscriber, by a registration number.
#[derive(Debug, Default)]
struct Subscribers {
    next_id: AtomicU64,
    by_id: Mutex<HashMap<u64, Subscriber>>,
}

impl Subscribers {
    fn insert(&self, subscriber: Subscriber) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, subscriber);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Subscriber>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `frame` for every subscriber in `audience` without waiting;
    /// a subscriber whose queue is full is dropped.
    fn offer(&self, frame: &Bytes, audience: &Audience) {
        let wanted: Option<HashSet<&str>> = match audience {
            Audience::All => None,
            Audience::Minions(ids) => Some(ids.iter().map(String::as_str).collect()),
        };
        let mut dropped = Vec::new();
        self.lock().retain(|_, sub| {
            if wanted
                .as_ref()
                .is_some_and(|ids| !ids.contains(sub.identity.as_str()))
            {
                return true;
            }
            match sub.queue.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let queued = sub.queue.max_capacity() - sub.queue.capacity();
                    dropped.push((std::mem::take(&mut sub.identity), sub.addr, queued));
                    false
                }
                // Its connection task already ended; it deregisters itself too.
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        for (minion, addr, queued) in dropped {
            warn!(
                minion = %minion,
                peer = %addr,
                queued,
                "subscriber stopped reading; {queued} frames queued; dropped so it delays nobody"
            );
        }
    }
}

/// Serves one publish-only subscriber: hello, welcome, then its frames.
pub(crate) async fn serve_subscriber(io: BoxedIo, addr: SocketAddr, hub: Arc<Hub>) {
    let peer = addr.to_string();
    let (mut reader, writer) = tokio::io::split(io);
    let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut reader, MAX_HELLO, &peer));
    let identity = match hello.await {
        Ok(Ok(Some(frame))) => match decode_hello(&frame) {
            Ok(identity) => identity.to_owned(),
            Err(reason) => {
                warn!(reason, "subscriber sent a bad hello; connection closed");
                return;
            }
        },
        Ok(Ok(None)) => {
            debug!("subscriber left before its hello");
            return;
        }
        Ok(Err(err @ TransportError::ConnectionLost { .. })) => {
            debug!(error = %err, "subscriber left during its hello");
            return;
        }
        Ok(Err(err)) => {
            warn!(error = %err, "subscriber sent a bad hello; connection closed");
            return;
        }
        Err(_) => {
            debug!("no hello within {HANDSHAKE_TIMEOUT:?}; connection closed");
            return;
        }
    };
    let mut subscription = hub.register(identity.clone(), addr);
    let max_frame = hub.limits.max_frame_size;
    let mut writer = BufWriter::new(writer);
    if let Err(err) = write_kind(&mut writer, KIND_WELCOME, &peer).await {
        debug!(minion = %identity, error = %err, "subscriber left before its welcome");
        return;
    }
    debug!(minion = %identity, "subscriber joined");
    tokio::select! {
        _ = &mut subscription.kicked => {}
        why = hangup(&mut reader) => {
            debug!(minion = %identity, reason = why, "subscriber left");
        }
        ended = forward(&mut writer, &mut subscription.queue, max_frame, &peer) => {
            if let Err(err) = ended {
                debug!(minion = %identity, error = %err, "subscriber connection lost");
            }
        }
    }
}

/// Writes a one-byte frame of `kind` (a welcome) and flushes it.
pub(crate) async fn write_kind<W: AsyncWrite + Unpin>(
    writer: &mut W,
    kind: u8,
    peer: &str,
) -> Result<(), TransportError> {
    let io = |err| TransportError::from_io(peer, err);
    writer.write_all(&[0, 0, 0, 1, kind]).await.map_err(io)?;
    writer.flush().await.map_err(io)
}

/// Resolves when the subscriber hangs up (or breaks the protocol by sending
/// after its hello), with the reason.
async fn hangup<R: AsyncRead + Unpin>(reader: &mut R) -> &'static str {
    let mut probe = [0u8; 1];
    match reader.read(&mut probe).await {
        Ok(0) => "closed the connection",
        Ok(_) => "sent data after its hello",
        Err(_) => "connection lost",
    }
}

/// Writes queued frames until the queue closes or a write fails, flushing
/// whenever the queue runs empty.
async fn forward<W: AsyncWrite + Unpin>(
    writer: &mut W,
    queued: &mut mpsc::Receiver<Bytes>,
    max_frame: usize,
    peer: &str,
) -> Result<(), TransportError> {
    while let Some(frame) = queued.recv().await {
        write_published(writer, &frame, max_frame, peer).await?;
        if queued.is_empty() {
            writer
                .flush()
                .await
                .map_err(|err| TransportError::from_io(peer, err))?;
        }
    }
    Ok(())
}

/// Writes one published frame (not flushed).
pub(crate) async fn write_published<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
    max_frame: usize,
    peer: &str,
) -> Result<(), TransportError> {
    let io = |err| TransportError::from_io(peer, err);
    let header = encode_header(frame.len() + 1, max_frame.saturating_add(1), peer)?;
    writer.write_all(&header).await.map_err(io)?;
    writer.write_all(&[KIND_FRAME]).await.map_err(io)?;
    writer.write_all(frame).await.map_err(io)
}
