//! The publish client: a SUB with the minion id as its identity.
//!
//! One task owns the socket. It subscribes (`b""`, or `b"broadcast"` and the
//! minion's SHA-1 topic under `zmq_filtering`) before connecting, so the
//! subscription goes out as part of the connection; then it reports
//! [`Received::Connected`]. The `zeromq` crate's SUB would reconnect by
//! itself, but with its own fixed backoff (100 ms doubling to 30 s) and no
//! way to configure it; so on the monitor's disconnect event the task drops
//! the socket, reports [`Received::Disconnected`], waits the configured
//! [`Backoff`] and connects a fresh one — forever, until `close`.
//!
//! Frames reach `recv` through a queue of [`Limits::queue_depth`] entries;
//! when it is full the task stops reading the socket, so the backlog stays
//! in TCP and, beyond that, in the publisher's per-subscriber queue, which
//! drops (ZeroMQ's high-water-mark behaviour).
//!
//! [`Limits::queue_depth`]: brine_transport_api::Limits

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use brine_transport_api::{Backoff, ClientOptions, PublishClient, Received, TransportError};
use futures_util::{StreamExt, stream::BoxStream};
use tokio::sync::{Mutex, mpsc};
use zeromq::{Socket, SocketEvent, SocketRecv, SubSocket, ZmqMessage};

use crate::{
    socket,
    task::{StopSignal, Worker},
    topic,
};

/// The SUB end of the publish channel.
#[derive(Debug)]
pub(crate) struct ZmqPublishClient {
    received: Mutex<mpsc::Receiver<Received>>,
    closed: AtomicBool,
    worker: Worker,
}

impl ZmqPublishClient {
    /// Starts the subscriber; it connects in the background.
    pub(crate) fn subscribe(opts: ClientOptions, filtering: bool) -> Self {
        let (deliver, received) = mpsc::channel(opts.limits.queue_depth.max(1));
        let drive = Drive {
            peer: opts.connect.to_string(),
            endpoint: socket::endpoint(opts.connect),
            subscriptions: topic::subscriptions(&opts.identity, filtering),
            identity: opts.identity,
            connect_timeout: opts.connect_timeout,
            backoff: opts.backoff,
            max_frame: opts.limits.max_frame_size,
            deliver,
        };
        let worker = Worker::spawn(|stop| drive.run(stop));
        Self {
            received: Mutex::new(received),
            closed: AtomicBool::new(false),
            worker,
        }
    }
}

#[async_trait]
impl PublishClient for ZmqPublishClient {
    async fn recv(&self) -> Result<Received, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let mut received = self.received.lock().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        received.recv().await.ok_or(TransportError::Closed)
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        self.worker.stop().await;
        Ok(())
    }
}

/// How a connection ended.
enum Ended {
    Stop,
    Lost(String),
}

/// The socket-owning task.
struct Drive {
    peer: String,
    endpoint: String,
    identity: String,
    subscriptions: Vec<String>,
    connect_timeout: Duration,
    backoff: Backoff,
    max_frame: usize,
    deliver: mpsc::Sender<Received>,
}

impl Drive {
    async fn run(self, mut stop: StopSignal) {
        let mut attempt: u32 = 0;
        loop {
            let options = socket::client_options(self.connect_timeout, &self.identity);
            let mut sub = SubSocket::with_options(options);
            let mut monitor = sub.monitor().boxed();
            for subscription in &self.subscriptions {
                // No peer yet: this only records the subscription, which the
                // crate sends as part of every connection handshake.
                if let Err(err) = sub.subscribe(subscription).await {
                    tracing::warn!(error = %err, "zeromq subscribe failed");
                }
            }
            let connected = tokio::select! {
                biased;
                _ = &mut stop => break,
                connected = sub.connect(&self.endpoint) => connected,
            };
            match connected {
                Ok(()) => {
                    attempt = 0;
                    tracing::debug!(peer = %self.peer, "subscriber connected");
                    if !self.deliver(Received::Connected, &mut stop).await {
                        break;
                    }
                    match self.serve(&mut sub, &mut monitor, &mut stop).await {
                        Ended::Stop => break,
                        Ended::Lost(reason) => {
                            drop(sub);
                            tracing::warn!(peer = %self.peer, %reason, "subscription lost, reconnecting");
                            if !self
                                .deliver(Received::Disconnected { reason }, &mut stop)
                                .await
                            {
                                break;
                            }
                        }
                    }
                }
                Err(err) => {
                    tracing::debug!(peer = %self.peer, error = %err, attempt, "subscriber connect failed");
                }
            }
            let delay = self.backoff.delay(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                biased;
                _ = &mut stop => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        tracing::debug!(peer = %self.peer, "subscriber closed");
    }

    /// Hands `item` to `recv`, waiting for room; `false` on stop or when the
    /// client is gone.
    async fn deliver(&self, item: Received, stop: &mut StopSignal) -> bool {
        tokio::select! {
            biased;
            _ = stop => false,
            sent = self.deliver.send(item) => sent.is_ok(),
        }
    }

    async fn serve(
        &self,
        sub: &mut SubSocket,
        monitor: &mut BoxStream<'static, SocketEvent>,
        stop: &mut StopSignal,
    ) -> Ended {
        loop {
            let message = tokio::select! {
                biased;
                _ = &mut *stop => return Ended::Stop,
                event = monitor.next() => match event {
                    Some(SocketEvent::Disconnected(_)) => {
                        return Ended::Lost("connection closed by the publisher".to_owned());
                    }
                    Some(_) => continue,
                    None => return Ended::Lost("socket monitor ended".to_owned()),
                },
                received = sub.recv() => match received {
                    Ok(message) => message,
                    Err(err) => return Ended::Lost(format!("receive failed: {err}")),
                },
            };
            if let Some(frame) = self.body(message)
                && !self.deliver(Received::Frame(frame), stop).await
            {
                return Ended::Stop;
            }
        }
    }

    /// The body of a published message: its only frame, or the second of
    /// `[topic, body]`; `None` (logged) for anything else or over the limit.
    fn body(&self, message: ZmqMessage) -> Option<bytes::Bytes> {
        let frames = message.into_vec();
        let count = frames.len();
        let body = match <[bytes::Bytes; 1]>::try_from(frames) {
            Ok([body]) => body,
            Err(frames) => match <[bytes::Bytes; 2]>::try_from(frames) {
                Ok([_topic, body]) => body,
                Err(_) => {
                    tracing::warn!(peer = %self.peer, frames = count, "published message with unexpected frames dropped");
                    return None;
                }
            },
        };
        if body.len() > self.max_frame {
            tracing::warn!(
                peer = %self.peer,
                len = body.len(),
                max = self.max_frame,
                "published frame over the size limit dropped"
            );
            return None;
        }
        Some(body)
    }
}
