//! The embedded job cache: one SQLite file, one writer thread.
//!
//! Writes go through a bounded queue to a dedicated thread that owns the
//! write connection. It takes every request waiting in the queue (up to
//! [`MAX_BATCH`]) and commits them in **one** transaction, so a burst of
//! returns costs one `fsync`, not one each (group commit); each request is
//! answered only after that commit. A write that fails is undone alone
//! (SQLite undoes a failed statement; a prune, being several, runs in a
//! savepoint), so one bad write does not fail its neighbours. Reads run on
//! tokio's blocking pool over a separate read-only connection (WAL lets
//! them run while the writer commits).
//!
//! Durability: WAL journal with `synchronous=FULL`, which fsyncs the WAL
//! at every commit; a commit that returned survives a power loss. (With
//! `NORMAL`, WAL commits survive a crash of the process but the last ones
//! may roll back on power loss, which would break "acknowledged means
//! stored", so Brine does not use it.)

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use super::schema::{
    self, LOAD_COLUMNS, LoadRow, RETURN_COLUMNS, RawLoad, RawReturn, ReturnRow, map_err,
};
use super::{
    JOB_CACHE_FILE, JobCache, JobCacheError, JobFilter, JobLoad, JobReturn, SaveOutcome,
    StorageError,
};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 256;

/// How long a statement waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Tuning of [`SqliteJobCache`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Writes waiting for the writer thread before callers wait to queue.
    pub queue_depth: usize,
    /// A cap on the database size in pages (SQLite's `max_page_count`);
    /// a write beyond it fails with [`JobCacheError::DiskFull`] as a full
    /// disk would. `None`: no cap but the disk.
    pub max_page_count: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            queue_depth: 1024,
            max_page_count: None,
        }
    }
}

enum Write {
    Load(LoadRow),
    Return(ReturnRow),
    Prune(i64),
}

enum Done {
    Saved,
    Return(SaveOutcome),
    Pruned(usize),
}

struct Request {
    write: Write,
    reply: oneshot::Sender<Result<Done, JobCacheError>>,
}

/// The embedded [`JobCache`]: `<cachedir>/jobs.sqlite3`.
pub struct SqliteJobCache {
    path: Arc<PathBuf>,
    writes: mpsc::Sender<Request>,
    reader: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteJobCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJobCache")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteJobCache {
    /// Opens (or creates) `<cachedir>/jobs.sqlite3` with default options.
    ///
    /// This blocks on file I/O: call it at start-up or from
    /// `spawn_blocking`. It needs no runtime (the writer is an OS thread);
    /// the async methods need a tokio runtime (reads use `spawn_blocking`).
    ///
    /// # Errors
    /// [`JobCacheError::Open`] if the file cannot be opened or created,
    /// [`JobCacheError::Corrupt`] if it is not a job cache database,
    /// [`JobCacheError::NewerSchema`] if a newer Brine wrote it. The file
    /// is never deleted or rewritten on error.
    pub fn open(cachedir: &Path) -> Result<Self, JobCacheError> {
        Self::open_file(&cachedir.join(JOB_CACHE_FILE), SqliteOptions::default())
    }

    /// Opens (or creates) the database file `path` with `options`.
    ///
    /// # Errors
    /// As [`SqliteJobCache::open`].
    pub fn open_file(path: &Path, options: SqliteOptions) -> Result<Self, JobCacheError> {
        create_private(path)?;
        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| map_err(path, e))?;
        writer
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| map_err(path, e))?;
        schema::prepare(&mut writer, path)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| map_err(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            warn!(path = %path.display(), mode, "job cache could not switch to WAL journaling");
        }
        writer
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| map_err(path, e))?;
        if let Some(pages) = options.max_page_count {
            writer
                .pragma_update(
                    None,
                    "max_page_count",
                    i64::try_from(pages).unwrap_or(i64::MAX),
                )
                .map_err(|e| map_err(path, e))?;
        }

        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| map_err(path, e))?;
        reader
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| map_err(path, e))?;

        let path = Arc::new(path.to_owned());
        let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
        let thread_path = Arc::clone(&path);
        std::thread::Builder::new()
            .name("brine-job-cache".to_owned())
            .spawn(move || run_writer(writer, rx, &thread_path))
            .map_err(|e| JobCacheError::Open {
                path: path.to_path_buf(),
                source: StorageError::new(e),
            })?;
        debug!(path = %path.display(), "job cache open");
        Ok(SqliteJobCache {
            path,
            writes: tx,
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, write: Write) -> Result<Done, JobCacheError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Request { write, reply })
            .await
            .map_err(|_| JobCacheError::Closed)?;
        answer.await.map_err(|_| JobCacheError::Closed)?
    }

    /// Runs `f` with the read connection on tokio's blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, JobCacheError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Path) -> Result<T, JobCacheError> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        let path = Arc::clone(&self.path);
        tokio::task::spawn_blocking(move || {
            // a panic while holding the lock cannot leave the connection
            // half-updated (reads only), so a poisoned lock is still usable
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn, &path)
        })
        .await
        .map_err(|_| JobCacheError::Closed)?
    }
}

/// Creates the file with mode 0600 if it does not exist yet (SQLite would
/// use 0644; returns may hold secrets). SQLite gives its `-wal` and `-shm`
/// files the same mode.
fn create_private(path: &Path) -> Result<(), JobCacheError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(JobCacheError::Open {
            path: path.to_owned(),
            source: StorageError::new(e),
        }),
    }
}

/// The writer thread: group commits until every sender is gone.
fn run_writer(mut conn: Connection, mut rx: mpsc::Receiver<Request>, path: &Path) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch, path);
    }
    debug!(path = %path.display(), "job cache writer stopped");
}

fn commit_batch(conn: &mut Connection, batch: &mut Vec<Request>, path: &Path) {
    let mut results: Vec<Option<Result<Done, JobCacheError>>> =
        batch.iter().map(|_| None).collect();
    let mut start = 0;
    while start < batch.len() {
        start = commit_from(conn, batch, start, &mut results, path);
    }
    for (request, result) in batch.drain(..).zip(results) {
        let result = result.unwrap_or(Err(JobCacheError::Closed));
        if let Err(e) = &result {
            warn!(path = %path.display(), error = %e, "job cache write failed");
        }
        // the caller may have gone away (cancelled); nothing to do then
        let _ = request.reply.send(result);
    }
}

/// Runs `batch[start..]` in one transaction, each write undone alone if
/// it fails (see [`run_write`]), and commits. Returns where the next
/// transaction must start: the end of the batch, or just after a write
/// whose failure made SQLite roll the whole transaction back (it does so
/// for a full disk, I/O errors and the like); the writes before it in that
/// transaction are lost and answered with the same error.
fn commit_from(
    conn: &mut Connection,
    batch: &[Request],
    start: usize,
    results: &mut [Option<Result<Done, JobCacheError>>],
    path: &Path,
) -> usize {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        error!(path = %path.display(), error = %e, "job cache cannot begin a transaction");
        for slot in results.iter_mut().skip(start) {
            *slot = Some(Err(map_err(path, copy_err(&e))));
        }
        return batch.len();
    }
    let mut in_tx: Vec<usize> = Vec::new();
    let mut next = batch.len();
    for (i, request) in batch.iter().enumerate().skip(start) {
        match run_write(conn, &request.write) {
            Ok(done) => {
                results[i] = Some(Ok(done));
                in_tx.push(i);
            }
            Err(e) if conn.is_autocommit() => {
                // the transaction is gone, and everything written in it
                for j in in_tx.drain(..) {
                    results[j] = Some(Err(map_err(path, copy_err(&e))));
                }
                results[i] = Some(Err(map_err(path, e)));
                next = i + 1;
                break;
            }
            Err(e) => {
                // only this write failed (and is undone); its neighbours stay
                results[i] = Some(Err(map_err(path, e)));
            }
        }
    }
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("COMMIT")
    {
        error!(path = %path.display(), error = %e, "job cache commit failed");
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for j in in_tx {
            results[j] = Some(Err(map_err(path, copy_err(&e))));
        }
    }
    next
}

/// Runs one write. A load or a return is one statement, which SQLite
/// undoes by itself when it fails while the transaction goes on; a prune
/// is several, so it runs in a savepoint that is rolled back if one fails.
/// (A savepoint around every return was two more statements each, ~4% of
/// the master's CPU at 10,000 returns a second.)
fn run_write(conn: &Connection, write: &Write) -> rusqlite::Result<Done> {
    match write {
        Write::Load(row) => row.insert(conn).map(|()| Done::Saved),
        Write::Return(row) => Ok(Done::Return(if row.insert(conn)? {
            SaveOutcome::Stored
        } else {
            SaveOutcome::Duplicate
        })),
        Write::Prune(before) => {
            // cached statements: parsing them per write was ~5% of the
            // master's CPU when every write had its savepoint
            conn.prepare_cached("SAVEPOINT op")?.execute([])?;
            match schema::prune(conn, *before) {
                Ok(pruned) => {
                    conn.prepare_cached("RELEASE op")?.execute([])?;
                    Ok(Done::Pruned(pruned))
                }
                Err(e) => {
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
                    }
                    Err(e)
                }
            }
        }
    }
}

/// The same SQLite error again, for each caller that shares its fate
/// (`rusqlite::Error` is not `Clone`).
fn copy_err(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

#[async_trait]
impl JobCache for SqliteJobCache {
    async fn save_load(&self, load: &JobLoad) -> Result<(), JobCacheError> {
        let row = LoadRow::encode(load)?;
        match self.write(Write::Load(row)).await? {
            Done::Saved => Ok(()),
            _ => Err(JobCacheError::Closed),
        }
    }

    async fn save_return(&self, ret: &JobReturn) -> Result<SaveOutcome, JobCacheError> {
        let row = ReturnRow::encode(ret)?;
        match self.write(Write::Return(row)).await? {
            Done::Return(outcome) => Ok(outcome),
            _ => Err(JobCacheError::Closed),
        }
    }

    async fn get_load(&self, jid: &str) -> Result<Option<JobLoad>, JobCacheError> {
        let jid = jid.to_owned();
        self.read(move |conn, path| {
            schema::select_load(conn, &jid)
                .map_err(|e| map_err(path, e))?
                .map(|raw| raw.decode(path))
                .transpose()
        })
        .await
    }

    async fn get_returns(&self, jid: &str) -> Result<BTreeMap<String, JobReturn>, JobCacheError> {
        let jid = jid.to_owned();
        self.read(move |conn, path| {
            let err = |e| map_err(path, e);
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {RETURN_COLUMNS} FROM returns WHERE jid = ?1"
                ))
                .map_err(err)?;
            let raws = stmt
                .query_map([&jid], RawReturn::from_row)
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            raws.into_iter()
                .map(|raw| raw.decode(path).map(|r| (r.id.clone(), r)))
                .collect()
        })
        .await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobLoad>, JobCacheError> {
        let filter = filter.clone();
        self.read(move |conn, path| {
            let err = |e| map_err(path, e);
            let since = filter.since.map_or(i64::MIN, schema::to_micros);
            let until = filter.until.map_or(i64::MAX, schema::to_micros);
            let limit = filter
                .limit
                .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {LOAD_COLUMNS} FROM jobs
                     WHERE start_us >= ?1 AND start_us < ?2
                       AND (?3 IS NULL OR fun = ?3) AND (?4 IS NULL OR user = ?4)
                     ORDER BY start_us DESC, jid DESC LIMIT ?5"
                ))
                .map_err(err)?;
            let raws = stmt
                .query_map(
                    rusqlite::params![since, until, filter.fun, filter.user, limit],
                    RawLoad::from_row,
                )
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            raws.into_iter().map(|raw| raw.decode(path)).collect()
        })
        .await
    }

    async fn prune(&self, older_than: SystemTime) -> Result<usize, JobCacheError> {
        match self
            .write(Write::Prune(schema::to_micros(older_than)))
            .await?
        {
            Done::Pruned(n) => Ok(n),
            _ => Err(JobCacheError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use brine_protocol::Value;

    use super::*;

    fn request(write: Write) -> (Request, oneshot::Receiver<Result<Done, JobCacheError>>) {
        let (reply, answer) = oneshot::channel();
        (Request { write, reply }, answer)
    }

    fn load(jid: &str) -> Write {
        let load = JobLoad::new(
            jid,
            "test.ping",
            Value::Array(vec![]),
            "*",
            "glob",
            "root",
            SystemTime::now(),
            vec![],
        );
        Write::Load(LoadRow::encode(&load).unwrap())
    }

    /// A write that fills the disk makes SQLite drop the whole transaction:
    /// the writes batched before it must not be reported as stored.
    #[test]
    fn a_full_disk_fails_every_write_of_its_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOB_CACHE_FILE);
        let mut conn = Connection::open(&path).unwrap();
        schema::prepare(&mut conn, &path).unwrap();
        conn.pragma_update(None, "max_page_count", 32).unwrap();
        let huge = JobReturn::new(
            "20200101000000000001",
            "m1",
            "cmd.run",
            Value::Bytes(vec![1; 256 * 1024]),
        );
        let (first, first_answer) = request(load("20200101000000000001"));
        let (full, full_answer) = request(Write::Return(ReturnRow::encode(&huge).unwrap()));
        let (after, after_answer) = request(load("20200101000000000002"));
        let mut batch = vec![first, full, after];
        commit_batch(&mut conn, &mut batch, &path);
        let outcome =
            |mut rx: oneshot::Receiver<Result<Done, JobCacheError>>| rx.try_recv().unwrap();
        assert!(matches!(
            outcome(first_answer),
            Err(JobCacheError::DiskFull { .. })
        ));
        assert!(matches!(
            outcome(full_answer),
            Err(JobCacheError::DiskFull { .. })
        ));
        assert!(matches!(outcome(after_answer), Ok(Done::Saved)));
        let stored: Vec<String> = conn
            .prepare("SELECT jid FROM jobs")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stored, ["20200101000000000002"]);
    }

    /// A write that fails on its own (here a prune whose table was renamed
    /// away) leaves its neighbours stored.
    #[test]
    fn neighbours_of_a_failed_write_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOB_CACHE_FILE);
        let mut conn = Connection::open(&path).unwrap();
        schema::prepare(&mut conn, &path).unwrap();
        // make pruning fail without touching the transaction
        conn.execute_batch("ALTER TABLE returns RENAME TO returns_gone")
            .unwrap();
        let (first, first_answer) = request(load("20200101000000000001"));
        let (prune, prune_answer) = request(Write::Prune(i64::MAX));
        let (after, after_answer) = request(load("20200101000000000002"));
        let mut batch = vec![first, prune, after];
        commit_batch(&mut conn, &mut batch, &path);
        let outcome =
            |mut rx: oneshot::Receiver<Result<Done, JobCacheError>>| rx.try_recv().unwrap();
        assert!(matches!(outcome(first_answer), Ok(Done::Saved)));
        assert!(matches!(
            outcome(prune_answer),
            Err(JobCacheError::Storage { .. })
        ));
        assert!(matches!(outcome(after_answer), Ok(Done::Saved)));
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM jobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
}
