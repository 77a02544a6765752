//! Background tasks owned by a channel end: stopped on `close`, aborted on drop.

use std::sync::{Mutex, PoisonError};

use tokio::{sync::oneshot, task::JoinHandle};

/// The signal a worker waits on: resolves when `stop` is called or the
/// owner is dropped.
pub(crate) type StopSignal = oneshot::Receiver<()>;

/// One spawned task, owned by a channel end.
#[derive(Debug)]
pub(crate) struct Worker {
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    handle: AbortOnDrop,
}

/// Aborts the task when dropped, so a dropped channel end leaks nothing.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Worker {
    /// Spawns `task` on the current tokio runtime, handing it its stop signal.
    pub(crate) fn spawn<F, Fut>(task: F) -> Self
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, signal) = oneshot::channel();
        let handle = AbortOnDrop(tokio::spawn(task(signal)));
        Self {
            running: Mutex::new(Some(Running { stop, handle })),
        }
    }

    /// Whether `stop` has not been called yet.
    pub(crate) fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Signals the task to stop and waits until it has ended; `false` if it
    /// was already stopped.
    pub(crate) async fn stop(&self) -> bool {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Running { stop, mut handle }) = running else {
            return false;
        };
        let _ = stop.send(());
        if let Err(err) = (&mut handle.0).await
            && err.is_panic()
        {
            tracing::error!("zeromq channel task panicked");
        }
        true
    }
}
