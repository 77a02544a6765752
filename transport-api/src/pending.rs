//! For transports that multiplex requests over one stream or connection
//! (tcp, quic): the requests waiting for their reply, by id.
//!
//! A request registers its id, holds a [`Waiting`] guard while it waits
//! (so however it stops waiting — reply, timeout, cancellation — a late
//! reply finds nobody), and the transport's reader hands each reply to
//! [`Pending::complete`]. When the stream breaks, [`Pending::fail_all`]
//! fails every waiting request at once and refuses new ones.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

use crate::TransportError;

type ReplySender = oneshot::Sender<Result<Bytes, TransportError>>;

/// A request's wait for its reply.
pub type ReplyReceiver = oneshot::Receiver<Result<Bytes, TransportError>>;

/// Requests waiting for their reply, by id; once broken, nothing more is
/// registered.
#[derive(Debug, Default)]
pub struct Pending {
    state: Mutex<PendingState>,
    /// Notified whenever the map runs empty.
    emptied: Notify,
}

#[derive(Debug, Default)]
struct PendingState {
    waiting: HashMap<u64, ReplySender>,
    broken: bool,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers request `id`; `None` once the stream is broken.
    pub fn register(&self, id: u64) -> Option<ReplyReceiver> {
        let mut state = self.lock();
        if state.broken {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.insert(id, tx);
        Some(rx)
    }

    /// A guard that forgets request `id` when dropped.
    pub fn waiting(&self, id: u64) -> Waiting<'_> {
        Waiting { pending: self, id }
    }

    fn take(&self, id: u64) -> Option<ReplySender> {
        let mut state = self.lock();
        let waiter = state.waiting.remove(&id);
        if state.waiting.is_empty() {
            self.emptied.notify_one();
        }
        waiter
    }

    /// Forgets request `id` (it stopped waiting).
    pub fn remove(&self, id: u64) {
        self.take(id);
    }

    /// Hands `result` to request `id`; false if nobody waits for it (it
    /// timed out or was cancelled).
    pub fn complete(&self, id: u64, result: Result<Bytes, TransportError>) -> bool {
        self.take(id).is_some_and(|tx| tx.send(result).is_ok())
    }

    /// Whether the stream broke.
    pub fn is_broken(&self) -> bool {
        self.lock().broken
    }

    /// Resolves once no request waits.
    pub async fn idle(&self) {
        loop {
            if self.lock().waiting.is_empty() {
                return;
            }
            self.emptied.notified().await;
        }
    }

    /// Marks the stream broken and fails every waiting request.
    pub fn fail_all(&self, error: impl Fn() -> TransportError) {
        let waiting = {
            let mut state = self.lock();
            state.broken = true;
            std::mem::take(&mut state.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(error()));
        }
    }
}

/// Removes a request from its [`Pending`] map however it stops waiting
/// (reply, timeout, cancellation), so a late reply finds nobody.
#[derive(Debug)]
pub struct Waiting<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_request_gets_nothing_and_a_broken_map_takes_nothing() {
        let pending = Pending::default();
        let rx = pending.register(1).unwrap();
        drop(pending.waiting(1));
        assert!(!pending.complete(1, Ok(Bytes::new())), "late reply dropped");
        drop(rx);

        let mut rx = pending.register(2).unwrap();
        pending.fail_all(|| TransportError::Closed);
        assert!(matches!(rx.try_recv(), Ok(Err(TransportError::Closed))));
        assert!(pending.is_broken());
        assert!(pending.register(3).is_none());
    }

    #[tokio::test]
    async fn idle_resolves_once_the_last_request_stops_waiting() {
        let pending = Pending::default();
        pending.idle().await;
        let _rx = pending.register(7).unwrap();
        let guard = pending.waiting(7);
        drop(guard);
        pending.idle().await;
    }
}
