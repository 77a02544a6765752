//! The request client: one connection, opened on first use and again after
//! it breaks; a writer sends requests and a reader hands each reply to the
//! request waiting for its id.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use brine_transport_api::{
    Backoff, ClientOptions, Limits, RequestClient, TransportError,
    framing::{discard, read_frame},
};
use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter},
    sync::{Semaphore, mpsc, oneshot, watch},
    time::Instant,
};
use tracing::{Instrument, debug, debug_span, trace};

use super::{ID_LEN, REPLY_HEADER_LEN, Reply, body_limit, decode_reply, read_id, write_request};
use crate::net::{BoxedIo, Dialer, OwnedTask};

/// The TCP [`RequestClient`].
#[derive(Debug)]
pub(crate) struct Client {
    dialer: Dialer,
    limits: Limits,
    backoff: Backoff,
    next_id: AtomicU64,
    /// Requests in flight; bounds the pending map.
    slots: Semaphore,
    /// The current connection; held while one is being made, so there is
    /// only ever one.
    conn: tokio::sync::Mutex<Option<Connection>>,
    closed: watch::Sender<bool>,
}

/// Starts a request client for the server in `opts`; it connects on the
/// first request.
///
/// # Errors
/// Invalid settings or TLS material; never "server not up".
pub(crate) async fn connect(opts: ClientOptions) -> Result<Client, TransportError> {
    Ok(Client {
        dialer: Dialer::new(&opts).await?,
        limits: opts.limits,
        backoff: opts.backoff,
        next_id: AtomicU64::new(1),
        slots: Semaphore::new(in_flight(opts.limits)),
        conn: tokio::sync::Mutex::new(None),
        closed: watch::Sender::new(false),
    })
}

fn in_flight(limits: Limits) -> usize {
    limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS)
}

#[async_trait]
impl RequestClient for Client {
    async fn request(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        let mut closed = self.closed.subscribe();
        if *closed.borrow_and_update() {
            return Err(TransportError::Closed);
        }
        let max = body_limit(self.limits.max_frame_size);
        if frame.len() > max {
            return Err(TransportError::FrameTooLarge {
                peer: self.dialer.peer().to_owned(),
                len: frame.len() as u64,
                max: self.limits.max_frame_size,
            });
        }
        let deadline = Instant::now().checked_add(timeout);
        let exchange = tokio::time::timeout(timeout, self.exchange(frame, deadline));
        tokio::select! {
            result = exchange => result.unwrap_or_else(|_| Err(TransportError::Timeout {
                peer: self.dialer.peer().to_owned(),
                after: timeout,
            })),
            _ = closed.wait_for(|closed| *closed) => Err(TransportError::Closed),
        }
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.send_replace(true);
        self.slots.close();
        // Requests drop out at once on the flag, releasing the lock.
        let conn = self.conn.lock().await.take();
        if let Some(conn) = conn {
            conn.pending.fail_all(|| TransportError::Closed);
            conn.task.stop().await;
        }
        Ok(())
    }
}

impl Client {
    async fn exchange(
        &self,
        frame: Bytes,
        deadline: Option<Instant>,
    ) -> Result<Bytes, TransportError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| TransportError::Closed)?;
        let (requests, pending) = self.connection(deadline).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let reply = pending.register(id).ok_or_else(|| self.lost())?;
        // Unregisters on every way out, so a late reply finds nobody.
        let _waiting = Waiting {
            pending: &pending,
            id,
        };
        requests
            .send(Outgoing { id, frame })
            .await
            .map_err(|_| self.lost())?;
        reply.await.unwrap_or_else(|_| Err(self.lost()))
    }

    fn lost(&self) -> TransportError {
        TransportError::ConnectionLost {
            peer: self.dialer.peer().to_owned(),
            source: None,
        }
    }

    /// The live connection, made now if there is none (or it broke).
    async fn connection(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(mpsc::Sender<Outgoing>, Arc<Pending>), TransportError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.pending.is_broken()
            && !conn.task.is_finished()
        {
            return Ok((conn.requests.clone(), Arc::clone(&conn.pending)));
        }
        *slot = None;
        let io = self.dial_until(deadline).await?;
        let conn = Connection::start(io, self.dialer.peer(), self.limits);
        let handles = (conn.requests.clone(), Arc::clone(&conn.pending));
        *slot = Some(conn);
        Ok(handles)
    }

    /// Dials with backoff while the errors are worth retrying and the next
    /// try still fits before `deadline`; otherwise returns the last error.
    async fn dial_until(&self, deadline: Option<Instant>) -> Result<BoxedIo, TransportError> {
        let mut attempt = 0u32;
        loop {
            match self.dialer.dial().await {
                Ok(io) => {
                    debug!(server = %self.dialer.peer(), "request connection up");
                    return Ok(io);
                }
                Err(err) if !err.is_retryable() => return Err(err),
                Err(err) => {
                    let delay = self.backoff.delay(attempt);
                    let retry_at = Instant::now().checked_add(delay);
                    if deadline.is_some_and(|d| retry_at.is_none_or(|at| at >= d)) {
                        return Err(err);
                    }
                    debug!(error = %err, attempt, ?delay, "cannot connect; retrying");
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

/// A request on its way to the writer.
struct Outgoing {
    id: u64,
    frame: Bytes,
}

/// One connection: the writer's queue, the pending replies and the task
/// driving both (aborted on drop).
#[derive(Debug)]
struct Connection {
    requests: mpsc::Sender<Outgoing>,
    pending: Arc<Pending>,
    task: OwnedTask,
}

impl Connection {
    fn start(io: BoxedIo, peer: &str, limits: Limits) -> Self {
        let (requests, outgoing) = mpsc::channel(in_flight(limits));
        let pending = Arc::new(Pending::default());
        let span = debug_span!("request connection", server = %peer);
        let task = OwnedTask::spawn(
            drive(
                io,
                outgoing,
                Arc::clone(&pending),
                peer.to_owned(),
                limits.max_frame_size,
            )
            .instrument(span),
        );
        Self {
            requests,
            pending,
            task,
        }
    }
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("id", &self.id)
            .field("len", &self.frame.len())
            .finish()
    }
}

type ReplySender = oneshot::Sender<Result<Bytes, TransportError>>;

/// Requests waiting for their reply, by id; once broken, nothing more is
/// registered.
#[derive(Debug, Default)]
struct Pending(Mutex<PendingState>);

#[derive(Debug, Default)]
struct PendingState {
    waiting: HashMap<u64, ReplySender>,
    broken: bool,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, id: u64) -> Option<oneshot::Receiver<Result<Bytes, TransportError>>> {
        let mut state = self.lock();
        if state.broken {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.insert(id, tx);
        Some(rx)
    }

    fn remove(&self, id: u64) {
        self.lock().waiting.remove(&id);
    }

    /// Hands `result` to request `id`; false if nobody waits for it (it
    /// timed out or was cancelled).
    fn complete(&self, id: u64, result: Result<Bytes, TransportError>) -> bool {
        let waiter = self.lock().waiting.remove(&id);
        waiter.is_some_and(|tx| tx.send(result).is_ok())
    }

    fn is_broken(&self) -> bool {
        self.lock().broken
    }

    /// Marks the connection broken and fails every waiting request.
    fn fail_all(&self, error: impl Fn() -> TransportError) {
        let waiting = {
            let mut state = self.lock();
            state.broken = true;
            std::mem::take(&mut state.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(error()));
        }
    }
}

/// Removes a request from the pending map when it stops waiting.
struct Waiting<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

async fn drive(
    io: BoxedIo,
    outgoing: mpsc::Receiver<Outgoing>,
    pending: Arc<Pending>,
    peer: String,
    max_frame: usize,
) {
    let (reader, writer) = tokio::io::split(io);
    let ended = tokio::select! {
        ended = read_replies(reader, &pending, &peer, max_frame) => ended,
        ended = write_requests(writer, outgoing, &peer, max_frame) => ended,
    };
    debug!(reason = %ended, "request connection ended");
    pending.fail_all(|| TransportError::ConnectionLost {
        peer: peer.clone(),
        source: None,
    });
}

/// Reads replies until the connection fails; returns why.
async fn read_replies<R: AsyncRead + Unpin>(
    mut reader: R,
    pending: &Pending,
    peer: &str,
    max_frame: usize,
) -> TransportError {
    let max = body_limit(max_frame);
    loop {
        let frame = match read_frame(&mut reader, max + REPLY_HEADER_LEN, peer).await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                return TransportError::ConnectionLost {
                    peer: peer.to_owned(),
                    source: None,
                };
            }
            Err(TransportError::FrameTooLarge { len, .. }) => {
                // len > max + 9: the id is there, then status and body.
                let id = match read_id(&mut reader, peer).await {
                    Ok(id) => id,
                    Err(err) => return err,
                };
                let rest = len.saturating_sub(ID_LEN as u64);
                if let Err(err) = discard(&mut reader, rest, peer).await {
                    return err;
                }
                let refused = TransportError::FrameTooLarge {
                    peer: peer.to_owned(),
                    len: rest.saturating_sub(1),
                    max: max_frame,
                };
                pending.complete(id, Err(refused));
                continue;
            }
            Err(err) => return err,
        };
        let (id, reply) = match decode_reply(&frame) {
            Ok(decoded) => decoded,
            Err(reason) => {
                return TransportError::Malformed {
                    peer: peer.to_owned(),
                    reason: reason.to_owned(),
                };
            }
        };
        let result = match reply {
            Reply::Ok(body) => Ok(body),
            Reply::TooLarge { len, max } => Err(TransportError::FrameTooLarge {
                peer: peer.to_owned(),
                len,
                max: usize::try_from(max).unwrap_or(usize::MAX),
            }),
        };
        if !pending.complete(id, result) {
            trace!(request = id, "late reply discarded");
        }
    }
}

/// Writes requests as they come, flushing whenever none are waiting;
/// returns why it stopped.
async fn write_requests<W: AsyncWrite + Unpin>(
    writer: W,
    mut outgoing: mpsc::Receiver<Outgoing>,
    peer: &str,
    max_frame: usize,
) -> TransportError {
    let mut writer = BufWriter::new(writer);
    while let Some(Outgoing { id, frame }) = outgoing.recv().await {
        if let Err(err) = write_request(&mut writer, id, &frame, max_frame, peer).await {
            return err;
        }
        if outgoing.is_empty()
            && let Err(err) = writer.flush().await
        {
            return TransportError::from_io(peer, err);
        }
    }
    TransportError::Closed
}
