//! Serving a shared connection: the minion's subscription and its
//! requests on one socket, written by one writer from two bounded queues.

use std::{net::SocketAddr, pin::pin, sync::Arc};

use brine_transport_api::TransportError;
use bytes::Bytes;
use tokio::{
    io::{AsyncWrite, AsyncWriteExt, BufWriter},
    sync::mpsc,
};
use tracing::debug;

use crate::{
    net::BoxedIo,
    publish::{
        KIND_WELCOME,
        server::{Hub, write_kind, write_published},
    },
    request::{
        server::{Outgoing, Service, in_flight, log_end, read_requests},
        write_reply,
    },
    shared::{KIND_REPLY, KIND_REQUESTS_ONLY},
};

/// Serves a connection that said hello as `identity` with a shared hello:
/// subscribes it to `hub` (if a publish server is bound) and serves its
/// requests with `service` (or answers them that none is bound).
pub(super) async fn serve(
    io: BoxedIo,
    addr: SocketAddr,
    identity: String,
    hub: Option<Arc<Hub>>,
    service: Option<Arc<Service>>,
) {
    let peer = addr.to_string();
    let (reader, writer) = tokio::io::split(io);
    let mut writer = BufWriter::new(writer);
    let mut subscription = hub.as_ref().map(|hub| hub.register(identity.clone(), addr));
    let answer = match subscription {
        Some(_) => KIND_WELCOME,
        None => KIND_REQUESTS_ONLY,
    };
    if let Err(err) = write_kind(&mut writer, answer, &peer).await {
        return debug!(minion = %identity, error = %err, "client left before its welcome");
    }
    debug!(minion = %identity, subscribed = subscription.is_some(), "shared connection up");
    let limits = service
        .as_ref()
        .map(|s| s.limits())
        .or_else(|| hub.as_ref().map(|h| h.limits()))
        .unwrap_or_default();
    let publish_max = hub.as_ref().map_or(0, |h| h.limits().max_frame_size);
    let (queue, kicked) = match subscription.as_mut() {
        Some(s) => (Some(&mut s.queue), Some(&mut s.kicked)),
        None => (None, None),
    };
    let (replies, outgoing) = mpsc::channel(in_flight(limits));
    let mut reading = pin!(read_requests(reader, addr, service, limits, replies));
    let mut writing = pin!(write_shared(
        writer,
        outgoing,
        queue,
        (publish_max, limits.max_frame_size),
        &peer
    ));
    let mut kicked = pin!(async move {
        match kicked {
            Some(kicked) => {
                let _ = kicked.await;
            }
            None => std::future::pending().await,
        }
    });
    let mut reading_done = false;
    loop {
        tokio::select! {
            () = &mut kicked => {
                // The publish side logged why (a full queue) or closed.
                return debug!(minion = %identity, "subscriber dropped; shared connection closed");
            }
            read = &mut reading, if !reading_done => match read {
                // The client sent its last request; the writer ends once
                // every handler has replied.
                Ok(()) => reading_done = true,
                Err(err) => return log_end(&err),
            },
            written = &mut writing => {
                return match written {
                    Ok(()) => debug!(minion = %identity, "client disconnected"),
                    Err(err) => log_end(&err),
                };
            }
        }
    }
}

/// Writes replies and published frames as they come, each tagged, taking
/// from both queues in turn and flushing whenever both are empty; ends
/// when the reply queue closes (the reader and every handler are done).
async fn write_shared<W: AsyncWrite + Unpin>(
    mut writer: BufWriter<W>,
    mut replies: mpsc::Receiver<Outgoing>,
    mut published: Option<&mut mpsc::Receiver<Bytes>>,
    (publish_max, reply_max): (usize, usize),
    peer: &str,
) -> Result<(), TransportError> {
    loop {
        tokio::select! {
            reply = replies.recv() => match reply {
                Some(Outgoing { id, reply }) => {
                    write_reply(&mut writer, id, reply, reply_max, peer, Some(KIND_REPLY)).await?;
                }
                None => break,
            },
            Some(frame) = next(published.as_deref_mut()) => {
                write_published(&mut writer, &frame, publish_max, peer).await?;
            }
        }
        if replies.is_empty() && published.as_ref().is_none_or(|q| q.is_empty()) {
            writer
                .flush()
                .await
                .map_err(|err| TransportError::from_io(peer, err))?;
        }
    }
    writer
        .flush()
        .await
        .map_err(|err| TransportError::from_io(peer, err))
}

async fn next(queue: Option<&mut mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match queue {
        Some(queue) => queue.recv().await,
        None => std::future::pending().await,
    }
}
