//! The request server: one task per connection reads requests and runs the
//! handler for each concurrently; a writer sends replies as they finish.
//! Its listener may be shared with a publish server (see `shared.rs`);
//! [`read_requests`] then also serves the requests of shared connections.

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
use crate::{
    listener::{self, Listener, Listeners, Role},
    net::BoxedIo,
};

/// The TCP [`RequestServer`].
#[derive(Debug)]
pub(crate) struct Server {
    local_addr: SocketAddr,
    listener: Arc<Listener>,
}

/// Binds the request server described by `opts`, serving through `handler`
/// (on a listener of its own, or on the publish server's when that is
/// bound to the same address by the same transport value).
///
/// # Errors
/// [`TransportError::Bind`] if the address cannot be bound (or a request
/// server is already bound there); invalid settings or TLS material.
pub(crate) async fn bind(
    listeners: &Listeners,
    opts: ServerOptions,
    handler: Arc<dyn RequestHandler>,
) -> Result<Server, TransportError> {
    let limits = opts.limits;
    let service = Arc::new(Service {
        handler,
        limits,
        // Handlers running at once across every connection of this server.
        running: Arc::new(Semaphore::new(in_flight(limits))),
    });
    let listener = listener::attach(listeners, &opts, listener::Service::Requests(service)).await?;
    let local_addr = listener.local_addr();
    info!(addr = %local_addr, tls = opts.tls.is_some(), "request server listening");
    Ok(Server {
        local_addr,
        listener,
    })
}

#[async_trait]
impl RequestServer for Server {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.listener.detach(Role::Requests).await;
        info!(addr = %self.local_addr, "request server closed");
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.listener.detach_now(Role::Requests);
    }
}

/// What serves requests: the handler, its limits and the bound on handlers
/// running at once.
pub(crate) struct Service {
    handler: Arc<dyn RequestHandler>,
    limits: Limits,
    running: Arc<Semaphore>,
}

impl Service {
    /// The server's limits.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

pub(crate) fn in_flight(limits: Limits) -> usize {
    limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS)
}

/// A reply on its way to the writer.
pub(crate) struct Outgoing {
    pub(crate) id: u64,
    pub(crate) reply: Reply,
}

/// Serves one plain request connection.
pub(crate) async fn serve_connection(io: BoxedIo, addr: SocketAddr, service: Arc<Service>) {
    let peer = addr.to_string();
    let limits = service.limits;
    let (reader, writer) = tokio::io::split(io);
    let (replies, outgoing) = mpsc::channel(in_flight(limits));
    let mut reading = pin!(read_requests(reader, addr, Some(service), limits, replies));
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

/// Logs why a client connection ended, at a level matching the cause.
pub(crate) fn log_end(err: &TransportError) {
    match err {
        TransportError::ConnectionLost { .. } | TransportError::Closed => {
            debug!(error = %err, "client connection ended");
        }
        _ => warn!(error = %err, "client connection dropped"),
    }
}

/// Reads requests and spawns a handler for each (or, with no `service`,
/// answers each at once that no request server is bound here). Returns `Ok`
/// at a clean end of stream, after every handler has queued its reply.
pub(crate) async fn read_requests<R: AsyncRead + Unpin>(
    mut reader: R,
    addr: SocketAddr,
    service: Option<Arc<Service>>,
    limits: Limits,
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
        let Some(service) = &service else {
            let refusal = Outgoing {
                id,
                reply: Reply::NoService,
            };
            if replies.send(refusal).await.is_err() {
                return Err(TransportError::Closed);
            }
            continue;
        };
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|_| TransportError::Closed)?;
        let permit = Arc::clone(&service.running)
            .acquire_owned()
            .await
            .map_err(|_| TransportError::Closed)?;
        let handler = Arc::clone(&service.handler);
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
        write_reply(&mut writer, id, reply, max, peer, None).await?;
        if outgoing.is_empty() {
            writer
                .flush()
                .await
                .map_err(|err| TransportError::from_io(peer, err))?;
        }
    }
    Ok(())
}
