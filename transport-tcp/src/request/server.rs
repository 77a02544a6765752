//! The request server: one task per connection reads requests and runs the
//! handler for each concurrently; a writer sends replies as they finish.

use std::{net::SocketAddr, pin::pin, sync::Arc};

use async_trait::async_trait;
use brine_transport_api::{
    Limits, Peer, RequestHandler, RequestServer, ServerOptions, TransportError,
    framing::{discard, read_frame},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter},
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tracing::{debug, info, warn};

use super::{ID_LEN, Reply, body_limit, read_id, split_request, write_reply};
use crate::net::{self, AcceptLoop, Acceptor, BoxedIo};

/// The TCP [`RequestServer`].
#[derive(Debug)]
pub(crate) struct Server {
    local_addr: SocketAddr,
    accept: AcceptLoop,
}

/// Binds the request server described by `opts`, serving through `handler`.
///
/// # Errors
/// [`TransportError::Bind`] if the address cannot be bound; invalid
/// settings or TLS material.
pub(crate) async fn bind(
    opts: ServerOptions,
    handler: Arc<dyn RequestHandler>,
) -> Result<Server, TransportError> {
    let acceptor = Acceptor::new(&opts).await?;
    let listener = net::bind(opts.bind).await?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| TransportError::Bind {
            addr: opts.bind.to_string(),
            source,
        })?;
    let limits = opts.limits;
    // Handlers running at once across every connection of this socket.
    let running = Arc::new(Semaphore::new(in_flight(limits)));
    let accept = AcceptLoop::start("request", listener, acceptor, move |io, addr| {
        serve_connection(io, addr, Arc::clone(&handler), limits, Arc::clone(&running))
    });
    info!(addr = %local_addr, tls = opts.tls.is_some(), "request server listening");
    Ok(Server { local_addr, accept })
}

#[async_trait]
impl RequestServer for Server {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.accept.stop().await;
        info!(addr = %self.local_addr, "request server closed");
        Ok(())
    }
}

fn in_flight(limits: Limits) -> usize {
    limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS)
}

/// A reply on its way to the writer.
struct Outgoing {
    id: u64,
    reply: Reply,
}

async fn serve_connection(
    io: BoxedIo,
    addr: SocketAddr,
    handler: Arc<dyn RequestHandler>,
    limits: Limits,
    running: Arc<Semaphore>,
) {
    let peer = addr.to_string();
    let (reader, writer) = tokio::io::split(io);
    let (replies, outgoing) = mpsc::channel(in_flight(limits));
    let mut reading = pin!(read_requests(
        reader, addr, handler, limits, running, replies
    ));
    let mut writing = pin!(write_replies(
        writer,
        outgoing,
        limits.max_frame_size,
        &peer
    ));
    let mut reading_done = false;
    debug!("client connected");
    loop {
        tokio::select! {
            read = &mut reading, if !reading_done => match read {
                // The client sent its last request; the writer ends once
                // every handler has replied.
                Ok(()) => reading_done = true,
                Err(err) => {
                    log_end(&err);
                    return;
                }
            },
            written = &mut writing => {
                match written {
                    Ok(()) => debug!("client disconnected"),
                    Err(err) => log_end(&err),
                }
                return;
            }
        }
    }
}

fn log_end(err: &TransportError) {
    match err {
        TransportError::ConnectionLost { .. } | TransportError::Closed => {
            debug!(error = %err, "client connection ended");
        }
        _ => warn!(error = %err, "client connection dropped"),
    }
}

/// Reads requests and spawns a handler for each. Returns `Ok` at a clean
/// end of stream, after every handler has queued its reply.
async fn read_requests<R: AsyncRead + Unpin>(
    mut reader: R,
    addr: SocketAddr,
    handler: Arc<dyn RequestHandler>,
    limits: Limits,
    running: Arc<Semaphore>,
    replies: mpsc::Sender<Outgoing>,
) -> Result<(), TransportError> {
    let peer = addr.to_string();
    let max = body_limit(limits.max_frame_size);
    // Requests of this connection in flight, until their reply is queued.
    let slots = Arc::new(Semaphore::new(in_flight(limits)));
    let mut handlers = JoinSet::new();
    loop {
        while handlers.try_join_next().is_some() {}
        let frame = match read_frame(&mut reader, max + ID_LEN, &peer).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(TransportError::FrameTooLarge { len, .. }) => {
                // len > max + ID_LEN, so the id is there to read.
                let id = read_id(&mut reader, &peer).await?;
                let body = len.saturating_sub(ID_LEN as u64);
                discard(&mut reader, body, &peer).await?;
                warn!(
                    request = id,
                    len = body,
                    max,
                    "request over the frame size limit refused"
                );
                let refusal = Outgoing {
                    id,
                    reply: Reply::TooLarge {
                        len: body,
                        max: max as u64,
                    },
                };
                if replies.send(refusal).await.is_err() {
                    return Err(TransportError::Closed);
                }
                continue;
            }
            Err(err) => return Err(err),
        };
        let (id, body) = split_request(&frame).ok_or_else(|| TransportError::Malformed {
            peer: peer.clone(),
            reason: "request shorter than its id".to_owned(),
        })?;
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|_| TransportError::Closed)?;
        let permit = Arc::clone(&running)
            .acquire_owned()
            .await
            .map_err(|_| TransportError::Closed)?;
        let handler = Arc::clone(&handler);
        let replies = replies.clone();
        handlers.spawn(async move {
            let reply = handler.handle(body, Peer { addr: Some(addr) }).await;
            drop(permit);
            // Fails only when the connection is gone; the reply has nowhere to go.
            let _ = replies
                .send(Outgoing {
                    id,
                    reply: Reply::Ok(reply),
                })
                .await;
            drop(slot);
        });
    }
    drop(replies);
    while handlers.join_next().await.is_some() {}
    Ok(())
}

/// Writes replies as they come, flushing whenever none are waiting; ends
/// when every sender (reader and handlers) is gone.
async fn write_replies<W: AsyncWrite + Unpin>(
    writer: W,
    mut outgoing: mpsc::Receiver<Outgoing>,
    max: usize,
    peer: &str,
) -> Result<(), TransportError> {
    let mut writer = BufWriter::new(writer);
    while let Some(Outgoing { id, reply }) = outgoing.recv().await {
        write_reply(&mut writer, id, reply, max, peer).await?;
        if outgoing.is_empty() {
            writer
                .flush()
                .await
                .map_err(|err| TransportError::from_io(peer, err))?;
        }
    }
    Ok(())
}
