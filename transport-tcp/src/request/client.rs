//! The request client: requests go over its [`Link`]'s connection (its own,
//! or one shared with the publish client), opened on first use and again
//! after it breaks; each reply is handed to the request waiting for its id.

use std::time::Duration;

use async_trait::async_trait;
use brine_transport_api::{ClientOptions, Limits, RequestClient, TransportError};
use bytes::Bytes;
use tokio::{
    sync::{Semaphore, watch},
    time::Instant,
};

use super::body_limit;
use crate::link::{Attached, Kind, Link, Links, conn::Outgoing};

/// The TCP [`RequestClient`].
#[derive(Debug)]
pub(crate) struct Client {
    attached: Attached,
    limits: Limits,
    /// Requests in flight; bounds the pending map.
    slots: Semaphore,
    closed: watch::Sender<bool>,
}

/// Starts a request client for the server in `opts`; it connects on the
/// first request.
///
/// # Errors
/// Invalid settings or TLS material; never "server not up".
pub(crate) async fn connect(links: &Links, opts: ClientOptions) -> Result<Client, TransportError> {
    Ok(Client {
        attached: Link::obtain(links, &opts, Kind::Requests).await?,
        limits: opts.limits,
        slots: Semaphore::new(opts.limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS)),
        closed: watch::Sender::new(false),
    })
}

#[async_trait]
impl RequestClient for Client {
    async fn request(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        let mut closed = self.closed.subscribe();
        if *closed.borrow_and_update() {
            return Err(TransportError::Closed);
        }
        let max = body_limit(self.limits.max_frame_size);
        if frame.len() > max {
            return Err(TransportError::FrameTooLarge {
                peer: self.link().peer().to_owned(),
                len: frame.len() as u64,
                max: self.limits.max_frame_size,
            });
        }
        let deadline = Instant::now().checked_add(timeout);
        let exchange = tokio::time::timeout(timeout, self.exchange(frame, deadline));
        tokio::select! {
            result = exchange => result.unwrap_or_else(|_| Err(TransportError::Timeout {
                peer: self.link().peer().to_owned(),
                after: timeout,
            })),
            _ = closed.wait_for(|closed| *closed) => Err(TransportError::Closed),
        }
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.send_replace(true);
        self.slots.close();
        // Requests drop out at once on the flag; a connection only this
        // client used ends here.
        self.attached.leave().await;
        Ok(())
    }
}

impl Client {
    fn link(&self) -> &Link {
        self.attached.link()
    }

    async fn exchange(
        &self,
        frame: Bytes,
        deadline: Option<Instant>,
    ) -> Result<Bytes, TransportError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| TransportError::Closed)?;
        let (requests, pending) = self.link().request_conn(deadline).await?;
        let id = self.link().next_id();
        let reply = pending.register(id).ok_or_else(|| self.lost())?;
        // Unregisters on every way out, so a late reply finds nobody.
        let _waiting = pending.waiting(id);
        requests
            .send(Outgoing { id, frame })
            .await
            .map_err(|_| self.lost())?;
        // A retired connection ends its queue once no request holds it.
        drop(requests);
        reply.await.unwrap_or_else(|_| Err(self.lost()))
    }

    fn lost(&self) -> TransportError {
        TransportError::ConnectionLost {
            peer: self.link().peer().to_owned(),
            source: None,
        }
    }
}
