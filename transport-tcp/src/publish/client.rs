//! The subscriber: connects in the background, announces its identity,
//! reports state changes, and reconnects with backoff until closed.

use std::sync::{
    Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use brine_transport_api::{
    Backoff, ClientOptions, PublishClient, Received, TransportError,
    framing::{discard, read_frame, write_frame},
};
use bytes::Bytes;
use tokio::{io::AsyncWriteExt, sync::mpsc};
use tracing::{Instrument, debug, debug_span, info, warn};

use super::{KIND_FRAME, KIND_WELCOME, MAX_HELLO, encode_hello};
use crate::net::{Dialer, OwnedTask};

/// The TCP [`PublishClient`].
#[derive(Debug)]
pub(crate) struct Client {
    received: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    closed: AtomicBool,
    task: Mutex<Option<OwnedTask>>,
}

/// Starts a subscriber for the server in `opts`; it connects in the background.
///
/// # Errors
/// Invalid settings, TLS material or identity; never "server not up".
pub(crate) async fn subscribe(opts: ClientOptions) -> Result<Client, TransportError> {
    let dialer = Dialer::new(&opts).await?;
    let hello = encode_hello(&opts.identity)?;
    let (events, received) = mpsc::channel(opts.limits.queue_depth.max(1));
    let span = debug_span!("subscriber", server = %opts.connect, minion = %opts.identity);
    let driver = Driver {
        dialer,
        hello,
        max_frame: opts.limits.max_frame_size,
        backoff: opts.backoff,
        events,
    };
    let task = OwnedTask::spawn(driver.run().instrument(span));
    Ok(Client {
        received: tokio::sync::Mutex::new(received),
        closed: AtomicBool::new(false),
        task: Mutex::new(Some(task)),
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
        Ok(())
    }
}

/// How a connection ended.
enum Ended {
    /// It never became a subscription.
    NotConnected(TransportError),
    /// An established subscription broke.
    Lost(String),
    /// Nobody holds the client any more.
    ClientGone,
}

/// The background task's state: dial, hello, welcome, read frames, repeat.
struct Driver {
    dialer: Dialer,
    hello: Bytes,
    max_frame: usize,
    backoff: Backoff,
    events: mpsc::Sender<Received>,
}

impl Driver {
    async fn run(self) {
        let mut attempt = 0u32;
        loop {
            match self.session().await {
                Ended::ClientGone => return,
                Ended::Lost(reason) => {
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
                Ended::NotConnected(err @ TransportError::Tls { .. }) => {
                    warn!(error = %err, attempt, "cannot subscribe; retrying");
                }
                Ended::NotConnected(err) => {
                    debug!(error = %err, attempt, "cannot subscribe; retrying");
                }
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
            attempt = attempt.saturating_add(1);
        }
    }

    async fn session(&self) -> Ended {
        let peer = self.dialer.peer();
        let mut io = match self.dialer.dial().await {
            Ok(io) => io,
            Err(err) => return Ended::NotConnected(err),
        };
        let handshake = async {
            write_frame(&mut io, &self.hello, MAX_HELLO, peer).await?;
            io.flush()
                .await
                .map_err(|err| TransportError::from_io(peer, err))?;
            match read_frame(&mut io, 1, peer).await? {
                Some(frame) if frame[..] == [KIND_WELCOME] => Ok(()),
                Some(_) => Err(TransportError::Malformed {
                    peer: peer.to_owned(),
                    reason: "expected a welcome".to_owned(),
                }),
                None => Err(TransportError::ConnectionLost {
                    peer: peer.to_owned(),
                    source: None,
                }),
            }
        };
        match tokio::time::timeout(self.dialer.connect_timeout(), handshake).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Ended::NotConnected(err),
            Err(_) => {
                return Ended::NotConnected(TransportError::Timeout {
                    peer: peer.to_owned(),
                    after: self.dialer.connect_timeout(),
                });
            }
        }
        info!("subscribed");
        if self.events.send(Received::Connected).await.is_err() {
            return Ended::ClientGone;
        }
        loop {
            let frame = match read_frame(&mut io, self.max_frame.saturating_add(1), peer).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ended::Lost("server closed the connection".to_owned()),
                Err(TransportError::FrameTooLarge { len, .. }) => {
                    warn!(
                        len,
                        max = self.max_frame,
                        "published frame over the frame size limit skipped"
                    );
                    if let Err(err) = discard(&mut io, len, peer).await {
                        return Ended::Lost(err.to_string());
                    }
                    continue;
                }
                Err(err) => return Ended::Lost(err.to_string()),
            };
            if frame.first() != Some(&KIND_FRAME) {
                return Ended::Lost("malformed frame from the server".to_owned());
            }
            if self
                .events
                .send(Received::Frame(frame.slice(1..)))
                .await
                .is_err()
            {
                return Ended::ClientGone;
            }
        }
    }
}
