//! The job cache: every job's load and every return, stored durably.
//!
//! Salt's master keeps jobs in its `local_cache` returner; Brine keeps them
//! behind the [`JobCache`] trait so a later issue can add a server
//! database. The embedded default is [`SqliteJobCache`]: one SQLite file,
//! `<cachedir>/jobs.sqlite3`.
//!
//! Durability contract (design.md, "data that must not be lost"):
//! - [`JobCache::save_load`] returns only once the load is durable: the
//!   master stores a job before it publishes it;
//! - [`JobCache::save_return`] returns only once the return is durable:
//!   the master acknowledges a minion's return only after that;
//! - [`JobCache::save_return`] is idempotent per `(jid, minion id)`: a
//!   minion re-sending a spooled return does not create a second row (the
//!   first one stored is kept, and [`SaveOutcome::Duplicate`] tells the
//!   caller it was already there).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use brine_master::job_cache::{JobCache, JobLoad, JobReturn, SaveOutcome, SqliteJobCache};
//! use brine_protocol::Value;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let cache: Arc<dyn JobCache> = Arc::new(SqliteJobCache::open(dir.path())?);
//! let jid = brine_protocol::jid::gen_jid();
//! cache.save_load(&JobLoad::new(&jid, "test.ping", Value::Array(vec![]), "*", "glob", "root",
//!     SystemTime::now(), vec!["m1".into()])).await?;
//! let ret = JobReturn::new(&jid, "m1", "test.ping", Value::Bool(true));
//! assert_eq!(cache.save_return(&ret).await?, SaveOutcome::Stored);
//! assert_eq!(cache.save_return(&ret).await?, SaveOutcome::Duplicate);
//! assert_eq!(cache.get_returns(&jid).await?["m1"].ret, Value::Bool(true));
//! # Ok(())
//! # }
//! ```

mod error;
mod schema;
mod sqlite;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use brine_protocol::Value;

pub use error::{JobCacheError, StorageError};
pub use sqlite::{SqliteJobCache, SqliteOptions};

/// The file name of the embedded cache under `cachedir`.
pub const JOB_CACHE_FILE: &str = "jobs.sqlite3";

/// A job as the master published it (Salt's job "load").
#[derive(Debug, Clone, PartialEq)]
pub struct JobLoad {
    /// The 20-digit job id.
    pub jid: String,
    /// The function (`test.ping`).
    pub fun: String,
    /// The arguments, as published (a list; kwargs packed as Salt packs them).
    pub arg: Value,
    /// The target (a string, or a list for `list` targeting).
    pub tgt: Value,
    /// The target type (`glob`, `list`, `compound`, …).
    pub tgt_type: String,
    /// Who published it.
    pub user: String,
    /// When it was published.
    pub start_time: SystemTime,
    /// The minions expected to return.
    pub minions: Vec<String>,
    /// Minions known to be missing at publish time (Salt's `missing`).
    pub missing: Vec<String>,
}

impl JobLoad {
    /// A load with no missing minions.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        jid: impl Into<String>,
        fun: impl Into<String>,
        arg: Value,
        tgt: impl Into<Value>,
        tgt_type: impl Into<String>,
        user: impl Into<String>,
        start_time: SystemTime,
        minions: Vec<String>,
    ) -> Self {
        JobLoad {
            jid: jid.into(),
            fun: fun.into(),
            arg,
            tgt: tgt.into(),
            tgt_type: tgt_type.into(),
            user: user.into(),
            start_time,
            minions,
            missing: Vec::new(),
        }
    }
}

/// One minion's return for one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReturn {
    /// The job id.
    pub jid: String,
    /// The minion id.
    pub id: String,
    /// The function that ran.
    pub fun: String,
    /// What it returned (Salt's `return`).
    pub ret: Value,
    /// Its `retcode`, if the minion sent one.
    pub retcode: Option<i64>,
    /// Its `success`, if the minion sent one.
    pub success: Option<bool>,
    /// The whole return load as received (`fun_args`, `out`, …); may be
    /// [`Value::Nil`].
    pub load: Value,
}

impl JobReturn {
    /// A return with no retcode, success flag or full load.
    pub fn new(
        jid: impl Into<String>,
        id: impl Into<String>,
        fun: impl Into<String>,
        ret: Value,
    ) -> Self {
        JobReturn {
            jid: jid.into(),
            id: id.into(),
            fun: fun.into(),
            ret,
            retcode: None,
            success: None,
            load: Value::Nil,
        }
    }
}

/// What [`JobCache::save_return`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaveOutcome {
    /// The return was new and is now stored.
    Stored,
    /// A return for the same `(jid, id)` was already stored; it was kept
    /// and the new one dropped. Acknowledge it all the same.
    Duplicate,
}

/// Which jobs [`JobCache::list_jobs`] returns. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Started at or after this time.
    pub since: Option<SystemTime>,
    /// Started before this time.
    pub until: Option<SystemTime>,
    /// This function exactly.
    pub fun: Option<String>,
    /// Published by this user exactly.
    pub user: Option<String>,
    /// At most this many jobs (the newest).
    pub limit: Option<usize>,
}

/// Where the master keeps jobs and returns.
///
/// # Note for implementers
/// - `save_load` and `save_return` must not return `Ok` before the data
///   survives a crash of the process and, as far as the storage allows, of
///   the machine.
/// - `save_return` is idempotent per `(jid, id)`: keep the first.
/// - A full disk is [`JobCacheError::DiskFull`], so the master can log it
///   and keep serving; no method may panic on stored data.
/// - Methods are called concurrently from many tasks; blocking I/O must
///   stay off the async runtime's worker threads.
#[async_trait]
pub trait JobCache: Send + Sync + fmt::Debug {
    /// Stores (or replaces) a job's load; durable when it returns.
    ///
    /// # Errors
    /// [`JobCacheError`]; nothing is stored then.
    async fn save_load(&self, load: &JobLoad) -> Result<(), JobCacheError>;

    /// Stores a return unless one for the same `(jid, id)` exists; durable
    /// when it returns.
    ///
    /// # Errors
    /// [`JobCacheError`]; nothing is stored then, do not acknowledge.
    async fn save_return(&self, ret: &JobReturn) -> Result<SaveOutcome, JobCacheError>;

    /// The load of `jid`, if stored.
    ///
    /// # Errors
    /// [`JobCacheError`] on storage or decoding failures.
    async fn get_load(&self, jid: &str) -> Result<Option<JobLoad>, JobCacheError>;

    /// Every stored return of `jid`, by minion id.
    ///
    /// # Errors
    /// [`JobCacheError`] on storage or decoding failures.
    async fn get_returns(&self, jid: &str) -> Result<BTreeMap<String, JobReturn>, JobCacheError>;

    /// Jobs matching `filter`, newest first.
    ///
    /// # Errors
    /// [`JobCacheError`] on storage or decoding failures.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobLoad>, JobCacheError>;

    /// Removes jobs that started before `older_than`, with their returns
    /// (and returns stored before it whose job has no load). Returns how
    /// many jobs were removed.
    ///
    /// # Errors
    /// [`JobCacheError`]; nothing is removed then.
    async fn prune(&self, older_than: SystemTime) -> Result<usize, JobCacheError>;
}

fn _dyn_compatible(_: &dyn JobCache) {}
