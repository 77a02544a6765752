//! The return spool: job returns the master did not acknowledge, kept on
//! disk until it does (Salt drops them after `return_retry_tries`).
//!
//! Each return is one file, `<cachedir>/spool/returns/<jid>.msgpack`,
//! holding the `_return` **load** (not the packed request: a resent frame
//! would be refused by the master's replay guard; the load is packed again
//! with a fresh nonce and `ts` when it is resent). Files are written
//! atomically (mode 0600) and removed only after the master acknowledged
//! the return. The spool is bounded by a count and a byte size; when full,
//! the oldest returns (jids are time-ordered) are dropped with a warning.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use brine_protocol::keys::{KeyError, PRIVATE_KEY_MODE, ensure_dir, write_atomic};
use brine_protocol::{SerialError, Value};
use tracing::warn;

const SUFFIX: &str = ".msgpack";

/// Bounds of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Most returns kept (default 10,000).
    pub max_count: usize,
    /// Most bytes kept (default 256 MiB).
    pub max_bytes: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_count: 10_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why the spool could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A file or the directory could not be read, listed or removed.
    #[error("return spool: {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A return could not be written (or the directory created).
    #[error("return spool: writing")]
    Write(#[source] KeyError),
    /// A return could not be packed.
    #[error("return spool: packing")]
    Pack(#[source] SerialError),
}

/// One spooled return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledReturn {
    /// Its file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
}

/// The spool directory and its bounds. Blocking file I/O: call it from
/// `spawn_blocking` in async code.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
}

/// A file name for `jid`: the jid itself when it is plain (Salt's jids
/// are 20 digits), else its hex, so a hostile jid never becomes a path.
fn file_name(jid: &str) -> String {
    let plain = !jid.is_empty()
        && jid.len() <= 64
        && jid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        format!("{jid}{SUFFIX}")
    } else {
        let hex: String = jid.bytes().take(64).map(|b| format!("{b:02x}")).collect();
        format!("x{hex}{SUFFIX}")
    }
}

impl Spool {
    /// The spool under `cachedir` (`<cachedir>/spool/returns`).
    pub fn under_cachedir(cachedir: &Path, limits: SpoolLimits) -> Spool {
        Spool::new(cachedir.join("spool").join("returns"), limits)
    }

    /// A spool in `dir`; nothing is touched yet.
    pub fn new(dir: impl Into<PathBuf>, limits: SpoolLimits) -> Spool {
        Spool {
            dir: dir.into(),
            limits,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory (mode 0700) if needed.
    ///
    /// # Errors
    /// [`SpoolError::Write`].
    pub fn ensure(&self) -> Result<(), SpoolError> {
        ensure_dir(&self.dir).map_err(SpoolError::Write)
    }

    /// Keeps the `_return` `load` of job `jid`, then trims the spool to its
    /// bounds, dropping the oldest returns with a warning. A return larger
    /// than the whole byte bound is dropped at once (returns `false`).
    ///
    /// # Errors
    /// A [`SpoolError`] if it could not be written.
    pub fn store(&self, jid: &str, load: &Value) -> Result<bool, SpoolError> {
        let bytes = load.to_channel_bytes().map_err(SpoolError::Pack)?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > self.limits.max_bytes {
            warn!(
                jid,
                len = bytes.len(),
                "return larger than the whole spool; dropped"
            );
            return Ok(false);
        }
        self.ensure()?;
        let path = self.dir.join(file_name(jid));
        write_atomic(&path, &bytes, PRIVATE_KEY_MODE).map_err(SpoolError::Write)?;
        self.trim(&path)?;
        Ok(true)
    }

    fn trim(&self, keep: &Path) -> Result<(), SpoolError> {
        let mut entries = self.pending()?;
        let mut count = entries.len();
        let mut bytes: u64 = entries.iter().map(|e| e.len).sum();
        entries.retain(|e| e.path != keep);
        for oldest in entries {
            if count <= self.limits.max_count && bytes <= self.limits.max_bytes {
                break;
            }
            warn!(path = %oldest.path.display(), "return spool full; dropping the oldest spooled return");
            self.remove(&oldest)?;
            count -= 1;
            bytes = bytes.saturating_sub(oldest.len);
        }
        Ok(())
    }

    /// Every spooled return, oldest first.
    ///
    /// # Errors
    /// [`SpoolError::Io`] if the directory cannot be listed (a missing
    /// directory is an empty spool).
    pub fn pending(&self) -> Result<Vec<SpooledReturn>, SpoolError> {
        let io = |op, source| SpoolError::Io {
            op,
            path: self.dir.clone(),
            source,
        };
        let listing = match fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("listing", e)),
        };
        let mut out = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| io("listing", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !name.ends_with(SUFFIX) {
                continue;
            }
            let len = entry.metadata().map_or(0, |m| m.len());
            out.push(SpooledReturn {
                path: entry.path(),
                len,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Reads a spooled return's load. An unreadable file is renamed to
    /// `*.corrupt` (kept for the operator, never resent) and `None` returned.
    ///
    /// # Errors
    /// [`SpoolError::Io`] if it cannot be read.
    pub fn read(&self, entry: &SpooledReturn) -> Result<Option<Value>, SpoolError> {
        let bytes = fs::read(&entry.path).map_err(|source| SpoolError::Io {
            op: "reading",
            path: entry.path.clone(),
            source,
        })?;
        match Value::decode(&bytes) {
            Ok(load) if load.as_map().is_some() => Ok(Some(load)),
            _ => {
                warn!(path = %entry.path.display(), "unreadable spooled return set aside as .corrupt");
                let _ = fs::rename(&entry.path, entry.path.with_extension("corrupt"));
                Ok(None)
            }
        }
    }

    /// Removes a return the master acknowledged.
    ///
    /// # Errors
    /// [`SpoolError::Io`] unless it is gone.
    pub fn remove(&self, entry: &SpooledReturn) -> Result<(), SpoolError> {
        match fs::remove_file(&entry.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SpoolError::Io {
                op: "removing",
                path: entry.path.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(jid: &str, filler: usize) -> Value {
        Value::Map(vec![
            (Value::from("cmd"), Value::from("_return")),
            (Value::from("jid"), Value::from(jid)),
            (Value::from("return"), Value::from("x".repeat(filler))),
        ])
    }

    #[test]
    fn stores_reads_and_removes_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::under_cachedir(tmp.path(), SpoolLimits::default());
        assert!(spool.pending().unwrap().is_empty());
        spool.store("20260101000000000002", &load("2", 1)).unwrap();
        spool.store("20260101000000000001", &load("1", 1)).unwrap();
        let pending = spool.pending().unwrap();
        assert_eq!(pending.len(), 2);
        assert!(pending[0].path.ends_with("20260101000000000001.msgpack"));
        assert_eq!(spool.read(&pending[0]).unwrap(), Some(load("1", 1)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&pending[0].path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        spool.remove(&pending[0]).unwrap();
        spool.remove(&pending[0]).unwrap();
        assert_eq!(spool.pending().unwrap().len(), 1);
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::new(
            tmp.path(),
            SpoolLimits {
                max_count: 2,
                max_bytes: 1000,
            },
        );
        for n in 1..=3 {
            spool
                .store(&format!("2026010100000000000{n}"), &load("j", 10))
                .unwrap();
        }
        let names: Vec<_> = spool
            .pending()
            .unwrap()
            .into_iter()
            .map(|e| e.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "20260101000000000002.msgpack",
                "20260101000000000003.msgpack"
            ]
        );
        // one big return pushes out older ones; one bigger than the bound is dropped
        spool
            .store("20260101000000000004", &load("j", 960))
            .unwrap();
        assert_eq!(spool.pending().unwrap().len(), 1);
        assert!(
            !spool
                .store("20260101000000000005", &load("j", 2000))
                .unwrap()
        );
        assert_eq!(spool.pending().unwrap().len(), 1);
    }

    #[test]
    fn hostile_jids_stay_inside_and_corrupt_files_are_set_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::new(tmp.path().join("s"), SpoolLimits::default());
        spool.store("../../etc/passwd", &load("x", 1)).unwrap();
        let pending = spool.pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert!(pending[0].path.starts_with(spool.dir()));
        fs::write(&pending[0].path, b"\xc1garbage").unwrap();
        assert_eq!(spool.read(&pending[0]).unwrap(), None);
        assert!(spool.pending().unwrap().is_empty());
    }
}
