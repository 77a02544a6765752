//! The subscriber: a driver task keeps a connection subscribed through the
//! client's [`Link`] (its own, or one shared with the request client),
//! reports state changes, and reconnects with backoff until closed.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use brine_transport_api::{Backoff, ClientOptions, PublishClient, Received, TransportError};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, debug_span, info, warn};

use super::encode_hello;
use crate::{
    link::{Attached, Kind, Link, Links, Session},
    net::OwnedTask,
};

/// The TCP [`PublishClient`].
#[derive(Debug)]
pub(crate) struct Client {
    received: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    closed: AtomicBool,
    task: Mutex<Option<OwnedTask>>,
    attached: Attached,
}

/// Starts a subscriber for the server in `opts`; it connects in the background.
///
/// # Errors
/// Invalid settings, TLS material or identity; never "server not up".
pub(crate) async fn subscribe(
    links: &Links,
    opts: ClientOptions,
) -> Result<Client, TransportError> {
    encode_hello(&opts.identity)?;
    let attached = Link::obtain(links, &opts, Kind::Publish).await?;
    // Frames wait in the connection's queue of `queue_depth`; this one only
    // hands them over one by one.
    let (events, received) = mpsc::channel(1);
    let span = debug_span!("subscriber", server = %opts.connect, minion = %opts.identity);
    let driver = Driver {
        link: Arc::clone(attached.link()),
        side: attached.side(),
        backoff: opts.backoff,
        events,
    };
    let task = OwnedTask::spawn(driver.run().instrument(span));
    Ok(Client {
        received: tokio::sync::Mutex::new(received),
        closed: AtomicBool::new(false),
        task: Mutex::new(Some(task)),
        attached,
    })
}

#[async_trait]
impl PublishClient for Client {
    async fn recv(&self) -> Result<Received, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let mut received = self.received.lock().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        // `None` once the driver is gone, which only `close` (or drop) does.
        received.recv().await.ok_or(TransportError::Closed)
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.stop().await;
        }
        self.attached.leave().await;
        Ok(())
    }
}

/// The background task: get a subscribed connection, pass its frames on,
/// report its end, back off, repeat.
struct Driver {
    link: Arc<Link>,
    side: u64,
    backoff: Backoff,
    events: mpsc::Sender<Received>,
}

impl Driver {
    async fn run(self) {
        let mut attempt = 0u32;
        let mut installed = self.link.installed();
        loop {
            let session = self.link.publish_conn(self.side).await;
            // Our own install is no news; one by the request client is.
            installed.borrow_and_update();
            match session {
                Ok(Session::Subscribed(feed)) => {
                    info!("subscribed");
                    if self.events.send(Received::Connected).await.is_err() {
                        return;
                    }
                    let mut frames = feed.frames;
                    while let Some(frame) = frames.recv().await {
                        if self.events.send(Received::Frame(frame)).await.is_err() {
                            return;
                        }
                    }
                    let reason = feed.ended.reason().await;
                    info!(reason = %reason, "subscription lost; reconnecting");
                    attempt = 0;
                    if self
                        .events
                        .send(Received::Disconnected { reason })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Session::RequestsOnly(ended)) => {
                    debug!(
                        "no publish server at this address now; waiting for the connection to change"
                    );
                    ended.reason().await;
                }
                Err(TransportError::Closed) => return,
                Err(err @ TransportError::Tls { .. }) => {
                    warn!(error = %err, attempt, "cannot subscribe; retrying");
                }
                Err(err) => {
                    debug!(error = %err, attempt, "cannot subscribe; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.backoff.delay(attempt)) => {}
                // A connection the request client opened may carry us.
                Ok(()) = installed.changed() => {}
            }
            attempt = attempt.saturating_add(1);
        }
    }
}
