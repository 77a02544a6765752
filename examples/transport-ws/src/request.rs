//! The request channel over WebSocket: one connection per client, many
//! requests in flight on it, matched to replies by id.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use brine_transport_api::{
    ClientOptions, Limits, Peer, RequestClient, RequestHandler, RequestServer, ServerOptions,
    TransportError,
};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    task::JoinSet,
};
use tokio_tungstenite::{WebSocketStream, accept_async_with_config, tungstenite::Message};
use tracing::{debug, warn};

use crate::{
    error::map_ws,
    wire::{
        ClientTask, HANDSHAKE_TIMEOUT, ID_LEN, STATUS_OK, STATUS_TOO_LARGE, ServerTask, connect,
        ws_config,
    },
};

const PATH: &str = "/requests";

/// The master's end: accepts connections and serves each through the handler.
#[derive(Debug)]
pub(crate) struct WsRequestServer {
    addr: SocketAddr,
    task: ServerTask,
}

impl WsRequestServer {
    pub(crate) async fn bind(
        opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Self, TransportError> {
        let bind_err = |source| TransportError::Bind {
            addr: opts.bind.to_string(),
            source,
        };
        let listener = TcpListener::bind(opts.bind).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept(listener, stopped, handler, opts.limits));
        debug!(%addr, "ws request server listening");
        Ok(Self {
            addr,
            task: ServerTask::new(stop, task),
        })
    }
}

#[async_trait]
impl RequestServer for WsRequestServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.task.stop().await;
        Ok(())
    }
}

async fn accept(
    listener: TcpListener,
    mut stopped: oneshot::Receiver<()>,
    handler: Arc<dyn RequestHandler>,
    limits: Limits,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(serve(stream, peer, handler.clone(), limits));
                }
                Err(err) => {
                    warn!(error = %err, "ws request server accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

/// Serves one connection until it ends; at most `max_in_flight` requests
/// are handled at once, and reading pauses while that many are running.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<dyn RequestHandler>,
    limits: Limits,
) {
    let max_in = limits.max_frame_size.saturating_add(ID_LEN);
    let ws = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        accept_async_with_config(stream, Some(ws_config(max_in))),
    )
    .await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(err)) => {
            debug!(%peer, error = %err, "ws handshake failed; connection dropped");
            return;
        }
        Err(_) => {
            debug!(%peer, "ws handshake timed out; connection dropped");
            return;
        }
    };
    let (mut sink, mut messages) = ws.split();
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            message = messages.next(), if running.len() < limits.max_in_flight => {
                let request = match message {
                    Some(Ok(Message::Binary(request))) => request,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => {
                        match map_ws(&peer.to_string(), err) {
                            TransportError::ConnectionLost { .. } => {
                                debug!(%peer, "ws request client went away");
                            }
                            err => warn!(%peer, error = %err, "ws request connection dropped"),
                        }
                        break;
                    }
                };
                let Some(id) = request.get(..ID_LEN).and_then(|b| b.try_into().ok()) else {
                    warn!(%peer, len = request.len(), "request shorter than its id; connection dropped");
                    break;
                };
                let frame = request.slice(ID_LEN..);
                let handler = handler.clone();
                running.spawn(async move {
                    let reply = handler.handle(frame, Peer { addr: Some(peer) }).await;
                    (u64::from_be_bytes(id), reply)
                });
            }
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Ok((id, reply)) = done else {
                    warn!(%peer, "request handler panicked; connection dropped");
                    break;
                };
                let message = if reply.len() > limits.max_frame_size {
                    warn!(%peer, len = reply.len(), max = limits.max_frame_size, "reply over the frame limit; refused");
                    let mut sizes = [0u8; 16];
                    sizes[..8].copy_from_slice(&(reply.len() as u64).to_be_bytes());
                    sizes[8..].copy_from_slice(&(limits.max_frame_size as u64).to_be_bytes());
                    reply_message(id, STATUS_TOO_LARGE, &sizes)
                } else {
                    reply_message(id, STATUS_OK, &reply)
                };
                if let Err(err) = sink.send(Message::Binary(message)).await {
                    debug!(%peer, error = %err, "ws request client went away");
                    break;
                }
            }
        }
    }
}

fn reply_message(id: u64, status: u8, frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(ID_LEN + 1 + frame.len());
    out.put_u64(id);
    out.put_u8(status);
    out.put_slice(frame);
    out.freeze()
}

/// One request waiting for the connection task.
struct Call {
    frame: Bytes,
    reply: oneshot::Sender<Result<Bytes, TransportError>>,
}

/// A client's end: requests go through a background task that keeps one
/// connection up (reconnecting with backoff) and matches replies by id.
#[derive(Debug)]
pub(crate) struct WsRequestClient {
    calls: mpsc::Sender<Call>,
    peer: String,
    max: usize,
    closed: AtomicBool,
    task: ClientTask,
}

impl WsRequestClient {
    pub(crate) fn start(opts: ClientOptions) -> Self {
        let (calls, rx) = mpsc::channel(opts.limits.max_in_flight.max(1));
        let peer = opts.connect.to_string();
        let max = opts.limits.max_frame_size;
        let task = tokio::spawn(drive(opts, rx));
        Self {
            calls,
            peer,
            max,
            closed: AtomicBool::new(false),
            task: ClientTask::new(task),
        }
    }
}

#[async_trait]
impl RequestClient for WsRequestClient {
    async fn request(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        if frame.len() > self.max {
            return Err(TransportError::FrameTooLarge {
                peer: self.peer.clone(),
                len: frame.len() as u64,
                max: self.max,
            });
        }
        let (reply, answer) = oneshot::channel();
        let exchange = async {
            self.calls
                .send(Call { frame, reply })
                .await
                .map_err(|_| TransportError::Closed)?;
            answer.await.map_err(|_| TransportError::ConnectionLost {
                peer: self.peer.clone(),
                source: None,
            })?
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout {
                peer: self.peer.clone(),
                after: timeout,
            })?
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        self.task.stop().await;
        Ok(())
    }
}

/// Connects, serves calls until the connection breaks, and reconnects with
/// backoff; calls made meanwhile wait in the bounded queue (and time out
/// there if the server stays away).
async fn drive(opts: ClientOptions, mut calls: mpsc::Receiver<Call>) {
    let max_in = opts.limits.max_frame_size.saturating_add(ID_LEN + 1);
    let mut attempt = 0;
    loop {
        match connect(opts.connect, PATH, max_in, opts.connect_timeout).await {
            Ok(ws) => {
                attempt = 0;
                debug!(server = %opts.connect, "ws request client connected");
                if exchange(ws, &mut calls, &opts).await.is_none() {
                    return; // The client is gone.
                }
            }
            Err(err) => debug!(server = %opts.connect, error = %err, "ws request connect failed"),
        }
        tokio::time::sleep(opts.backoff.delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

type Pending = HashMap<u64, oneshot::Sender<Result<Bytes, TransportError>>>;

/// Runs one connection; `None` once the client has gone away.
async fn exchange(
    ws: WebSocketStream<TcpStream>,
    calls: &mut mpsc::Receiver<Call>,
    opts: &ClientOptions,
) -> Option<()> {
    let peer = opts.connect.to_string();
    let max_in_flight = opts.limits.max_in_flight.max(1);
    let (mut sink, mut messages) = ws.split();
    let mut pending = Pending::new();
    let mut next_id = 0u64;
    let lost = |pending: &mut Pending, why: TransportError| {
        debug!(server = %peer, error = %why, in_flight = pending.len(), "ws request connection lost");
        for (_, waiting) in pending.drain() {
            let _ = waiting.send(Err(TransportError::ConnectionLost {
                peer: peer.clone(),
                source: None,
            }));
        }
    };
    loop {
        if pending.len() >= max_in_flight {
            // Requests that timed out no longer wait for their replies.
            pending.retain(|_, waiting| !waiting.is_closed());
        }
        tokio::select! {
            call = calls.recv(), if pending.len() < max_in_flight => {
                let call = call?;
                if call.reply.is_closed() {
                    continue;
                }
                next_id = next_id.wrapping_add(1);
                let mut message = BytesMut::with_capacity(ID_LEN + call.frame.len());
                message.put_u64(next_id);
                message.put_slice(&call.frame);
                pending.insert(next_id, call.reply);
                if let Err(err) = sink.send(Message::Binary(message.freeze())).await {
                    lost(&mut pending, map_ws(&peer, err));
                    return Some(());
                }
            }
            message = messages.next() => match message {
                Some(Ok(Message::Binary(reply))) => {
                    if let Err(why) = deliver(&mut pending, reply, &peer) {
                        lost(&mut pending, why);
                        return Some(());
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    lost(&mut pending, TransportError::ConnectionLost { peer: peer.clone(), source: None });
                    return Some(());
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    lost(&mut pending, map_ws(&peer, err));
                    return Some(());
                }
            },
        }
    }
}

/// Hands a reply to its request; a reply for a request that gave up is dropped.
fn deliver(pending: &mut Pending, reply: Bytes, peer: &str) -> Result<(), TransportError> {
    let malformed = || TransportError::Malformed {
        peer: peer.to_owned(),
        reason: "reply shorter than its header".to_owned(),
    };
    let id = reply
        .get(..ID_LEN)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(malformed)?;
    let status = *reply.get(ID_LEN).ok_or_else(malformed)?;
    let frame = reply.slice(ID_LEN + 1..);
    let Some(waiting) = pending.remove(&id) else {
        return Ok(());
    };
    let result = match status {
        STATUS_OK => Ok(frame),
        STATUS_TOO_LARGE => {
            let field = |at: usize| {
                frame
                    .get(at..at + 8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_be_bytes)
            };
            Err(TransportError::FrameTooLarge {
                peer: peer.to_owned(),
                len: field(0),
                max: usize::try_from(field(8)).unwrap_or(usize::MAX),
            })
        }
        other => Err(TransportError::Malformed {
            peer: peer.to_owned(),
            reason: format!("unknown reply status {other}"),
        }),
    };
    let _ = waiting.send(result);
    Ok(())
}
