//! Requests waiting for their reply on one connection, by id.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use brine_transport_api::TransportError;
use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

type ReplySender = oneshot::Sender<Result<Bytes, TransportError>>;

/// Requests waiting for their reply, by id; once broken, nothing more is
/// registered.
#[derive(Debug, Default)]
pub(crate) struct Pending {
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

    /// Registers request `id`; `None` once the connection is broken.
    pub(crate) fn register(
        &self,
        id: u64,
    ) -> Option<oneshot::Receiver<Result<Bytes, TransportError>>> {
        let mut state = self.lock();
        if state.broken {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.insert(id, tx);
        Some(rx)
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
    pub(crate) fn remove(&self, id: u64) {
        self.take(id);
    }

    /// Hands `result` to request `id`; false if nobody waits for it (it
    /// timed out or was cancelled).
    pub(super) fn complete(&self, id: u64, result: Result<Bytes, TransportError>) -> bool {
        self.take(id).is_some_and(|tx| tx.send(result).is_ok())
    }

    pub(super) fn is_broken(&self) -> bool {
        self.lock().broken
    }

    /// Resolves once no request waits.
    pub(super) async fn idle(&self) {
        loop {
            if self.lock().waiting.is_empty() {
                return;
            }
            self.emptied.notified().await;
        }
    }

    /// Marks the connection broken and fails every waiting request.
    pub(super) fn fail_all(&self, error: impl Fn() -> TransportError) {
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

/// Removes a request from the pending map when it stops waiting.
pub(crate) struct Waiting<'a> {
    pub(crate) pending: &'a Pending,
    pub(crate) id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}
