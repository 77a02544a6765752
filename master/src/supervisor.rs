//! A small supervisor in the role of Salt's ProcessManager: each component
//! is a task; one that fails (error or panic) is logged and restarted after
//! a short, growing delay. All tasks end on shutdown or drop.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::{error, info};

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Builds one run of a component.
pub(crate) type Component = Arc<dyn Fn() -> BoxFuture + Send + Sync>;

/// Owns the component tasks.
#[derive(Debug, Default)]
pub(crate) struct Supervisor {
    tasks: JoinSet<()>,
}

impl Supervisor {
    pub(crate) fn new() -> Self {
        Supervisor::default()
    }

    /// Starts `component` under supervision.
    pub(crate) fn spawn(&mut self, name: &'static str, component: Component) {
        self.tasks.spawn(async move {
            let mut restarts: u32 = 0;
            loop {
                info!(component = name, "starting component");
                // aborting this supervising task must end the component too
                let mut run = AbortOnDrop(tokio::spawn(component()));
                match (&mut run.0).await {
                    Ok(Ok(())) => {
                        info!(component = name, "component finished");
                        return;
                    }
                    Ok(Err(reason)) => {
                        error!(component = name, %reason, "component failed; restarting")
                    }
                    Err(err) if err.is_panic() => {
                        error!(component = name, "component panicked; restarting")
                    }
                    Err(_) => return,
                }
                restarts = restarts.saturating_add(1);
                let delay = Duration::from_millis(100u64.saturating_mul(1u64 << restarts.min(6)));
                tokio::time::sleep(delay).await;
            }
        });
    }

    /// Stops every component.
    pub(crate) async fn shutdown(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A task handle that aborts its task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) fn component<F, Fut>(f: F) -> Component
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(f()) as BoxFuture)
}
