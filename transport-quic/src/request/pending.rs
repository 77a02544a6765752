//! Requests waiting for their reply on one request stream, by id.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use brine_transport_api::TransportError;
use bytes::Bytes;
use tokio::sync::oneshot;

type ReplySender = oneshot::Sender<Result<Bytes, TransportError>>;

/// A request's wait for its reply.
pub(crate) type ReplyReceiver = oneshot::Receiver<Result<Bytes, TransportError>>;

/// Requests waiting for their reply, by id; once broken, nothing more is
/// registered.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    state: Mutex<PendingState>,
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
    pub(crate) fn register(&self, id: u64) -> Option<ReplyReceiver> {
        let mut state = self.lock();
        if state.broken {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.insert(id, tx);
        Some(rx)
    }

    /// Forgets request `id` (it stopped waiting).
    pub(crate) fn remove(&self, id: u64) {
        self.lock().waiting.remove(&id);
    }

    /// Hands `result` to request `id`; false if nobody waits for it (it
    /// timed out or was cancelled).
    pub(crate) fn complete(&self, id: u64, result: Result<Bytes, TransportError>) -> bool {
        let waiter = self.lock().waiting.remove(&id);
        waiter.is_some_and(|tx| tx.send(result).is_ok())
    }

    /// Whether the stream broke.
    pub(crate) fn is_broken(&self) -> bool {
        self.lock().broken
    }

    /// Marks the stream broken and fails every waiting request.
    pub(crate) fn fail_all(&self, error: impl Fn() -> TransportError) {
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

/// Removes a request from the pending map however it stops waiting
/// (reply, timeout, cancellation), so a late reply finds nobody.
pub(crate) struct Waiting<'a> {
    pub(crate) pending: &'a Pending,
    pub(crate) id: u64,
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
        drop(Waiting {
            pending: &pending,
            id: 1,
        });
        assert!(!pending.complete(1, Ok(Bytes::new())), "late reply dropped");
        drop(rx);

        let mut rx = pending.register(2).unwrap();
        pending.fail_all(|| TransportError::Closed);
        assert!(matches!(rx.try_recv(), Ok(Err(TransportError::Closed))));
        assert!(pending.is_broken());
        assert!(pending.register(3).is_none());
    }
}
