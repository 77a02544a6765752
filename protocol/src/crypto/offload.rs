//! Where RSA arithmetic runs: tokio's blocking pool, but at most one job per
//! core at a time, taken first come first served.
//!
//! A private-key operation is ~0.3 ms of pure CPU. Ten thousand minions
//! signing in at once (a master restart) would otherwise put hundreds of
//! them on the blocking pool's threads together: every sign-in then
//! finishes late, past the minions' `auth_timeout`, they retry, and the
//! master spends its CPU on answers nobody waits for. In a queue of one per
//! core, the early ones finish at full speed and the queue drains.

use std::sync::LazyLock;

use tokio::sync::Semaphore;

use super::CryptoError;

static PERMITS: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});

/// Runs `work` on the blocking pool once a core is free for it.
///
/// # Errors
/// [`CryptoError::Worker`] if `work` panicked or the runtime is shutting down.
pub async fn offload<T, F>(work: F) -> Result<T, CryptoError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    // the semaphore is never closed; a closed one would just run unbounded
    let _permit = PERMITS.acquire().await.ok();
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CryptoError::Worker(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_work_and_reports_a_panic() {
        assert_eq!(offload(|| 6 * 7).await.unwrap(), 42);
        let panicked = offload(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(panicked, Err(CryptoError::Worker(_))));
        let results = futures_join(64).await;
        assert_eq!(results, (0..64).collect::<Vec<_>>());
    }

    async fn futures_join(n: usize) -> Vec<usize> {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            set.spawn(offload(move || i));
        }
        let mut out: Vec<usize> = set
            .join_all()
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        out.sort_unstable();
        out
    }
}
