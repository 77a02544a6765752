//! Publishing in serial order. A minion (stock Salt's too) drops a publish
//! whose serial is not above the last it accepted, so frames must leave in
//! the order their serials were handed out. One task owns that order:
//! jobs arrive on a bounded queue, get their serial on arrival, are
//! encrypted and signed on the blocking pool a few at a time (signing is
//! the expensive part), and are published strictly in serial order.

use std::sync::{Arc, Weak};

use brine_protocol::Value;
use brine_protocol::envelope::wrap_publish_with_serial;
use brine_transport_api::{Audience, PublishServer};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::state::Shared;

/// Publishes waiting for their serial.
const QUEUE_DEPTH: usize = 1024;
/// Publishes signed at once.
const SIGNING: usize = 8;

/// One job for the publisher.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) jid: String,
    pub(crate) load: Value,
    pub(crate) audience: Audience,
}

type Done = oneshot::Sender<Result<(), String>>;

/// The handle the request handler publishes through.
#[derive(Debug)]
pub(crate) struct Sequencer {
    tx: mpsc::Sender<(Outgoing, Done)>,
}

impl Sequencer {
    /// Starts the publishing task. It holds `shared` weakly and ends when
    /// the master's state (and with it this handle) is dropped.
    pub(crate) fn spawn(shared: Weak<Shared>, publisher: Arc<dyn PublishServer>) -> Sequencer {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(shared, publisher, rx));
        Sequencer { tx }
    }

    /// Publishes `job`; returns once its frame is queued for the minions.
    ///
    /// # Errors
    /// Why the job could not be wrapped or published.
    pub(crate) async fn publish(&self, job: Outgoing) -> Result<(), String> {
        let (done, result) = oneshot::channel();
        self.tx
            .send((job, done))
            .await
            .map_err(|_| "the publisher has stopped".to_owned())?;
        result
            .await
            .map_err(|_| "the publisher has stopped".to_owned())?
    }
}

async fn run(
    shared: Weak<Shared>,
    publisher: Arc<dyn PublishServer>,
    mut rx: mpsc::Receiver<(Outgoing, Done)>,
) {
    let mut signing = FuturesOrdered::new();
    let mut open = true;
    while open || !signing.is_empty() {
        tokio::select! {
            Some((frame, job, done)) = signing.next(), if !signing.is_empty() => {
                send(&*publisher, frame, job, done).await;
            }
            received = rx.recv(), if open && signing.len() < SIGNING => match received {
                Some((job, done)) => {
                    let Some(shared) = shared.upgrade() else {
                        let _ = done.send(Err("the master is shutting down".to_owned()));
                        continue;
                    };
                    let serial = shared.serials.next_serial();
                    let aes = shared.aes();
                    let key = Arc::clone(&shared.master_key);
                    let sign = shared.config.sign_pub_messages;
                    let load = job.load.clone();
                    let wrapped = brine_protocol::crypto::offload(move || match serial {
                        Some(serial) => wrap_publish_with_serial(&load, &aes, &key, sign, serial)
                            .map_err(|e| e.to_string()),
                        None => Err("publish serials exhausted; rotate the AES key".to_owned()),
                    });
                    signing.push_back(async move {
                        let frame = match wrapped.await {
                            Ok(result) => result,
                            Err(_) => Err("wrapping the job failed".to_owned()),
                        };
                        (frame, job, done)
                    });
                }
                None => open = false,
            },
        }
    }
}

async fn send(
    publisher: &dyn PublishServer,
    frame: Result<Bytes, String>,
    job: Outgoing,
    done: Done,
) {
    let result = match frame {
        Ok(frame) => publisher
            .publish(frame, &job.audience)
            .await
            .map_err(|e| e.to_string()),
        Err(reason) => Err(reason),
    };
    match &result {
        Ok(()) => debug!(jid = %job.jid, "job published"),
        Err(reason) => warn!(jid = %job.jid, %reason, "could not publish the job"),
    }
    let _ = done.send(result);
}
