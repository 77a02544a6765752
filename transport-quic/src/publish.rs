//! The publish channel's server side: one long server→client stream per
//! subscriber (the client side is in [`subscribe`](crate::subscribe)),
//! carrying length-prefixed frames (ordered and reliable, unlike datagrams).
//!
//! The subscriber opens the stream and announces its identity; the server
//! registers it with a bounded queue, acknowledges (only then does the
//! client report `Received::Connected`), and a writer task drains the
//! queue onto the stream. `publish` only ever `try_send`s: a subscriber
//! whose queue is full is dropped with a warning (its stream is reset, and
//! it reconnects), and never slows the others.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use brine_transport_api::{Audience, Limits, PublishServer, TransportError};
use bytes::Bytes;
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, oneshot};

use crate::{
    error,
    server::{Role, ServerEndpoint},
    wire::{self, code},
};

/// How long a new subscriber may take to announce itself.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The server's subscribers and their queues.
#[derive(Debug)]
pub(crate) struct Hub {
    limits: Limits,
    subscribers: Mutex<Subscribers>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct Subscribers {
    by_id: HashMap<u64, Subscriber>,
    by_identity: HashMap<String, Vec<u64>>,
}

#[derive(Debug)]
struct Subscriber {
    identity: String,
    peer: SocketAddr,
    queue: mpsc::Sender<Bytes>,
    /// Resets the subscriber's stream with the code sent (or `CLOSING`
    /// when dropped unsent).
    kill: oneshot::Sender<VarInt>,
}

impl Subscribers {
    fn insert(&mut self, id: u64, sub: Subscriber) {
        self.by_identity
            .entry(sub.identity.clone())
            .or_default()
            .push(id);
        self.by_id.insert(id, sub);
    }

    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let sub = self.by_id.remove(&id)?;
        if let Some(ids) = self.by_identity.get_mut(&sub.identity) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.by_identity.remove(&sub.identity);
            }
        }
        Some(sub)
    }
}

impl Hub {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            subscribers: Mutex::default(),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Queues `frame` for every subscriber in `audience`, dropping those
    /// whose queue is full.
    fn publish(&self, frame: &Bytes, audience: &Audience) -> Result<(), TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let max = self.limits.max_frame_size;
        if frame.len() > max {
            return Err(TransportError::FrameTooLarge {
                peer: "publish".to_owned(),
                len: u64::try_from(frame.len()).unwrap_or(u64::MAX),
                max,
            });
        }
        let mut subs = lock(&self.subscribers);
        let mut full = Vec::new();
        let mut gone = Vec::new();
        let mut offer = |id: u64, sub: &Subscriber| match sub.queue.try_send(frame.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => full.push(id),
            Err(mpsc::error::TrySendError::Closed(_)) => gone.push(id),
        };
        match audience {
            Audience::All => {
                for (id, sub) in &subs.by_id {
                    offer(*id, sub);
                }
            }
            Audience::Minions(ids) => {
                let mut seen = HashSet::new();
                for identity in ids {
                    if !seen.insert(identity.as_str()) {
                        continue;
                    }
                    for id in subs.by_identity.get(identity).into_iter().flatten() {
                        if let Some(sub) = subs.by_id.get(id) {
                            offer(*id, sub);
                        }
                    }
                }
            }
        }
        for id in gone {
            subs.remove(id);
        }
        for id in full {
            if let Some(sub) = subs.remove(id) {
                tracing::warn!(
                    identity = %sub.identity,
                    peer = %sub.peer,
                    queue_depth = self.limits.queue_depth,
                    "subscriber queue full; dropping the slow subscriber"
                );
                let _ = sub.kill.send(code::TOO_SLOW);
            }
        }
        Ok(())
    }

    /// Refuses new subscribers and disconnects the current ones.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let all = std::mem::take(&mut *lock(&self.subscribers));
        for (_, sub) in all.by_id {
            let _ = sub.kill.send(code::CLOSING);
        }
    }

    /// Serves one subscription stream (after its kind byte) until the
    /// subscriber leaves or is dropped.
    pub(crate) async fn serve(&self, peer: SocketAddr, mut send: SendStream, mut recv: RecvStream) {
        let peer_text = peer.to_string();
        let hello = tokio::time::timeout(
            HELLO_TIMEOUT,
            wire::read_frame(&mut recv, wire::MAX_IDENTITY, &peer_text),
        )
        .await;
        let identity = match hello {
            Ok(Ok(Some(raw))) => match String::from_utf8(raw.to_vec()) {
                Ok(identity) => identity,
                Err(_) => return refuse(&peer_text, send, recv, "identity is not utf-8"),
            },
            Ok(Ok(None)) => return,
            Ok(Err(err)) => return refuse(&peer_text, send, recv, &error::chain(&err)),
            Err(_) => return refuse(&peer_text, send, recv, "no hello in time"),
        };
        let (queue, frames) = mpsc::channel(self.limits.queue_depth.max(1));
        let (kill, mut killed) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut subs = lock(&self.subscribers);
            // Checked under the lock, so `close` cannot miss this subscriber.
            if self.closed.load(Ordering::Acquire) {
                let _ = send.reset(code::CLOSING);
                return;
            }
            subs.insert(
                id,
                Subscriber {
                    identity: identity.clone(),
                    peer,
                    queue,
                    kill,
                },
            );
        }
        tracing::debug!(%peer, %identity, "subscriber joined");
        let max = self.limits.max_frame_size;
        let ended = tokio::select! {
            biased;
            code = &mut killed => Some(code.unwrap_or(code::CLOSING)),
            result = drain(&mut send, frames, max, &peer_text) => {
                if let Err(err) = result {
                    tracing::debug!(%peer, %identity, error = %error::chain(&err), "subscriber stream failed");
                }
                None
            }
            () = watch_client(&mut recv) => {
                tracing::debug!(%peer, %identity, "subscriber left");
                None
            }
        };
        lock(&self.subscribers).remove(id);
        let _ = send.reset(ended.unwrap_or(code::CLOSING));
    }
}

/// Refuses a subscription whose hello is unusable.
fn refuse(peer: &str, mut send: SendStream, mut recv: RecvStream, reason: &str) {
    tracing::warn!(%peer, %reason, "subscription refused");
    let _ = send.reset(code::PROTOCOL);
    let _ = recv.stop(code::PROTOCOL);
}

/// Acknowledges the hello, then writes queued frames until the queue closes.
async fn drain(
    send: &mut SendStream,
    mut frames: mpsc::Receiver<Bytes>,
    max: usize,
    peer: &str,
) -> Result<(), TransportError> {
    send.write_all(&[wire::HELLO_ACK])
        .await
        .map_err(|e| error::write(peer, e))?;
    while let Some(frame) = frames.recv().await {
        let header = brine_transport_api::framing::encode_header(frame.len(), max, peer)?;
        let mut chunks = [Bytes::copy_from_slice(&header), frame];
        send.write_all_chunks(&mut chunks)
            .await
            .map_err(|e| error::write(peer, e))?;
    }
    Ok(())
}

/// Resolves when the subscriber ends or resets its side of the stream
/// (it never sends anything after its hello).
async fn watch_client(recv: &mut RecvStream) {
    let mut scratch = [0u8; 64];
    loop {
        match recv.read(&mut scratch).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

/// The master's end of the publish channel.
#[derive(Debug)]
pub(crate) struct QuicPublishServer {
    addr: SocketAddr,
    hub: Arc<Hub>,
    endpoint: Mutex<Option<Arc<ServerEndpoint>>>,
}

impl QuicPublishServer {
    pub(crate) fn new(hub: Arc<Hub>, endpoint: Arc<ServerEndpoint>) -> Self {
        Self {
            addr: endpoint.local_addr(),
            hub,
            endpoint: Mutex::new(Some(endpoint)),
        }
    }
}

#[async_trait]
impl PublishServer for QuicPublishServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn publish(&self, frame: Bytes, audience: &Audience) -> Result<(), TransportError> {
        self.hub.publish(&frame, audience)
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.hub.close();
        let endpoint = lock(&self.endpoint).take();
        if let Some(endpoint) = endpoint
            && endpoint.detach(Role::Publisher)
        {
            endpoint.released().await;
        }
        Ok(())
    }
}

impl Drop for QuicPublishServer {
    fn drop(&mut self) {
        self.hub.close();
        if let Some(endpoint) = lock(&self.endpoint).take() {
            endpoint.detach(Role::Publisher);
        }
    }
}
