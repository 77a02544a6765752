//! The request channel: one bidirectional stream per request, so many
//! requests are in flight on one connection and a reply can never be
//! handed to the wrong request.
//!
//! The server reads the length prefix first and refuses a frame over its
//! limit with a `TOO_LARGE` status (the client turns it into
//! [`TransportError::FrameTooLarge`]) without reading or allocating the
//! payload, and goes on serving. Handler calls are bounded by
//! [`Limits::max_in_flight`] server-wide (a semaphore) and per connection
//! (QUIC's concurrent-stream limit, so a client waits for stream credit
//! rather than piling up work).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use brine_transport_api::{
    Limits, Peer, RequestClient, RequestHandler, RequestServer, TransportError,
};
use bytes::Bytes;
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{RwLock, Semaphore, watch};

use crate::{
    error::{self, Error},
    link::{self, Link},
    server::{Role, ServerEndpoint},
    wire::{self, code},
};

/// How long a request may stall mid-frame before the server gives up on it
/// (and frees its slot in `max_in_flight`).
const PAYLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The request service bound at an endpoint.
pub(crate) struct Service {
    handler: Arc<dyn RequestHandler>,
    limits: Limits,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Service {
    pub(crate) fn new(handler: Arc<dyn RequestHandler>, limits: Limits) -> Self {
        Self {
            handler,
            limits,
            permits: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
        }
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.limits.max_in_flight
    }

    /// Serves one request stream (after its kind byte).
    pub(crate) async fn serve(&self, peer: SocketAddr, mut send: SendStream, mut recv: RecvStream) {
        let peer_text = peer.to_string();
        let max = self.limits.max_frame_size;
        let announced = match wire::read_len(&mut recv, &peer_text).await {
            Ok(Some(len)) => len,
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(%peer, error = %error::chain(&err), "request stream failed");
                return;
            }
        };
        let Ok(len) = wire::check_len(announced, max, &peer_text) else {
            tracing::warn!(%peer, len = announced, max, "request over the frame limit refused");
            let _ = recv.stop(code::TOO_LARGE);
            reply(
                &mut send,
                wire::too_large(wire::STATUS_TOO_LARGE, announced, max),
                None,
            )
            .await;
            return;
        };
        // Bounds handler calls and buffered requests across the server.
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let request =
            match wire::read_payload_within(&mut recv, len, &peer_text, Some(PAYLOAD_IDLE_TIMEOUT))
                .await
            {
                Ok(request) => request,
                Err(err) => {
                    tracing::debug!(%peer, error = %error::chain(&err), "request truncated");
                    return;
                }
            };
        tracing::trace!(%peer, len, "request received");
        let answer = self
            .handler
            .handle(request, Peer { addr: Some(peer) })
            .await;
        drop(permit);
        if answer.len() > max {
            tracing::warn!(%peer, len = answer.len(), max, "reply over the frame limit not sent");
            let len = u64::try_from(answer.len()).unwrap_or(u64::MAX);
            reply(
                &mut send,
                wire::too_large(wire::STATUS_REPLY_TOO_LARGE, len, max),
                None,
            )
            .await;
            return;
        }
        match wire::lead(wire::STATUS_OK, answer.len(), max, &peer_text) {
            Ok(lead) => reply(&mut send, lead, Some(answer)).await,
            Err(err) => tracing::warn!(%peer, error = %err, "reply not sent"),
        }
    }
}

async fn reply(send: &mut SendStream, head: Bytes, body: Option<Bytes>) {
    let mut chunks = match body {
        Some(body) => vec![head, body],
        None => vec![head],
    };
    if send.write_all_chunks(&mut chunks).await.is_ok() {
        let _ = send.finish();
    }
}

/// The master's end of the request channel.
#[derive(Debug)]
pub(crate) struct QuicRequestServer {
    addr: SocketAddr,
    endpoint: Mutex<Option<Arc<ServerEndpoint>>>,
}

impl QuicRequestServer {
    pub(crate) fn new(endpoint: Arc<ServerEndpoint>) -> Self {
        Self {
            addr: endpoint.local_addr(),
            endpoint: Mutex::new(Some(endpoint)),
        }
    }
}

#[async_trait]
impl RequestServer for QuicRequestServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn close(&self) -> Result<(), TransportError> {
        let endpoint = lock(&self.endpoint).take();
        if let Some(endpoint) = endpoint
            && endpoint.detach(Role::Requests)
        {
            endpoint.released().await;
        }
        Ok(())
    }
}

impl Drop for QuicRequestServer {
    fn drop(&mut self) {
        if let Some(endpoint) = lock(&self.endpoint).take() {
            endpoint.detach(Role::Requests);
        }
    }
}

/// A client's end of the request channel.
#[derive(Debug)]
pub(crate) struct QuicRequestClient {
    peer: String,
    max_frame: usize,
    /// Requests hold a read lock for their whole exchange, so `close` (the
    /// writer) knows when the last one has let go of the link.
    link: RwLock<Option<Arc<Link>>>,
    closing: watch::Sender<bool>,
}

impl QuicRequestClient {
    pub(crate) fn new(link: Arc<Link>, limits: Limits) -> Self {
        Self {
            peer: link.peer().to_owned(),
            max_frame: limits.max_frame_size,
            link: RwLock::new(Some(link)),
            closing: watch::Sender::new(false),
        }
    }

    async fn attempt(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        let guard = self.link.read().await;
        let link = guard.as_ref().ok_or(TransportError::Closed)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || error::timeout(&self.peer, timeout);
        let conn = tokio::time::timeout_at(deadline, link.connection())
            .await
            .map_err(|_| timed_out())??;
        tokio::time::timeout_at(deadline, exchange(&conn, frame, self.max_frame, &self.peer))
            .await
            .map_err(|_| timed_out())?
    }
}

#[async_trait]
impl RequestClient for QuicRequestClient {
    async fn request(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        if frame.len() > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                peer: self.peer.clone(),
                len: u64::try_from(frame.len()).unwrap_or(u64::MAX),
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
        let link = self.link.write().await.take();
        if let Some(link) = link {
            link::release(link).await;
        }
        Ok(())
    }
}

/// Resets both halves of a request stream unless the exchange completed,
/// so a timed-out or cancelled request stops the server's work on it.
struct Exchange {
    send: SendStream,
    recv: RecvStream,
    done: bool,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.send.reset(code::CANCELLED);
            let _ = self.recv.stop(code::CANCELLED);
        }
    }
}

/// Sends one request on its own stream and reads its reply.
async fn exchange(
    conn: &Connection,
    frame: Bytes,
    max: usize,
    peer: &str,
) -> Result<Bytes, TransportError> {
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| error::connection(peer, e, None))?;
    let mut stream = Exchange {
        send,
        recv,
        done: false,
    };
    let lead = wire::lead(wire::KIND_REQUEST, frame.len(), max, peer)?;
    match stream.send.write_all_chunks(&mut [lead, frame]).await {
        Ok(()) => {
            let _ = stream.send.finish();
        }
        // The server refused the request; its status says why.
        Err(quinn::WriteError::Stopped(_)) => {}
        Err(err) => return Err(error::write(peer, err)),
    }
    let status = wire::read_array::<1>(&mut stream.recv, peer)
        .await?
        .ok_or_else(|| error::lost(peer, "the server closed the request without a reply"))?;
    let result = match status {
        [wire::STATUS_OK] => match wire::read_frame(&mut stream.recv, max, peer).await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(error::lost(peer, "the reply was missing")),
            Err(err) => Err(err),
        },
        [wire::STATUS_TOO_LARGE | wire::STATUS_REPLY_TOO_LARGE] => {
            let refusal = wire::read_array::<16>(&mut stream.recv, peer)
                .await?
                .ok_or_else(|| error::lost(peer, "truncated refusal"))?;
            let (len, limit) = refusal.split_at(8);
            let len = u64::from_be_bytes(len.try_into().unwrap_or([0; 8]));
            let limit = u64::from_be_bytes(limit.try_into().unwrap_or([0; 8]));
            Err(TransportError::FrameTooLarge {
                peer: peer.to_owned(),
                len,
                max: usize::try_from(limit).unwrap_or(usize::MAX),
            })
        }
        [wire::STATUS_NO_SERVICE] => Err(TransportError::ConnectionRefused {
            peer: peer.to_owned(),
        }),
        [other] => Err(error::backend(Error::Protocol(format!(
            "unknown reply status {other:#04x}"
        )))),
    };
    // A reply cut short (or over our limit) leaves the stream to be stopped.
    stream.done = status != [wire::STATUS_OK] || result.is_ok();
    result
}
