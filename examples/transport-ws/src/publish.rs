//! The publish channel over WebSocket: one connection per subscriber, a
//! bounded queue per subscriber on the server, a hello carrying the
//! subscriber's identity for targeted publishes.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use brine_transport_api::{
    Audience, ClientOptions, Limits, PublishClient, PublishServer, Received, ServerOptions,
    TransportError,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    task::JoinSet,
};
use tokio_tungstenite::{WebSocketStream, accept_async_with_config, tungstenite::Message};
use tracing::{debug, warn};

use crate::wire::{
    ClientTask, HANDSHAKE_TIMEOUT, MAX_HELLO, ServerTask, WELCOME, connect, ws_config,
};

const PATH: &str = "/publish";

/// The live subscribers and their queues.
#[derive(Debug)]
struct Hub {
    limits: Limits,
    subscribers: Mutex<HashMap<u64, Subscriber>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

#[derive(Debug)]
struct Subscriber {
    identity: String,
    queue: mpsc::Sender<Bytes>,
    /// Dropped with the subscriber: its connection task then ends at once,
    /// even while blocked writing to a peer that stopped reading.
    _kick: oneshot::Sender<()>,
}

/// What a connection task needs once its subscriber is registered.
struct Attached {
    id: u64,
    queue: mpsc::Receiver<Bytes>,
    kicked: oneshot::Receiver<()>,
}

impl Hub {
    fn subscribers(&self) -> MutexGuard<'_, HashMap<u64, Subscriber>> {
        // Plain data; a panic elsewhere cannot leave it torn.
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn attach(&self, identity: String) -> Option<Attached> {
        let mut subscribers = self.subscribers();
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, rx) = mpsc::channel(self.limits.queue_depth.max(1));
        let (kick, kicked) = oneshot::channel();
        subscribers.insert(
            id,
            Subscriber {
                identity,
                queue,
                _kick: kick,
            },
        );
        Some(Attached {
            id,
            queue: rx,
            kicked,
        })
    }

    fn detach(&self, id: u64) {
        self.subscribers().remove(&id);
    }
}

/// The master's end of the publish channel.
#[derive(Debug)]
pub(crate) struct WsPublishServer {
    addr: SocketAddr,
    hub: Arc<Hub>,
    task: ServerTask,
}

impl WsPublishServer {
    pub(crate) async fn bind(opts: ServerOptions) -> Result<Self, TransportError> {
        let bind_err = |source| TransportError::Bind {
            addr: opts.bind.to_string(),
            source,
        };
        let listener = TcpListener::bind(opts.bind).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let hub = Arc::new(Hub {
            limits: opts.limits,
            subscribers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept(listener, stopped, hub.clone()));
        debug!(%addr, "ws publisher listening");
        Ok(Self {
            addr,
            hub,
            task: ServerTask::new(stop, task),
        })
    }
}

#[async_trait]
impl PublishServer for WsPublishServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn publish(&self, frame: Bytes, audience: &Audience) -> Result<(), TransportError> {
        if self.hub.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let max = self.hub.limits.max_frame_size;
        if frame.len() > max {
            return Err(TransportError::FrameTooLarge {
                peer: self.addr.to_string(),
                len: frame.len() as u64,
                max,
            });
        }
        let depth = self.hub.limits.queue_depth;
        self.hub.subscribers().retain(|_, sub| {
            if !audience.includes(&sub.identity) {
                return true;
            }
            match sub.queue.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(identity = %sub.identity, queue_depth = depth,
                        "subscriber fell behind its queue; disconnected so it delays nobody");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        Ok(())
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.hub.closed.store(true, Ordering::Release);
        self.hub.subscribers().clear();
        self.task.stop().await;
        Ok(())
    }
}

impl Drop for WsPublishServer {
    fn drop(&mut self) {
        self.hub.closed.store(true, Ordering::Release);
        self.hub.subscribers().clear();
    }
}

async fn accept(listener: TcpListener, mut stopped: oneshot::Receiver<()>, hub: Arc<Hub>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(serve(stream, peer, hub.clone()));
                }
                Err(err) => {
                    warn!(error = %err, "ws publisher accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

/// Handshake and hello, then forwards the subscriber's queue to it until
/// either side ends or the subscriber is dropped for lagging.
async fn serve(stream: TcpStream, peer: SocketAddr, hub: Arc<Hub>) {
    let greeted = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut ws = accept_async_with_config(stream, Some(ws_config(MAX_HELLO)))
            .await
            .map_err(|err| err.to_string())?;
        let identity = match ws.next().await {
            Some(Ok(Message::Binary(hello))) => {
                String::from_utf8(hello.to_vec()).map_err(|_| "hello is not UTF-8".to_owned())?
            }
            other => return Err(format!("expected a hello, got {other:?}")),
        };
        Ok((ws, identity))
    })
    .await;
    let (mut ws, identity) = match greeted {
        Ok(Ok(greeted)) => greeted,
        Ok(Err(why)) => {
            debug!(%peer, reason = %why, "ws subscriber handshake failed; connection dropped");
            return;
        }
        Err(_) => {
            debug!(%peer, "ws subscriber handshake timed out; connection dropped");
            return;
        }
    };
    let Some(attached) = hub.attach(identity.clone()) else {
        return; // The server is closing.
    };
    let Attached {
        id,
        queue,
        mut kicked,
    } = attached;
    if ws.send(Message::text(WELCOME)).await.is_ok() {
        debug!(%peer, %identity, "ws subscriber live");
        tokio::select! {
            _ = &mut kicked => debug!(%peer, %identity, "ws subscriber dropped"),
            _ = forward(ws, queue) => {}
        }
    }
    hub.detach(id);
}

async fn forward(ws: WebSocketStream<TcpStream>, mut queue: mpsc::Receiver<Bytes>) {
    let (mut sink, mut messages) = ws.split();
    loop {
        tokio::select! {
            frame = queue.recv() => match frame {
                Some(frame) => {
                    if sink.send(Message::Binary(frame)).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            },
            message = messages.next() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// A minion's end: a background task connects, says hello, forwards
/// frames into a bounded queue, and reconnects with backoff.
#[derive(Debug)]
pub(crate) struct WsPublishClient {
    received: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    closed: AtomicBool,
    task: ClientTask,
}

impl WsPublishClient {
    pub(crate) fn start(opts: ClientOptions) -> Self {
        let (out, received) = mpsc::channel(opts.limits.queue_depth.max(1));
        let task = tokio::spawn(follow(opts, out));
        Self {
            received: tokio::sync::Mutex::new(received),
            closed: AtomicBool::new(false),
            task: ClientTask::new(task),
        }
    }
}

#[async_trait]
impl PublishClient for WsPublishClient {
    async fn recv(&self) -> Result<Received, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        // Only the queue is behind this lock, and its `recv` is cancel safe.
        self.received
            .lock()
            .await
            .recv()
            .await
            .ok_or(TransportError::Closed)
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        self.task.stop().await;
        Ok(())
    }
}

async fn follow(opts: ClientOptions, out: mpsc::Sender<Received>) {
    let mut attempt = 0;
    loop {
        match subscribe(&opts).await {
            Ok(ws) => {
                attempt = 0;
                if out.send(Received::Connected).await.is_err() {
                    return;
                }
                let Some(reason) = pump(ws, &out).await else {
                    return; // The client is gone.
                };
                debug!(server = %opts.connect, %reason, "ws subscription lost");
                if out.send(Received::Disconnected { reason }).await.is_err() {
                    return;
                }
            }
            Err(err) => debug!(server = %opts.connect, error = %err, "ws subscribe failed"),
        }
        tokio::time::sleep(opts.backoff.delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Connects, says hello and waits for the welcome.
async fn subscribe(opts: &ClientOptions) -> Result<WebSocketStream<TcpStream>, TransportError> {
    let peer = opts.connect.to_string();
    let mut ws = connect(
        opts.connect,
        PATH,
        opts.limits.max_frame_size,
        opts.connect_timeout,
    )
    .await?;
    let greeted = async {
        ws.send(Message::Binary(Bytes::from(opts.identity.clone())))
            .await
            .map_err(|err| crate::error::map_ws(&peer, err))?;
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.as_str() == WELCOME => Ok(()),
            Some(Err(err)) => Err(crate::error::map_ws(&peer, err)),
            _ => Err(TransportError::Malformed {
                peer: peer.clone(),
                reason: "no welcome after hello".to_owned(),
            }),
        }
    };
    tokio::time::timeout(opts.connect_timeout, greeted)
        .await
        .map_err(|_| TransportError::Timeout {
            peer: peer.clone(),
            after: opts.connect_timeout,
        })??;
    Ok(ws)
}

/// Forwards frames until the connection ends (`Some(reason)`) or the
/// client is gone (`None`). Blocks while the queue is full, so a client
/// that stops reading stops reading the socket too and the server, seeing
/// its own queue fill, drops it.
async fn pump(mut ws: WebSocketStream<TcpStream>, out: &mpsc::Sender<Received>) -> Option<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(frame))) => {
                out.send(Received::Frame(frame)).await.ok()?;
            }
            Some(Ok(Message::Close(_))) | None => {
                return Some("server closed the connection".into());
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Some(err.to_string()),
        }
    }
}
