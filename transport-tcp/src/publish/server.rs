//! The publish server: accepts subscribers, keeps one bounded queue and one
//! writer per subscriber, and drops a subscriber whose queue fills up.

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
use crate::net::{self, AcceptLoop, Acceptor, BoxedIo, HANDSHAKE_TIMEOUT};

/// The TCP [`PublishServer`].
#[derive(Debug)]
pub(crate) struct Server {
    local_addr: SocketAddr,
    subscribers: Arc<Subscribers>,
    max_frame: usize,
    closed: AtomicBool,
    accept: AcceptLoop,
}

/// Binds the publish server described by `opts`.
///
/// # Errors
/// [`TransportError::Bind`] if the address cannot be bound; invalid
/// settings or TLS material.
pub(crate) async fn bind(opts: ServerOptions) -> Result<Server, TransportError> {
    let acceptor = Acceptor::new(&opts).await?;
    let listener = net::bind(opts.bind).await?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| TransportError::Bind {
            addr: opts.bind.to_string(),
            source,
        })?;
    let subscribers = Arc::new(Subscribers::default());
    let limits = opts.limits;
    let registry = Arc::clone(&subscribers);
    let accept = AcceptLoop::start("publish", listener, acceptor, move |io, addr| {
        serve_subscriber(io, addr, Arc::clone(&registry), limits)
    });
    info!(addr = %local_addr, tls = opts.tls.is_some(), "publish server listening");
    Ok(Server {
        local_addr,
        subscribers,
        max_frame: limits.max_frame_size,
        closed: AtomicBool::new(false),
        accept,
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
        if frame.len() > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                peer: "publish".to_owned(),
                len: frame.len() as u64,
                max: self.max_frame,
            });
        }
        self.subscribers.offer(&frame, audience);
        Ok(())
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        self.accept.stop().await;
        self.subscribers.clear();
        info!(addr = %self.local_addr, "publish server closed");
        Ok(())
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

/// Removes the subscriber when its connection task ends, however it ends.
struct Registered<'a> {
    subscribers: &'a Subscribers,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.subscribers.remove(self.id);
    }
}

async fn serve_subscriber(
    io: BoxedIo,
    addr: SocketAddr,
    subscribers: Arc<Subscribers>,
    limits: Limits,
) {
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
    let (queue, queued) = mpsc::channel(limits.queue_depth.max(1));
    let (kick, kicked) = oneshot::channel();
    let id = subscribers.insert(Subscriber {
        identity: identity.clone(),
        addr,
        queue,
        _kick: kick,
    });
    let _registered = Registered {
        subscribers: &subscribers,
        id,
    };
    let mut writer = BufWriter::new(writer);
    if let Err(err) = welcome(&mut writer, &peer).await {
        debug!(minion = %identity, error = %err, "subscriber left before its welcome");
        return;
    }
    debug!(minion = %identity, "subscriber joined");
    tokio::select! {
        _ = kicked => {}
        why = hangup(&mut reader) => {
            debug!(minion = %identity, reason = why, "subscriber left");
        }
        ended = forward(&mut writer, queued, limits.max_frame_size, &peer) => {
            if let Err(err) = ended {
                debug!(minion = %identity, error = %err, "subscriber connection lost");
            }
        }
    }
}

async fn welcome<W: AsyncWrite + Unpin>(writer: &mut W, peer: &str) -> Result<(), TransportError> {
    let io = |err| TransportError::from_io(peer, err);
    writer
        .write_all(&[0, 0, 0, 1, KIND_WELCOME])
        .await
        .map_err(io)?;
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
    mut queued: mpsc::Receiver<Bytes>,
    max_frame: usize,
    peer: &str,
) -> Result<(), TransportError> {
    let io = |err| TransportError::from_io(peer, err);
    while let Some(frame) = queued.recv().await {
        let header = encode_header(frame.len() + 1, max_frame.saturating_add(1), peer)?;
        writer.write_all(&header).await.map_err(io)?;
        writer.write_all(&[KIND_FRAME]).await.map_err(io)?;
        writer.write_all(&frame).await.map_err(io)?;
        if queued.is_empty() {
            writer.flush().await.map_err(io)?;
        }
    }
    Ok(())
}
