use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

use brine_protocol::SerialError;
use thiserror::Error;

/// Why a job cache operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JobCacheError {
    /// The disk (or the configured size limit) is full: the write was not
    /// stored. The master logs it and keeps running; the minion keeps its
    /// unacknowledged return and sends it again later.
    #[error("job cache {} is full: the write was not stored", path.display())]
    DiskFull {
        /// The database file.
        path: PathBuf,
        /// The storage engine's error.
        #[source]
        source: StorageError,
    },
    /// The file is not a job cache database, or its content is damaged.
    /// Nothing is deleted: move the file away to start a new cache.
    #[error("job cache {} is corrupt or is not a job cache database", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The storage engine's error.
        #[source]
        source: StorageError,
    },
    /// The file was written by a newer Brine with a schema this one does
    /// not know. Nothing is changed in it.
    #[error(
        "job cache {} has schema version {found}, newer than version {supported} which this Brine understands",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema this build understands.
        supported: i64,
    },
    /// Another process holds a lock on the database for too long.
    #[error("job cache {} is locked by another process", path.display())]
    Busy {
        /// The database file.
        path: PathBuf,
        /// The storage engine's error.
        #[source]
        source: StorageError,
    },
    /// The file cannot be opened or created (missing directory,
    /// permissions).
    #[error("cannot open job cache {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: StorageError,
    },
    /// Any other storage failure.
    #[error("job cache {} failed", path.display())]
    Storage {
        /// The database file.
        path: PathBuf,
        /// The storage engine's error.
        #[source]
        source: StorageError,
    },
    /// A value could not be encoded as msgpack.
    #[error("cannot encode the {what} of job {jid}")]
    Encode {
        /// The job.
        jid: String,
        /// Which value (`arg`, `return`, …).
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: SerialError,
    },
    /// A stored value could not be decoded (the row is damaged).
    #[error("job cache {}: cannot decode the stored {what} of job {jid}", path.display())]
    Decode {
        /// The database file.
        path: PathBuf,
        /// The job.
        jid: String,
        /// Which value.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: SerialError,
    },
    /// The cache's writer has stopped (the cache is shutting down).
    #[error("job cache is closed")]
    Closed,
}

impl JobCacheError {
    /// Whether the disk or size limit is full ([`JobCacheError::DiskFull`]).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, JobCacheError::DiskFull { .. })
    }

    /// Whether the same operation may succeed later (a full disk, a lock
    /// held by another process).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            JobCacheError::DiskFull { .. } | JobCacheError::Busy { .. }
        )
    }
}

/// The storage engine's error, kept opaque so the engine's types stay out
/// of Brine's API. Its `Display` gives the engine's message.
pub struct StorageError(Box<dyn StdError + Send + Sync>);

impl StorageError {
    pub(crate) fn new(e: impl StdError + Send + Sync + 'static) -> Self {
        StorageError(Box::new(e))
    }
}

impl fmt::Debug for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for StorageError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}
