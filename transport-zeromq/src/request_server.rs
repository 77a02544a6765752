//! The request server: a ROUTER (Salt's 4506) serving every request through
//! the handler, with one reply per request.
//!
//! Clients reach the socket through the [`crate::relay`] module, which
//! enforces the size limits before the crate sees a byte and names each
//! connection (so [`Peer::addr`] is known).
//!
//! One task owns the socket. It receives, splits each message into routing
//! envelope and body ([`crate::envelope`]), and spawns the handler call into
//! a [`JoinSet`] whose size is capped at [`Limits::max_in_flight`] (the join
//! set's length is the semaphore): at the cap it stops reading, so further
//! requests wait in zeromq's and the kernel's buffers (back-pressure). Each
//! handler task returns its reply through the join set — the bounded funnel
//! back to the socket-owning task — which prepends the envelope and sends
//! it. A handler that panics still gets its request answered, with
//! [`BAD_LOAD`].
//!
//! [`Limits::max_in_flight`]: brine_transport_api::Limits

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use brine_transport_api::{Peer, RequestHandler, RequestServer, ServerOptions, TransportError};
use bytes::Bytes;
use tokio::task::{self, JoinSet};
use zeromq::{RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::{
    envelope::{
        self, BAD_LOAD, ErrorTrailer, Inbound, MAX_ENVELOPE_BYTES, MAX_ENVELOPE_FRAMES, Marker,
    },
    error::from_zmq,
    guard,
    relay::{self, Internal, Policy, Relay},
    socket,
    task::{StopSignal, Worker},
};

/// How long one reply may wait for room in its peer's zeromq send queue
/// before it is dropped: only a peer that stopped reading fills that queue
/// (and the relay disconnects it first).
const REPLY_SEND_TIMEOUT: Duration = Duration::from_millis(200);

/// The ROUTER end of the request channel.
#[derive(Debug)]
pub(crate) struct ZmqRequestServer {
    local_addr: SocketAddr,
    relay: Relay,
    worker: Worker,
}

impl ZmqRequestServer {
    /// Binds `opts.bind` and starts serving through `handler`.
    pub(crate) async fn bind(
        opts: ServerOptions,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Self, TransportError> {
        let (public, local_addr) = socket::bind_listener(opts.bind)?;
        let (internal, listener) = Internal::bind()?;
        let mut router = RouterSocket::new();
        router
            .bind_listener(listener)
            .await
            .map_err(|err| from_zmq(&local_addr.to_string(), "bind", err))?;
        let marker = Marker::random();
        let max_body = opts.limits.max_frame_size;
        let max_body_u64 = u64::try_from(max_body).unwrap_or(u64::MAX);
        let policy = Policy {
            role: "request",
            inbound: guard::Limits {
                max_frame: max_body_u64,
                marker,
                // The envelope on the wire lacks the identity frame; leave
                // room for a few extra body frames to be refused politely.
                max_frames: MAX_ENVELOPE_FRAMES + 2,
                max_message: max_body_u64
                    .saturating_add(u64::try_from(MAX_ENVELOPE_BYTES).unwrap_or(u64::MAX)),
            },
            queue_depth: opts.limits.queue_depth,
        };
        let relay = Relay::start(public, internal, policy)?;
        tracing::info!(addr = %local_addr, "zeromq request server listening");
        let serve = Serve {
            router,
            handler,
            max_body,
            marker,
            max_in_flight: opts.limits.max_in_flight.max(1),
            tasks: JoinSet::new(),
            waiting: HashMap::new(),
        };
        let worker = Worker::spawn(|stop| serve.run(stop));
        Ok(Self {
            local_addr,
            relay,
            worker,
        })
    }
}

#[async_trait]
impl RequestServer for ZmqRequestServer {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.relay.stop().await;
        self.worker.stop().await;
        self.relay.remove_internal();
        Ok(())
    }
}

/// The socket-owning task's state.
struct Serve {
    router: RouterSocket,
    handler: Arc<dyn RequestHandler>,
    max_body: usize,
    marker: Marker,
    max_in_flight: usize,
    /// Handler calls in flight; each returns its reply.
    tasks: JoinSet<Bytes>,
    /// Where each in-flight call's reply goes, by task id.
    waiting: HashMap<task::Id, Inbound>,
}

impl Serve {
    async fn run(mut self, mut stop: StopSignal) {
        loop {
            let can_read = self.tasks.len() < self.max_in_flight;
            tokio::select! {
                biased;
                _ = &mut stop => break,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finish(done).await;
                }
                received = self.router.recv(), if can_read => match received {
                    Ok(message) => self.dispatch(message).await,
                    Err(err) => {
                        tracing::warn!(error = %err, "zeromq request server receive failed");
                        tokio::task::yield_now().await;
                    }
                },
            }
        }
        self.tasks.shutdown().await;
        let errors = self.router.close().await;
        for err in errors {
            tracing::debug!(error = %err, "zeromq request server unbind");
        }
        tracing::info!("zeromq request server closed");
    }

    /// Validates one received message and starts its handler, or refuses it.
    async fn dispatch(&mut self, message: ZmqMessage) {
        let peer = Peer {
            addr: message.get(0).and_then(|identity| relay::peer_of(identity)),
        };
        match envelope::split_request(message.into_vec(), self.max_body, &self.marker) {
            Ok((inbound, body)) => {
                tracing::trace!(%peer, len = body.len(), "request received");
                let handler = Arc::clone(&self.handler);
                let handle = self
                    .tasks
                    .spawn(async move { handler.handle(body, peer).await });
                self.waiting.insert(handle.id(), inbound);
            }
            Err((inbound, refusal)) => {
                tracing::warn!(%peer, reason = %refusal.describe(), "request refused");
                if let Some(inbound) = inbound {
                    let trailer = refusal.trailer();
                    self.send(inbound, Bytes::from_static(BAD_LOAD), Some(&trailer))
                        .await;
                }
            }
        }
    }

    /// Sends the reply of a finished handler call.
    async fn finish(&mut self, done: Result<(task::Id, Bytes), task::JoinError>) {
        let (id, reply, trailer) = match done {
            Ok((id, reply)) if reply.len() <= self.max_body => (id, reply, None),
            Ok((id, reply)) => {
                let len = u64::try_from(reply.len()).unwrap_or(u64::MAX);
                tracing::warn!(
                    len,
                    max = self.max_body,
                    "reply over the size limit refused"
                );
                let trailer = ErrorTrailer::FrameTooLarge {
                    len,
                    max: self.max_body,
                };
                (id, Bytes::from_static(BAD_LOAD), Some(trailer))
            }
            Err(err) => {
                tracing::error!(error = %err, "request handler failed");
                let trailer = ErrorTrailer::Malformed("request handler failed".to_owned());
                (err.id(), Bytes::from_static(BAD_LOAD), Some(trailer))
            }
        };
        if let Some(inbound) = self.waiting.remove(&id) {
            self.send(inbound, reply, trailer.as_ref()).await;
        }
    }

    /// Sends one reply, giving up on a peer whose queue stays full.
    async fn send(&mut self, inbound: Inbound, body: Bytes, trailer: Option<&ErrorTrailer>) {
        let frames = envelope::reply_frames(inbound, body, trailer);
        let Some(message) = socket::message(frames) else {
            return;
        };
        match tokio::time::timeout(REPLY_SEND_TIMEOUT, self.router.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(error = %err, "reply not sent: peer gone"),
            Err(_) => tracing::warn!(
                reason = "peer's send queue stayed full",
                "reply dropped for a client that does not read its replies"
            ),
        }
    }
}
