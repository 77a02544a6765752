//! The request client: requests ride one request stream on the current
//! connection of its [`Link`], opened by the first request and again after
//! the stream or the connection breaks.
//!
//! One task per stream writes the queued requests (several frames per
//! write) and reads the replies, handing each to the request waiting for
//! its id. A request that stops waiting (timeout, cancellation) leaves the
//! pending map, so its late reply finds nobody and is dropped. When the
//! stream ends, every request still waiting on it fails at once with the
//! reason.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use brine_transport_api::{Limits, RequestClient, TransportError, pending::Pending};
use bytes::Bytes;
use quinn::{Connection, RecvStream, SendStream};
use tokio::{
    sync::{RwLock, Semaphore, mpsc, watch},
    task::JoinHandle,
};

use super::{
    batch::{self, Batch, WRITE_BATCH},
    decode::{Malformed, ReplyDecoder},
};
use crate::{
    error,
    link::{self, Link},
    wire::{self, Answer, REQUEST_HEAD_LEN, code},
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A client's end of the request channel.
#[derive(Debug)]
pub(crate) struct QuicRequestClient {
    peer: String,
    /// Limits requests sent and replies accepted alike.
    max_frame: usize,
    /// Requests hold a read lock for their whole exchange, so `close` (the
    /// writer) knows when the last one has let go of the link.
    link: RwLock<Option<Arc<Link>>>,
    closing: watch::Sender<bool>,
    /// Requests in flight; bounds the pending map and the queue.
    slots: Semaphore,
    in_flight: usize,
    next_id: AtomicU64,
    /// The request stream, once opened.
    stream: Mutex<Option<Arc<RequestStream>>>,
    /// Held while a stream is being opened, so concurrent requests open one.
    opening: tokio::sync::Mutex<()>,
}

impl QuicRequestClient {
    pub(crate) fn new(link: Arc<Link>, limits: Limits) -> Self {
        let in_flight = limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            peer: link.peer().to_owned(),
            max_frame: limits.max_frame_size,
            link: RwLock::new(Some(link)),
            closing: watch::Sender::new(false),
            slots: Semaphore::new(in_flight),
            in_flight,
            next_id: AtomicU64::new(0),
            stream: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    async fn attempt(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        let guard = self.link.read().await;
        let link = guard.as_ref().ok_or(TransportError::Closed)?;
        tokio::time::timeout(timeout, self.exchange(link, frame))
            .await
            .map_err(|_| error::timeout(&self.peer, timeout))?
    }

    async fn exchange(&self, link: &Link, frame: Bytes) -> Result<Bytes, TransportError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| TransportError::Closed)?;
        let stream = self.stream(link).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let head = wire::request_head(id, frame.len(), self.max_frame, &self.peer)?;
        let reply = stream.pending.register(id).ok_or_else(|| self.lost())?;
        let _waiting = stream.pending.waiting(id);
        stream
            .queue
            .send(Outgoing { head, frame })
            .await
            .map_err(|_| self.lost())?;
        reply.await.unwrap_or_else(|_| Err(self.lost()))
    }

    /// The open request stream, or a new one on the link's connection.
    async fn stream(&self, link: &Link) -> Result<Arc<RequestStream>, TransportError> {
        if let Some(stream) = self.usable_stream() {
            return Ok(stream);
        }
        // Outside the opening lock: requests waiting for a connection all
        // get the outcome of the same attempt.
        let conn = link.connection().await?;
        let _opening = self.opening.lock().await;
        if let Some(stream) = self.usable_stream() {
            return Ok(stream);
        }
        let stream =
            Arc::new(RequestStream::open(&conn, &self.peer, self.max_frame, self.in_flight).await?);
        let mut current = lock(&self.stream);
        // `close` may have taken the old stream meanwhile: keep no new one.
        if *self.closing.borrow() {
            return Err(TransportError::Closed);
        }
        *current = Some(stream.clone());
        Ok(stream)
    }

    fn usable_stream(&self) -> Option<Arc<RequestStream>> {
        lock(&self.stream)
            .as_ref()
            .filter(|stream| stream.is_usable())
            .cloned()
    }

    fn lost(&self) -> TransportError {
        error::lost(&self.peer, "the request stream broke")
    }
}

#[async_trait]
impl RequestClient for QuicRequestClient {
    async fn request(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        if frame.len() > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                peer: self.peer.clone(),
                len: wire::len64(frame.len()),
                max: self.max_frame,
            });
        }
        let mut closing = self.closing.subscribe();
        if *closing.borrow_and_update() {
            return Err(TransportError::Closed);
        }
        tokio::select! {
            result = self.attempt(frame, timeout) => result,
            _ = closing.wait_for(|c| *c) => Err(TransportError::Closed),
        }
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closing.send_replace(true);
        self.slots.close();
        let stream = lock(&self.stream).take();
        if let Some(stream) = stream {
            stream.stop().await;
        }
        let link = self.link.write().await.take();
        if let Some(link) = link {
            link::release(link).await;
        }
        Ok(())
    }
}

/// A request on its way to the writer.
struct Outgoing {
    head: [u8; REQUEST_HEAD_LEN],
    frame: Bytes,
}

/// One request stream and the task that drives it (aborted on drop).
#[derive(Debug)]
struct RequestStream {
    queue: mpsc::Sender<Outgoing>,
    pending: Arc<Pending>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("len", &self.frame.len())
            .finish_non_exhaustive()
    }
}

impl RequestStream {
    async fn open(
        conn: &Connection,
        peer: &str,
        max_frame: usize,
        in_flight: usize,
    ) -> Result<Self, TransportError> {
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| error::connection(peer, e, None))?;
        let (queue, outgoing) = mpsc::channel(in_flight);
        let pending = Arc::new(Pending::default());
        let ends = Ends {
            send,
            recv,
            pending: pending.clone(),
            peer: peer.to_owned(),
        };
        let task = tokio::spawn(run(ends, outgoing, max_frame));
        tracing::debug!(%peer, "request stream opened");
        Ok(Self {
            queue,
            pending,
            task: Mutex::new(Some(task)),
        })
    }

    /// Whether requests can still go out on it.
    fn is_usable(&self) -> bool {
        !self.queue.is_closed() && !self.pending.is_broken()
    }

    /// Ends the task now; requests still waiting fail with `Closed`.
    async fn stop(&self) {
        self.pending.fail_all(|| TransportError::Closed);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

/// A stream's two halves and its waiters. However the task ends (failure,
/// abort, panic), dropping this fails every request still waiting and
/// resets the stream, so the server stops work on it at once.
struct Ends {
    send: SendStream,
    recv: RecvStream,
    pending: Arc<Pending>,
    peer: String,
}

impl Drop for Ends {
    fn drop(&mut self) {
        let _ = self.send.reset(code::CANCELLED);
        let _ = self.recv.stop(code::CANCELLED);
        self.pending
            .fail_all(|| error::lost(&self.peer, "the request stream ended"));
    }
}

/// Drives one request stream until it fails.
async fn run(mut ends: Ends, outgoing: mpsc::Receiver<Outgoing>, max_frame: usize) {
    let Ends {
        send,
        recv,
        pending,
        peer,
    } = &mut ends;
    let reason = tokio::select! {
        reason = read_replies(recv, pending, peer, max_frame) => reason,
        reason = write_requests(send, outgoing, peer) => reason,
    };
    tracing::debug!(%peer, reason = %error::chain(&reason), "request stream ended");
    pending.fail_all(|| error::duplicate(&reason));
}

/// Writes queued requests, as many as are waiting at once; returns why it stopped.
async fn write_requests(
    send: &mut SendStream,
    mut outgoing: mpsc::Receiver<Outgoing>,
    peer: &str,
) -> TransportError {
    let mut queued = Vec::new();
    // The stream's kind leads its first write.
    let mut kind = Some(wire::KIND_REQUESTS);
    while outgoing.recv_many(&mut queued, WRITE_BATCH).await > 0 {
        let inline: usize = queued
            .iter()
            .map(|o| REQUEST_HEAD_LEN + batch::inline_len(o.frame.len()))
            .sum();
        let mut out = Batch::with_capacity(inline + 1);
        if let Some(kind) = kind.take() {
            out.head().extend_from_slice(&[kind]);
        }
        for Outgoing { head, frame } in queued.drain(..) {
            out.head().extend_from_slice(&head);
            out.payload(frame);
        }
        if let Err(err) = out.write(send).await {
            return error::write(peer, err);
        }
        batch::trim(&mut queued);
    }
    TransportError::Closed
}

/// Hands each reply to the request waiting for its id; returns why the
/// stream can no longer be read.
async fn read_replies(
    recv: &mut RecvStream,
    pending: &Pending,
    peer: &str,
    max_frame: usize,
) -> TransportError {
    let mut decoder = ReplyDecoder::new(max_frame);
    loop {
        let mut input = match recv.read_chunk(wire::READ_CHUNK, true).await {
            Ok(Some(chunk)) => chunk.bytes,
            Ok(None) => return error::lost(peer, "the server ended the request stream"),
            Err(err) => return error::read(peer, err),
        };
        loop {
            let (id, reply) = match decoder.decode(&mut input) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(Malformed(reason)) => {
                    return TransportError::Malformed {
                        peer: peer.to_owned(),
                        reason: reason.to_owned(),
                    };
                }
            };
            // Nothing serves requests there: the stream is of no more use
            // (a request server bound later is reached by a fresh one). It
            // is marked broken before any waiter hears of it, so a request
            // made right after the refusal opens a fresh stream.
            if reply == Answer::NoService {
                let refused = || TransportError::ConnectionRefused {
                    peer: peer.to_owned(),
                };
                pending.fail_all(refused);
                return refused();
            }
            if !pending.complete(id, reply.into_result(peer)) {
                tracing::trace!(%peer, request = id, "late reply dropped");
            }
        }
    }
}
