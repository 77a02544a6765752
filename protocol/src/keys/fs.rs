//! Atomic, permission-aware file writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::KeyError;

/// Mode of private key files (`master.pem`, `minion.pem`).
pub const PRIVATE_KEY_MODE: u32 = 0o600;
/// Mode of public key files.
pub const PUBLIC_KEY_MODE: u32 = 0o644;
/// Mode of directories Brine creates under `pki_dir`.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) with mode `0700`. An existing
/// directory is left as it is.
///
/// # Errors
/// [`KeyError::Io`] if it cannot be created.
pub fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder
        .create(dir)
        .map_err(|e| KeyError::io("creating directory", dir, e))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory is created with `mode` (exactly, whatever the umask), written,
/// fsynced and renamed over `path`, then the directory is fsynced. Readers
/// see the old content or the new, never a torn file. On failure the
/// temporary file is removed.
///
/// # Errors
/// [`KeyError::Io`] if any step fails (the parent directory must exist).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        KeyError::io(
            "writing",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let result = write_then_rename(&tmp, path, dir, bytes, mode);
    if result.is_err() {
        // best effort: the temp file is ours and useless now
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(
    tmp: &Path,
    path: &Path,
    dir: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), KeyError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options
        .open(tmp)
        .map_err(|e| KeyError::io("creating", tmp, e))?;
    // the umask may have narrowed the mode given to open(2): set it exactly
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| KeyError::io("setting permissions on", tmp, e))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(bytes)
        .map_err(|e| KeyError::io("writing", tmp, e))?;
    file.sync_all()
        .map_err(|e| KeyError::io("syncing", tmp, e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| KeyError::io("renaming into", path, e))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| KeyError::io("syncing directory", dir, e))
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, File::open);
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).map_or(0, |m| m.permissions().mode() & 0o777)
    }

    #[test]
    fn writes_with_exact_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.pem");
        write_atomic(&path, b"one", PRIVATE_KEY_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode_of(&path), 0o600);
        write_atomic(&path, b"two", PUBLIC_KEY_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), 0o644);
        // no temp files left behind
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["master.pem"]);
    }

    #[test]
    fn missing_parent_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("x");
        assert!(matches!(
            write_atomic(&path, b"x", PRIVATE_KEY_MODE),
            Err(KeyError::Io { .. })
        ));
        // a directory in the way of the rename
        let blocker = dir.path().join("blocker");
        fs::create_dir(&blocker).unwrap();
        fs::write(blocker.join("f"), b"").unwrap();
        assert!(write_atomic(&blocker, b"x", PRIVATE_KEY_MODE).is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["blocker"]);
    }

    #[test]
    fn ensure_dir_creates_owner_only_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a").join("b");
        ensure_dir(&deep).unwrap();
        assert_eq!(mode_of(&deep), 0o700);
        ensure_dir(&deep).unwrap();
    }
}
