//! Asking a running master to rotate its session (AES) key: Salt's
//! `<cachedir>/.dfn` drop file, so `brine-key` and the master agree.
//!
//! The requester writes the master's id into `.dfn-next` with mode `0400`
//! and renames it to `.dfn` (if a request is already pending it does
//! nothing). The master's Maintenance rotates when it finds `.dfn` with
//! mode exactly `0400` and its own id inside, and removes it; a `.dfn`
//! with other permissions is ignored with an error log, as in Salt. At
//! start-up the master clears any stale request.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use tracing::{error, info};

use super::KeyStoreError;

/// The drop file's name under `cachedir`.
pub const DROPFILE: &str = ".dfn";
const DROPFILE_NEXT: &str = ".dfn-next";
const DROPFILE_MODE: u32 = 0o400;

/// Where and for whom rotation requests are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRequest {
    /// The master's `cachedir`.
    pub cachedir: PathBuf,
    /// The master's `id` (written into the drop file).
    pub master_id: String,
}

/// Requests a session key rotation (Salt's `salt.crypt.dropfile`).
/// Returns `false` if a request was already pending.
///
/// # Errors
/// [`KeyStoreError::Io`] if the file cannot be written.
pub fn request_aes_rotation(cachedir: &Path, master_id: &str) -> Result<bool, KeyStoreError> {
    let dfn = cachedir.join(DROPFILE);
    let next = cachedir.join(DROPFILE_NEXT);
    if dfn.is_file() {
        info!("AES key rotation already requested");
        return Ok(false);
    }
    info!("requesting AES key rotation");
    match fs::remove_file(&next) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(KeyStoreError::io("removing", next, e)),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(DROPFILE_MODE);
    }
    let mut file = options
        .open(&next)
        .map_err(|e| KeyStoreError::io("creating", &next, e))?;
    file.write_all(master_id.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| KeyStoreError::io("writing", &next, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(DROPFILE_MODE))
            .map_err(|e| KeyStoreError::io("setting permissions on", &next, e))?;
    }
    drop(file);
    fs::rename(&next, &dfn).map_err(|e| KeyStoreError::io("renaming into", &dfn, e))?;
    if let Ok(dir) = File::open(cachedir) {
        // best effort: the request is a hint, the next one will do too
        let _ = dir.sync_all();
    }
    Ok(true)
}

/// The master's side: whether a rotation was requested for `master_id`.
/// A valid request is consumed (the file removed). A drop file with the
/// wrong permissions is logged and ignored; one naming another master is
/// left alone.
///
/// # Errors
/// [`KeyStoreError::Io`] if the file exists but cannot be read or removed.
pub fn take_aes_rotation_request(cachedir: &Path, master_id: &str) -> Result<bool, KeyStoreError> {
    let dfn = cachedir.join(DROPFILE);
    let meta = match fs::symlink_metadata(&dfn) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(KeyStoreError::io("reading", dfn, e)),
    };
    if !meta.is_file() || !has_dropfile_mode(&meta) {
        error!(path = %dfn.display(), "found dropfile with incorrect permissions, ignoring");
        return Ok(false);
    }
    let content = fs::read(&dfn).map_err(|e| KeyStoreError::io("reading", &dfn, e))?;
    if content != master_id.as_bytes() {
        return Ok(false);
    }
    match fs::remove_file(&dfn) {
        Ok(()) => Ok(true),
        // someone else consumed it between our read and remove
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KeyStoreError::io("removing", dfn, e)),
    }
}

/// Removes a pending request (the master does this at start-up: it
/// starts with a fresh key anyway).
///
/// # Errors
/// [`KeyStoreError::Io`] if it exists and cannot be removed.
pub fn clear_aes_rotation_request(cachedir: &Path) -> Result<(), KeyStoreError> {
    let dfn = cachedir.join(DROPFILE);
    match fs::remove_file(&dfn) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(KeyStoreError::io("removing", dfn, e)),
    }
}

#[cfg(unix)]
fn has_dropfile_mode(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777 == DROPFILE_MODE
}

#[cfg(not(unix))]
fn has_dropfile_mode(meta: &fs::Metadata) -> bool {
    meta.permissions().readonly()
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn request_then_take_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!take_aes_rotation_request(dir.path(), "host_master").unwrap());
        assert!(request_aes_rotation(dir.path(), "host_master").unwrap());
        let dfn = dir.path().join(DROPFILE);
        assert_eq!(
            fs::metadata(&dfn).unwrap().permissions().mode() & 0o777,
            0o400
        );
        assert_eq!(fs::read_to_string(&dfn).unwrap(), "host_master");
        // already pending
        assert!(!request_aes_rotation(dir.path(), "host_master").unwrap());
        // another master's id does not consume it
        assert!(!take_aes_rotation_request(dir.path(), "other_master").unwrap());
        assert!(dfn.exists());
        assert!(take_aes_rotation_request(dir.path(), "host_master").unwrap());
        assert!(!dfn.exists());
        assert!(!take_aes_rotation_request(dir.path(), "host_master").unwrap());
    }

    #[test]
    fn wrong_permissions_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let dfn = dir.path().join(DROPFILE);
        fs::write(&dfn, "host_master").unwrap();
        fs::set_permissions(&dfn, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!take_aes_rotation_request(dir.path(), "host_master").unwrap());
        assert!(dfn.exists());
        clear_aes_rotation_request(dir.path()).unwrap();
        assert!(!dfn.exists());
        clear_aes_rotation_request(dir.path()).unwrap();
    }
}
