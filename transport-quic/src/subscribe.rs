//! The subscriber's side of the publish channel: a task that subscribes
//! whenever its link is up, forwards frames into a bounded queue, and
//! reports each transition as [`Received::Connected`] /
//! [`Received::Disconnected`], resubscribing with backoff until closed.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use brine_transport_api::{Backoff, Limits, PublishClient, Received, TransportError};
use bytes::Bytes;
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{mpsc, watch};

use crate::{
    error,
    link::{self, Link, LinkState},
    wire::{self, code},
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A minion's end of the publish channel.
#[derive(Debug)]
pub(crate) struct QuicPublishClient {
    received: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    link: Mutex<Option<Arc<Link>>>,
    closed: AtomicBool,
}

impl QuicPublishClient {
    /// Starts subscribing over `link` as `identity`.
    pub(crate) fn start(
        link: Arc<Link>,
        identity: String,
        limits: Limits,
        backoff: Backoff,
        hello_timeout: Duration,
    ) -> Self {
        let (events, received) = mpsc::channel(limits.queue_depth.max(1));
        let subscription = Subscription {
            peer: link.peer().to_owned(),
            state: link.watch(),
            identity,
            max_frame: limits.max_frame_size,
            backoff,
            hello_timeout,
            events,
        };
        let task = tokio::spawn(subscription.run());
        Self {
            received: tokio::sync::Mutex::new(received),
            task: Mutex::new(Some(task)),
            link: Mutex::new(Some(link)),
            closed: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl PublishClient for QuicPublishClient {
    async fn recv(&self) -> Result<Received, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let mut received = self.received.lock().await;
        match received.recv().await {
            Some(item) if !self.closed.load(Ordering::Acquire) => Ok(item),
            _ => Err(TransportError::Closed),
        }
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        let link = lock(&self.link).take();
        if let Some(link) = link {
            link::release(link).await;
        }
        Ok(())
    }
}

impl Drop for QuicPublishClient {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

/// The client's subscription task: subscribe whenever the link is up,
/// forward frames, report transitions.
struct Subscription {
    peer: String,
    state: watch::Receiver<LinkState>,
    identity: String,
    max_frame: usize,
    backoff: Backoff,
    hello_timeout: Duration,
    events: mpsc::Sender<Received>,
}

impl Subscription {
    async fn run(mut self) {
        let mut failures: u32 = 0;
        loop {
            let Some(conn) = self.next_connection().await else {
                return;
            };
            match self.subscribe(&conn).await {
                Ok((send, mut recv)) => {
                    failures = 0;
                    if self.events.send(Received::Connected).await.is_err() {
                        return;
                    }
                    tracing::debug!(peer = %self.peer, "subscription live");
                    let Some(reason) = self.pump(&mut recv).await else {
                        return;
                    };
                    drop(send);
                    tracing::info!(peer = %self.peer, %reason, "subscription lost; resubscribing");
                    if self
                        .events
                        .send(Received::Disconnected { reason })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(err) => {
                    tracing::debug!(peer = %self.peer, error = %error::chain(&err), "subscribe failed");
                }
            }
            // On a live connection the server refused or dropped us: back
            // off here. A dead connection is the link's to re-establish.
            if conn.close_reason().is_none() {
                tokio::time::sleep(self.backoff.delay(failures)).await;
                failures = failures.saturating_add(1);
            }
        }
    }

    /// The next live connection; `None` when the link is gone.
    async fn next_connection(&mut self) -> Option<Connection> {
        loop {
            let current = self.state.borrow_and_update().clone();
            if let LinkState::Up { conn } = current
                && conn.close_reason().is_none()
            {
                return Some(conn);
            }
            self.state.changed().await.ok()?;
        }
    }

    async fn subscribe(
        &self,
        conn: &Connection,
    ) -> Result<(SendStream, RecvStream), TransportError> {
        let peer = &self.peer;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| error::connection(peer, e, None))?;
        let identity = Bytes::copy_from_slice(self.identity.as_bytes());
        let lead = wire::lead(
            wire::KIND_SUBSCRIBE,
            identity.len(),
            wire::MAX_IDENTITY,
            peer,
        )?;
        send.write_all_chunks(&mut [lead, identity])
            .await
            .map_err(|e| error::write(peer, e))?;
        let ack = tokio::time::timeout(self.hello_timeout, wire::read_array::<1>(&mut recv, peer))
            .await
            .map_err(|_| error::timeout(peer, self.hello_timeout))??;
        match ack {
            Some([wire::HELLO_ACK]) => Ok((send, recv)),
            Some(_) => Err(error::backend(error::Error::Protocol(
                "unexpected answer to the subscription hello".to_owned(),
            ))),
            None => Err(error::lost(
                peer,
                "subscription ended before it was acknowledged",
            )),
        }
    }

    /// Forwards frames until the stream fails (returns why) or the client
    /// is gone (`None`).
    async fn pump(&self, recv: &mut RecvStream) -> Option<String> {
        loop {
            match wire::read_frame(recv, self.max_frame, &self.peer).await {
                Ok(Some(frame)) => {
                    if self.events.send(Received::Frame(frame)).await.is_err() {
                        return None;
                    }
                }
                Ok(None) => return Some("the server ended the subscription".to_owned()),
                Err(err) => {
                    if matches!(err, TransportError::FrameTooLarge { .. }) {
                        let _ = recv.stop(code::TOO_LARGE);
                    }
                    return Some(error::chain(&err));
                }
            }
        }
    }
}
