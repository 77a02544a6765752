//! The minion's record of running jobs, for `saltutil.find_job`,
//! `saltutil.running` and `saltutil.kill_job`.
//!
//! Salt's minion writes one file per job under `cachedir/proc` holding the
//! publish load plus the `pid` of the process running it, and kills a job by
//! signalling that process. Brine runs every job as a task of the minion's
//! own process, so the table lives in memory and:
//!
//! - each entry is the job's proc data in Salt's shape: `pid` first, then the
//!   load (`fun`, `arg`, `tgt`, `jid`, `ret`, `tgt_type`, `user`, extras).
//!   `pid` is the **minion's** process id (shared by all jobs, as with Salt's
//!   `multiprocessing: False`), so tools that only check that a job is found
//!   keep working; a job's child processes are not listed;
//! - [`Jobs::kill`] wakes the job's [`JobGuard`]: the executor then drops the
//!   function's future, which kills the process group of any command it was
//!   running (see `cmd`), and sends no return — as a SIGKILLed Salt job sends
//!   none.
//!
//! The table is a cheap clonable handle; the lock is a plain mutex that is
//! never held across an `.await`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use brine_protocol::Value;
use tokio::sync::Notify;

use crate::load::PublishLoad;

/// Registering a job whose jid is running already.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {0} is running already")]
pub struct AlreadyRunning(pub String);

#[derive(Debug)]
struct Entry {
    data: Value,
    kill: Arc<Notify>,
}

/// The running jobs, keyed by jid. Clones share the table.
#[derive(Debug, Clone, Default)]
pub struct Jobs {
    inner: Arc<Mutex<BTreeMap<String, Entry>>>,
}

impl Jobs {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // the map stays consistent even if a holder panicked
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a job as running until the returned guard is dropped.
    ///
    /// # Errors
    /// [`AlreadyRunning`] if a job with the same jid is in the table (Salt's
    /// minion ignores a duplicate publish of a jid it is running).
    pub fn register(&self, load: &PublishLoad) -> Result<JobGuard, AlreadyRunning> {
        let mut table = self.lock();
        if table.contains_key(&load.jid) {
            return Err(AlreadyRunning(load.jid.clone()));
        }
        let mut data = vec![(Value::from("pid"), Value::from(std::process::id()))];
        if let Value::Map(entries) = load.to_value() {
            data.extend(entries);
        }
        let kill = Arc::new(Notify::new());
        table.insert(
            load.jid.clone(),
            Entry {
                data: Value::Map(data),
                kill: Arc::clone(&kill),
            },
        );
        Ok(JobGuard {
            jobs: self.clone(),
            jid: load.jid.clone(),
            kill,
        })
    }

    /// The proc data of every running job, by jid.
    pub fn running(&self) -> Vec<Value> {
        self.lock().values().map(|e| e.data.clone()).collect()
    }

    /// The proc data of job `jid`, if it is running.
    pub fn find(&self, jid: &str) -> Option<Value> {
        self.lock().get(jid).map(|e| e.data.clone())
    }

    /// Asks job `jid` to stop; returns its proc data if it was running.
    /// The job leaves the table once its task has wound down.
    pub fn kill(&self, jid: &str) -> Option<Value> {
        let table = self.lock();
        let entry = table.get(jid)?;
        // `notify_one` keeps a permit, so a job not yet waiting still sees it
        entry.kill.notify_one();
        Some(entry.data.clone())
    }

    /// How many jobs are running.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no job is running.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// A job's place in the [`Jobs`] table; dropping it removes the job.
#[derive(Debug)]
pub struct JobGuard {
    jobs: Jobs,
    jid: String,
    kill: Arc<Notify>,
}

impl JobGuard {
    /// The job's jid.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// Resolves when [`Jobs::kill`] is called for this job.
    ///
    /// # Cancel safety
    /// Cancel safe: a kill that arrives while nobody waits is kept for the
    /// next call.
    pub async fn killed(&self) {
        self.kill.notified().await;
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        let mut table = self.jobs.lock();
        if table
            .get(&self.jid)
            .is_some_and(|e| Arc::ptr_eq(&e.kill, &self.kill))
        {
            table.remove(&self.jid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_salts_proc_shape() {
        let jobs = Jobs::new();
        let mut load = PublishLoad::new("20260101000000000001", "test.sleep", vec![Value::Int(30)]);
        load.user = Some("root".into());
        let guard = jobs.register(&load).unwrap();
        let data = jobs.find("20260101000000000001").unwrap();
        let keys: Vec<&str> = data
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["pid", "fun", "arg", "tgt", "jid", "ret", "tgt_type", "user"]
        );
        assert_eq!(
            data.get("pid").and_then(Value::as_u64),
            Some(u64::from(std::process::id()))
        );
        assert_eq!(jobs.running().len(), 1);
        assert_eq!(
            jobs.register(&load).unwrap_err(),
            AlreadyRunning("20260101000000000001".into())
        );
        drop(guard);
        assert!(jobs.find("20260101000000000001").is_none());
        assert!(jobs.is_empty());
    }

    #[tokio::test]
    async fn kill_wakes_the_guard_even_before_it_waits() {
        let jobs = Jobs::new();
        let guard = jobs
            .register(&PublishLoad::new("1", "test.sleep", vec![]))
            .unwrap();
        assert!(jobs.kill("1").is_some());
        assert!(jobs.kill("2").is_none());
        guard.killed().await;
        assert_eq!(guard.jid(), "1");
    }
}
