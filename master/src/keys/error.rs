use std::io;
use std::path::PathBuf;

use brine_protocol::KeyError;
use thiserror::Error;

/// Why a key management operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// An invalid minion id, or a key file error from the pki layer.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A file operation outside the pki layer failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A `hash_type` Brine cannot compute (Salt also allows `md5`).
    #[error("unsupported hash type {0:?} (supported: sha1, sha224, sha256, sha384, sha512)")]
    UnsupportedHash(String),
}

impl KeyStoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        KeyStoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
