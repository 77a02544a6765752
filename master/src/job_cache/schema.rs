//! The SQLite schema, its version check, and row conversions.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brine_protocol::Value;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};

use super::{JobCacheError, JobLoad, JobReturn, StorageError};

/// The schema this build writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 1;

const CREATE_V1: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    jid      TEXT PRIMARY KEY NOT NULL,
    fun      TEXT NOT NULL,
    arg      BLOB NOT NULL,
    tgt      BLOB NOT NULL,
    tgt_type TEXT NOT NULL,
    user     TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    minions  BLOB NOT NULL,
    missing  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_start ON jobs (start_us);
CREATE TABLE IF NOT EXISTS returns (
    jid         TEXT NOT NULL,
    id          TEXT NOT NULL,
    fun         TEXT NOT NULL,
    ret         BLOB NOT NULL,
    retcode     INTEGER,
    success     INTEGER,
    load        BLOB NOT NULL,
    load_has_ret INTEGER NOT NULL,
    stored_us   INTEGER NOT NULL,
    PRIMARY KEY (jid, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS returns_by_stored ON returns (stored_us);
";

/// Maps a SQLite error to the variant the master can act on.
pub(crate) fn map_err(path: &Path, e: rusqlite::Error) -> JobCacheError {
    let path = path.to_owned();
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => JobCacheError::DiskFull {
            path,
            source: StorageError::new(e),
        },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => JobCacheError::Corrupt {
            path,
            source: StorageError::new(e),
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => JobCacheError::Busy {
            path,
            source: StorageError::new(e),
        },
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            JobCacheError::Open {
                path,
                source: StorageError::new(e),
            }
        }
        _ => JobCacheError::Storage {
            path,
            source: StorageError::new(e),
        },
    }
}

/// Checks the schema version and creates the tables of a new file. A file
/// from a newer Brine, or one that is not a database, is an error and is
/// left untouched.
pub(crate) fn prepare(conn: &mut Connection, path: &Path) -> Result<(), JobCacheError> {
    let err = |e| map_err(path, e);
    // the first statement that reads the file: a foreign file fails here
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    if version > SCHEMA_VERSION {
        return Err(JobCacheError::NewerSchema {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(CREATE_V1).map_err(err)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

/// Microseconds since the Unix epoch (0 before it, saturating after 2262).
pub(crate) fn to_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn encode(jid: &str, what: &'static str, v: &Value) -> Result<Vec<u8>, JobCacheError> {
    packed(jid, what, v.to_event_bytes())
}

/// Names the job and the part in an encoding failure.
fn packed(
    jid: &str,
    what: &'static str,
    bytes: Result<Vec<u8>, brine_protocol::SerialError>,
) -> Result<Vec<u8>, JobCacheError> {
    bytes.map_err(|source| JobCacheError::Encode {
        jid: jid.to_owned(),
        what,
        source,
    })
}

fn ids_value(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|s| Value::from(s.as_str())).collect())
}

/// A load, encoded for the writer thread.
#[derive(Debug)]
pub(crate) struct LoadRow {
    jid: String,
    fun: String,
    arg: Vec<u8>,
    tgt: Vec<u8>,
    tgt_type: String,
    user: String,
    start_us: i64,
    minions: Vec<u8>,
    missing: Vec<u8>,
}

impl LoadRow {
    pub(crate) fn encode(load: &JobLoad) -> Result<Self, JobCacheError> {
        let jid = &load.jid;
        Ok(LoadRow {
            jid: jid.clone(),
            fun: load.fun.clone(),
            arg: encode(jid, "arg", &load.arg)?,
            tgt: encode(jid, "tgt", &load.tgt)?,
            tgt_type: load.tgt_type.clone(),
            user: load.user.clone(),
            start_us: to_micros(load.start_time),
            minions: encode(jid, "minions", &ids_value(&load.minions))?,
            missing: encode(jid, "missing", &ids_value(&load.missing))?,
        })
    }

    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO jobs (jid, fun, arg, tgt, tgt_type, user, start_us, minions, missing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (jid) DO UPDATE SET fun = excluded.fun, arg = excluded.arg,
               tgt = excluded.tgt, tgt_type = excluded.tgt_type, user = excluded.user,
               start_us = excluded.start_us, minions = excluded.minions,
               missing = excluded.missing",
        )?
        .execute(params![
            self.jid,
            self.fun,
            self.arg,
            self.tgt,
            self.tgt_type,
            self.user,
            self.start_us,
            self.minions,
            self.missing
        ])?;
        Ok(())
    }
}

/// A return, encoded for the writer thread. The full load is stored with
/// its `return` entry emptied when that equals `ret`, so big returns are
/// not stored twice; reading puts it back in place.
#[derive(Debug)]
pub(crate) struct ReturnRow {
    jid: String,
    id: String,
    fun: String,
    ret: Vec<u8>,
    retcode: Option<i64>,
    success: Option<bool>,
    load: Vec<u8>,
    load_has_ret: bool,
    stored_us: i64,
}

impl ReturnRow {
    pub(crate) fn encode(r: &JobReturn) -> Result<Self, JobCacheError> {
        let jid = &r.jid;
        let load_has_ret = r.load.get("return") == Some(&r.ret);
        let load = if load_has_ret {
            // keep the key (and so the order), drop the copy of the value
            packed(jid, "load", r.load.to_event_bytes_with_nil("return"))?
        } else {
            encode(jid, "load", &r.load)?
        };
        Ok(ReturnRow {
            jid: jid.clone(),
            id: r.id.clone(),
            fun: r.fun.clone(),
            ret: encode(jid, "return", &r.ret)?,
            retcode: r.retcode,
            success: r.success,
            load,
            load_has_ret,
            stored_us: to_micros(SystemTime::now()),
        })
    }

    /// Inserts unless `(jid, id)` exists; `true` if inserted.
    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<bool> {
        let n = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO returns
               (jid, id, fun, ret, retcode, success, load, load_has_ret, stored_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                self.jid,
                self.id,
                self.fun,
                self.ret,
                self.retcode,
                self.success,
                self.load,
                self.load_has_ret,
                self.stored_us
            ])?;
        Ok(n == 1)
    }
}

/// Deletes jobs started before `before_us` with their returns, and
/// orphan returns stored before it; returns how many jobs went.
pub(crate) fn prune(conn: &Connection, before_us: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM returns WHERE jid IN (SELECT jid FROM jobs WHERE start_us < ?1)",
        [before_us],
    )?;
    let jobs = conn.execute("DELETE FROM jobs WHERE start_us < ?1", [before_us])?;
    let orphan_jobs: i64 = conn.query_row(
        "SELECT COUNT(DISTINCT jid) FROM returns
         WHERE stored_us < ?1 AND jid NOT IN (SELECT jid FROM jobs)",
        [before_us],
        |r| r.get(0),
    )?;
    conn.execute(
        "DELETE FROM returns WHERE stored_us < ?1 AND jid NOT IN (SELECT jid FROM jobs)",
        [before_us],
    )?;
    Ok(jobs.saturating_add(usize::try_from(orphan_jobs).unwrap_or(0)))
}

/// Raw columns of a `jobs` row, decoded after the statement is done.
pub(crate) struct RawLoad {
    jid: String,
    fun: String,
    arg: Vec<u8>,
    tgt: Vec<u8>,
    tgt_type: String,
    user: String,
    start_us: i64,
    minions: Vec<u8>,
    missing: Vec<u8>,
}

pub(crate) const LOAD_COLUMNS: &str =
    "jid, fun, arg, tgt, tgt_type, user, start_us, minions, missing";

impl RawLoad {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawLoad {
            jid: row.get(0)?,
            fun: row.get(1)?,
            arg: row.get(2)?,
            tgt: row.get(3)?,
            tgt_type: row.get(4)?,
            user: row.get(5)?,
            start_us: row.get(6)?,
            minions: row.get(7)?,
            missing: row.get(8)?,
        })
    }

    pub(crate) fn decode(self, path: &Path) -> Result<JobLoad, JobCacheError> {
        let jid = self.jid;
        let value = |what: &'static str, bytes: &[u8]| {
            Value::decode(bytes).map_err(|source| JobCacheError::Decode {
                path: path.to_owned(),
                jid: jid.clone(),
                what,
                source,
            })
        };
        let arg = value("arg", &self.arg)?;
        let tgt = value("tgt", &self.tgt)?;
        let minions = ids(value("minions", &self.minions)?);
        let missing = ids(value("missing", &self.missing)?);
        Ok(JobLoad {
            fun: self.fun,
            arg,
            tgt,
            tgt_type: self.tgt_type,
            user: self.user,
            start_time: from_micros(self.start_us),
            minions,
            missing,
            jid,
        })
    }
}

fn ids(v: Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Raw columns of a `returns` row.
pub(crate) struct RawReturn {
    jid: String,
    id: String,
    fun: String,
    ret: Vec<u8>,
    retcode: Option<i64>,
    success: Option<bool>,
    load: Vec<u8>,
    load_has_ret: bool,
}

pub(crate) const RETURN_COLUMNS: &str = "jid, id, fun, ret, retcode, success, load, load_has_ret";

impl RawReturn {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawReturn {
            jid: row.get(0)?,
            id: row.get(1)?,
            fun: row.get(2)?,
            ret: row.get(3)?,
            retcode: row.get(4)?,
            success: row.get(5)?,
            load: row.get(6)?,
            load_has_ret: row.get(7)?,
        })
    }

    pub(crate) fn decode(self, path: &Path) -> Result<JobReturn, JobCacheError> {
        let jid = self.jid;
        let value = |what: &'static str, bytes: &[u8]| {
            Value::decode(bytes).map_err(|source| JobCacheError::Decode {
                path: path.to_owned(),
                jid: jid.clone(),
                what,
                source,
            })
        };
        let ret = value("return", &self.ret)?;
        let mut load = value("load", &self.load)?;
        if self.load_has_ret {
            load.insert("return", ret.clone());
        }
        Ok(JobReturn {
            id: self.id,
            fun: self.fun,
            ret,
            retcode: self.retcode,
            success: self.success,
            load,
            jid,
        })
    }
}

/// The load of `jid`, undecoded.
pub(crate) fn select_load(conn: &Connection, jid: &str) -> rusqlite::Result<Option<RawLoad>> {
    conn.query_row(
        &format!("SELECT {LOAD_COLUMNS} FROM jobs WHERE jid = ?1"),
        [jid],
        RawLoad::from_row,
    )
    .optional()
}
