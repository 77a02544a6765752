//! The server's side of a request stream: one task per stream reads
//! requests and spawns a handler call for each; the replies go out through
//! one writer, as the handlers finish.
//!
//! Bounds: handler calls across the server take a permit of
//! [`Limits::max_in_flight`]; those of one stream take a slot of
//! [`REQUESTS_PER_CONNECTION`], held until the reply is queued. Without a
//! slot or a permit the reader stops reading, so a client that piles up
//! requests is held back by QUIC's flow control instead of our memory.

use std::{net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use brine_transport_api::{Limits, Peer, RequestHandler, TransportError};
use bytes::{Bytes, BytesMut};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
    time::Instant,
};

use super::{
    batch::{self, Batch, WRITE_BATCH},
    decode::{Request, RequestDecoder},
};
use crate::{
    error,
    wire::{self, Answer, REPLY_HEAD_MAX, code},
};

/// Requests of one request stream (so, of one client connection) handled
/// at once; past that the server stops reading the stream. A minion has a
/// few requests open at a time; a client with more waits in its own queue
/// and QUIC's flow-control window.
pub(crate) const REQUESTS_PER_CONNECTION: usize = 32;

/// How long a request may stall mid-frame before the server drops the
/// stream (and frees what its partial request holds).
const PAYLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The request service bound at an endpoint.
pub(crate) struct Service {
    handler: Arc<dyn RequestHandler>,
    limits: Limits,
    permits: Arc<Semaphore>,
    /// Set when the request server closes; its open streams end.
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A reply on its way to the writer.
struct Outgoing {
    id: u64,
    reply: Answer,
}

/// Why a request stream ended early.
enum End {
    /// The request server closed.
    ServiceClosed,
    /// A request stopped arriving halfway.
    Stalled,
    /// The stream or connection failed.
    Failed(TransportError),
}

impl Service {
    pub(crate) fn new(handler: Arc<dyn RequestHandler>, limits: Limits) -> Self {
        Self {
            handler,
            limits,
            permits: Arc::new(Semaphore::new(
                limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
            )),
            closed: watch::Sender::new(false),
        }
    }

    /// Ends the streams being served (their requests fail with
    /// `ConnectionRefused`).
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Serves one request stream (after its kind byte) until the client
    /// ends it, it fails, or the service closes.
    pub(crate) async fn serve(&self, peer: SocketAddr, mut send: SendStream, mut recv: RecvStream) {
        let mut closed = self.closed.subscribe();
        let per_stream = REQUESTS_PER_CONNECTION
            .min(self.limits.max_in_flight)
            .max(1);
        let (replies, outgoing) = mpsc::channel(per_stream);
        let peer_text = peer.to_string();
        let ended = {
            let mut reading =
                pin!(self.read_requests(peer, &peer_text, &mut recv, replies, per_stream));
            let mut writing = pin!(write_replies(&mut send, outgoing, &peer_text));
            let mut read_all = false;
            loop {
                tokio::select! {
                    read = &mut reading, if !read_all => match read {
                        // The client sent its last request; the writer
                        // ends once every handler has replied.
                        Ok(()) => read_all = true,
                        Err(end) => break Err(end),
                    },
                    written = &mut writing => break written,
                    _ = closed.wait_for(|c| *c) => break Err(End::ServiceClosed),
                }
            }
        };
        let reset = |send: &mut SendStream, recv: &mut RecvStream, code: VarInt| {
            let _ = send.reset(code);
            let _ = recv.stop(code);
        };
        match ended {
            Ok(()) => {
                let _ = send.finish();
                tracing::debug!(%peer, "request stream finished");
            }
            Err(End::ServiceClosed) => reset(&mut send, &mut recv, code::NO_SERVICE),
            Err(End::Stalled) => {
                tracing::debug!(%peer, idle = ?PAYLOAD_IDLE_TIMEOUT, "request stalled mid-frame; dropping the stream");
                reset(&mut send, &mut recv, code::STALLED);
            }
            Err(End::Failed(err)) => {
                tracing::debug!(%peer, error = %error::chain(&err), "request stream failed");
                reset(&mut send, &mut recv, code::CLOSING);
            }
        }
    }

    /// Reads requests and spawns a handler call for each. Returns `Ok` at
    /// a clean end of stream, once every handler has queued its reply.
    async fn read_requests(
        &self,
        peer: SocketAddr,
        peer_text: &str,
        recv: &mut RecvStream,
        replies: mpsc::Sender<Outgoing>,
        per_stream: usize,
    ) -> Result<(), End> {
        let max = self.limits.max_frame_size;
        let mut decoder = RequestDecoder::new(max);
        let mut input = Bytes::new();
        let slots = Arc::new(Semaphore::new(per_stream));
        let mut handlers = JoinSet::new();
        loop {
            let Some(request) = decoder.decode(&mut input) else {
                // Handlers are reaped while the stream is quiet, so an idle
                // connection holds none of their finished tasks.
                let deadline = Instant::now() + PAYLOAD_IDLE_TIMEOUT;
                let chunk = loop {
                    tokio::select! {
                        chunk = next_chunk(recv, &decoder, deadline, peer_text) => break chunk?,
                        Some(done) = handlers.join_next(), if !handlers.is_empty() => {
                            log_panic(done, peer);
                        }
                    }
                };
                match chunk {
                    Some(chunk) => input = chunk,
                    None => break,
                }
                continue;
            };
            let (id, body) = match request {
                Request::TooLarge { id, len } => {
                    tracing::warn!(%peer, request = id, len, max, "request over the frame limit refused");
                    let max = wire::len64(max);
                    let refusal = Outgoing {
                        id,
                        reply: Answer::TooLarge { len, max },
                    };
                    replies.send(refusal).await.map_err(|_| closed())?;
                    continue;
                }
                Request::Frame { id, body } => (id, body),
            };
            tracing::trace!(%peer, request = id, len = body.len(), "request received");
            let slot = slots.clone().acquire_owned().await.map_err(|_| closed())?;
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| closed())?;
            let handler = self.handler.clone();
            let replies = replies.clone();
            // Boxed, and kept small: a task is an aligned allocation, and
            // one over 1 KiB takes glibc's slow path (10% of the master's
            // CPU at 10,000 returns a second went to allocating 1.1 KB
            // request tasks); a small plain box comes from its per-thread
            // cache.
            handlers.spawn(Box::pin(async move {
                let answer = handler.handle(body, Peer { addr: Some(peer) }).await;
                drop(permit);
                let reply = if answer.len() > max {
                    tracing::warn!(%peer, request = id, len = answer.len(), max, "reply over the frame limit not sent");
                    Answer::ReplyTooLarge {
                        len: wire::len64(answer.len()),
                        max: wire::len64(max),
                    }
                } else {
                    Answer::Reply(answer)
                };
                // Fails only when the stream is gone; the reply has nowhere to go.
                let _ = replies.send(Outgoing { id, reply }).await;
                drop(slot);
            }));
        }
        drop(replies);
        while let Some(done) = handlers.join_next().await {
            log_panic(done, peer);
        }
        Ok(())
    }
}

fn closed() -> End {
    End::Failed(TransportError::Closed)
}

fn log_panic(done: Result<(), tokio::task::JoinError>, peer: SocketAddr) {
    if let Err(err) = done
        && err.is_panic()
    {
        tracing::error!(%peer, error = %err, "request handler panicked");
    }
}

/// The next bytes of the stream; `Ok(None)` at a clean end between frames.
/// Mid-frame, a peer still silent at `deadline` is given up on.
///
/// # Cancel safety
/// Cancel safe (quinn's `read_chunk` is).
async fn next_chunk(
    recv: &mut RecvStream,
    decoder: &RequestDecoder,
    deadline: Instant,
    peer: &str,
) -> Result<Option<Bytes>, End> {
    let between = decoder.is_between_frames();
    let read = recv.read_chunk(wire::READ_CHUNK, true);
    let read = if between {
        read.await
    } else {
        tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| End::Stalled)?
    };
    match read {
        Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
        Ok(None) if between => Ok(None),
        Ok(None) => Err(End::Failed(error::lost(
            peer,
            "stream ended inside a request",
        ))),
        Err(err) => Err(End::Failed(error::read(peer, err))),
    }
}

/// Writes replies as they come, as many as are queued at once; ends when
/// every sender (reader and handlers) is gone.
async fn write_replies(
    send: &mut SendStream,
    mut outgoing: mpsc::Receiver<Outgoing>,
    peer: &str,
) -> Result<(), End> {
    let mut queued = Vec::new();
    while outgoing.recv_many(&mut queued, WRITE_BATCH).await > 0 {
        let inline: usize = queued
            .iter()
            .map(|o| match &o.reply {
                Answer::Reply(body) => REPLY_HEAD_MAX + batch::inline_len(body.len()),
                _ => REPLY_HEAD_MAX,
            })
            .sum();
        let mut out = Batch::with_capacity(inline);
        for Outgoing { id, reply } in queued.drain(..) {
            if let Some(body) = wire::put_reply(out.head(), id, reply) {
                out.payload(body);
            }
        }
        out.write(send)
            .await
            .map_err(|err| End::Failed(error::write(peer, err)))?;
        batch::trim(&mut queued);
    }
    Ok(())
}

/// Answers a request stream where no request server is bound: its first
/// request gets `NO_SERVICE` (the client then fails every request on the
/// stream and lets go of it), and the stream ends.
pub(crate) async fn refuse(peer: SocketAddr, mut send: SendStream, mut recv: RecvStream) {
    let peer_text = peer.to_string();
    // A limit of 0 refuses every payload unread; only the id is wanted.
    let mut decoder = RequestDecoder::new(0);
    let deadline = Instant::now() + PAYLOAD_IDLE_TIMEOUT;
    let first_id = async {
        let mut input = Bytes::new();
        loop {
            match decoder.decode(&mut input) {
                Some(Request::Frame { id, .. } | Request::TooLarge { id, .. }) => return Some(id),
                None => match next_chunk(&mut recv, &decoder, deadline, &peer_text).await {
                    Ok(Some(chunk)) => input = chunk,
                    Ok(None) | Err(_) => return None,
                },
            }
        }
    };
    let Ok(Some(id)) = tokio::time::timeout_at(deadline, first_id).await else {
        let _ = send.reset(code::NO_SERVICE);
        let _ = recv.stop(code::NO_SERVICE);
        return;
    };
    let _ = recv.stop(code::NO_SERVICE);
    let mut out = BytesMut::with_capacity(REPLY_HEAD_MAX);
    let _ = wire::put_reply(&mut out, id, Answer::NoService);
    if send.write_all(&out).await.is_ok() {
        let _ = send.finish();
    }
}
