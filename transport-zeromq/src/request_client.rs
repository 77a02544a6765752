//! The request client: one DEALER carrying many requests at once.
//!
//! Each request goes out as `[request-id, b"", body]` and its reply comes back
//! as `[request-id, b"", reply]` (see [`crate::envelope`]); a shared table
//! maps ids to waiting callers. A reply for an id nobody waits for any more
//! (timed out, cancelled) is discarded.
//!
//! The `zeromq` crate's DEALER does not reconnect, so one task owns the
//! socket, watches the socket monitor for the disconnect, fails the requests
//! already sent with [`TransportError::ConnectionLost`], drops the socket and
//! connects a new one after [`Backoff`].
//! Requests made meanwhile wait in a bounded queue and go out on the next
//! connection, or fail with [`TransportError::Timeout`] at their deadline.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use brine_transport_api::{Backoff, ClientOptions, RequestClient, TransportError};
use bytes::Bytes;
use futures_util::{StreamExt, stream::BoxStream};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use zeromq::{DealerSocket, Socket, SocketEvent, SocketRecv, SocketSend, ZmqMessage};

use crate::{
    envelope::{self, BadReply, ErrorTrailer},
    error::from_zmq,
    socket,
    task::{StopSignal, Worker},
};

type ReplySender = oneshot::Sender<Result<Bytes, TransportError>>;

/// The DEALER end of the request channel.
#[derive(Debug)]
pub(crate) struct ZmqRequestClient {
    peer: String,
    max_frame: usize,
    table: Arc<Table>,
    outgoing: mpsc::Sender<Outgoing>,
    worker: Worker,
}

/// Requests waiting for their replies, by id.
#[derive(Debug, Default)]
struct Table {
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiting>>,
}

#[derive(Debug)]
struct Waiting {
    reply: ReplySender,
    /// Handed to the socket (a lost connection fails it); unsent requests
    /// wait for the next connection instead.
    sent: bool,
}

/// A request on its way to the socket task.
#[derive(Debug)]
struct Outgoing {
    id: u64,
    body: Bytes,
    deadline: Instant,
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `result` to the caller waiting for `id`; `false` if none waits.
    fn complete(&self, id: u64, result: Result<Bytes, TransportError>) -> bool {
        let waiting = self.lock().remove(&id);
        match waiting {
            Some(waiting) => {
                let _ = waiting.reply.send(result);
                true
            }
            None => false,
        }
    }

    /// Fails every request (`all`) or only those already sent.
    fn fail(&self, all: bool, error: impl Fn() -> TransportError) {
        let failed: Vec<Waiting> = self
            .lock()
            .extract_if(|_, waiting| all || waiting.sent)
            .map(|(_, waiting)| waiting)
            .collect();
        for waiting in failed {
            let _ = waiting.reply.send(Err(error()));
        }
    }
}

/// Removes a request's entry however `request` ends (reply, timeout, cancel).
struct Forget<'a> {
    table: &'a Table,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
    }
}

impl ZmqRequestClient {
    /// Starts the client; it connects in the background.
    pub(crate) fn connect(opts: ClientOptions) -> Self {
        let peer = opts.connect.to_string();
        let table = Arc::new(Table::default());
        let (outgoing, queue) = mpsc::channel(opts.limits.queue_depth.max(1));
        let drive = Drive {
            peer: peer.clone(),
            endpoint: socket::endpoint(opts.connect),
            connect_timeout: opts.connect_timeout,
            backoff: opts.backoff,
            max_frame: opts.limits.max_frame_size,
            table: Arc::clone(&table),
            queue,
        };
        let worker = Worker::spawn(|stop| drive.run(stop));
        Self {
            peer,
            max_frame: opts.limits.max_frame_size,
            table,
            outgoing,
            worker,
        }
    }
}

#[async_trait]
impl RequestClient for ZmqRequestClient {
    async fn request(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        if !self.worker.is_running() {
            return Err(TransportError::Closed);
        }
        if frame.len() > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                peer: self.peer.clone(),
                len: u64::try_from(frame.len()).unwrap_or(u64::MAX),
                max: self.max_frame,
            });
        }
        let deadline = Instant::now() + timeout;
        let timed_out = || TransportError::Timeout {
            peer: self.peer.clone(),
            after: timeout,
        };
        let id = self.table.next_id.fetch_add(1, Ordering::Relaxed) & envelope::COUNTER_MASK;
        let (reply, replied) = oneshot::channel();
        self.table.lock().insert(id, Waiting { reply, sent: false });
        let _forget = Forget {
            table: &self.table,
            id,
        };
        let outgoing = Outgoing {
            id,
            body: frame,
            deadline,
        };
        match tokio::time::timeout_at(deadline, self.outgoing.send(outgoing)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(TransportError::Closed),
            Err(_) => return Err(timed_out()),
        }
        match tokio::time::timeout_at(deadline, replied).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(TransportError::Closed),
            Err(_) => Err(timed_out()),
        }
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.worker.stop().await;
        Ok(())
    }
}

/// Why a connection's serving loop ended.
enum Ended {
    Stop,
    Lost(String),
}

/// The socket-owning task.
struct Drive {
    peer: String,
    endpoint: String,
    connect_timeout: Duration,
    backoff: Backoff,
    max_frame: usize,
    table: Arc<Table>,
    queue: mpsc::Receiver<Outgoing>,
}

impl Drive {
    async fn run(mut self, mut stop: StopSignal) {
        let mut attempt: u32 = 0;
        loop {
            let mut dealer =
                DealerSocket::with_options(socket::client_options(self.connect_timeout, ""));
            let mut monitor = dealer.monitor().boxed();
            let connected = tokio::select! {
                biased;
                _ = &mut stop => break,
                connected = dealer.connect(&self.endpoint) => connected,
            };
            match connected {
                Ok(()) => {
                    attempt = 0;
                    tracing::debug!(peer = %self.peer, "request client connected");
                    match self.serve(&mut dealer, &mut monitor, &mut stop).await {
                        Ended::Stop => break,
                        Ended::Lost(reason) => {
                            tracing::warn!(peer = %self.peer, %reason, "request connection lost, reconnecting");
                            let peer = self.peer.clone();
                            self.table.fail(false, || TransportError::ConnectionLost {
                                peer: peer.clone(),
                                source: None,
                            });
                        }
                    }
                }
                Err(err) => {
                    tracing::debug!(peer = %self.peer, error = %err, attempt, "request client connect failed");
                }
            }
            drop(dealer);
            let delay = self.backoff.delay(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                biased;
                _ = &mut stop => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.queue.close();
        self.table.fail(true, || TransportError::Closed);
        tracing::debug!(peer = %self.peer, "request client closed");
    }

    /// Moves requests and replies until the connection drops or `stop`.
    async fn serve(
        &mut self,
        dealer: &mut DealerSocket,
        monitor: &mut BoxStream<'static, SocketEvent>,
        stop: &mut StopSignal,
    ) -> Ended {
        loop {
            tokio::select! {
                biased;
                _ = &mut *stop => return Ended::Stop,
                event = monitor.next() => match event {
                    Some(SocketEvent::Disconnected(_)) => {
                        return Ended::Lost("connection closed by the server".to_owned());
                    }
                    Some(_) => {}
                    None => return Ended::Lost("socket monitor ended".to_owned()),
                },
                received = dealer.recv() => match received {
                    Ok(message) => self.on_reply(message),
                    Err(err) => return Ended::Lost(format!("receive failed: {err}")),
                },
                outgoing = self.queue.recv() => match outgoing {
                    Some(outgoing) => self.send(dealer, outgoing).await,
                    None => return Ended::Stop,
                },
            }
        }
    }

    async fn send(&self, dealer: &mut DealerSocket, outgoing: Outgoing) {
        let Outgoing { id, body, deadline } = outgoing;
        match self.table.lock().get_mut(&id) {
            Some(waiting) => waiting.sent = true,
            None => return, // the caller gave up while it was queued
        }
        let frames = vec![envelope::encode_id(id), Bytes::new(), body];
        let Some(message) = socket::message(frames) else {
            return;
        };
        match tokio::time::timeout_at(deadline, dealer.send(message)).await {
            Ok(Ok(())) => tracing::trace!(peer = %self.peer, id, "request sent"),
            Ok(Err(err)) => {
                self.table
                    .complete(id, Err(from_zmq(&self.peer, "send", err)));
            }
            Err(_) => {} // the caller's own deadline reports the timeout
        }
    }

    fn on_reply(&self, message: ZmqMessage) {
        let (id, result) = match envelope::parse_reply(message.into_vec()) {
            Ok(reply) => (reply.id, self.reply_result(reply.body, reply.trailer)),
            Err(BadReply::NoId) => {
                tracing::warn!(peer = %self.peer, "reply without a request id discarded");
                return;
            }
            Err(BadReply::Malformed { id, reason }) => {
                tracing::warn!(peer = %self.peer, reason, "malformed reply");
                let err = TransportError::Malformed {
                    peer: self.peer.clone(),
                    reason: reason.to_owned(),
                };
                (id, Err(err))
            }
        };
        if !self.table.complete(id, result) {
            tracing::debug!(peer = %self.peer, id, "late reply discarded");
        }
    }

    fn reply_result(
        &self,
        body: Bytes,
        trailer: Option<ErrorTrailer>,
    ) -> Result<Bytes, TransportError> {
        let peer = self.peer.clone();
        match trailer {
            None if body.len() > self.max_frame => Err(TransportError::FrameTooLarge {
                peer,
                len: u64::try_from(body.len()).unwrap_or(u64::MAX),
                max: self.max_frame,
            }),
            None => Ok(body),
            Some(ErrorTrailer::FrameTooLarge { len, max }) => {
                Err(TransportError::FrameTooLarge { peer, len, max })
            }
            Some(ErrorTrailer::Malformed(reason)) => {
                Err(TransportError::Malformed { peer, reason })
            }
        }
    }
}
