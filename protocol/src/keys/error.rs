use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::crypto::CryptoError;

/// Why a key file operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A minion id that cannot be a file name (empty, `.`, `..`, or holding
    /// `/`, `\` or NUL, or longer than a file name may be).
    #[error("invalid minion id {id:?}: {reason}")]
    InvalidId {
        /// The offending id (escaped by `Debug`).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Reading, writing or creating a file or directory failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`reading`, `writing`, `creating directory`, …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A key file exists but does not hold a usable key.
    #[error("bad key in {path}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        #[source]
        source: CryptoError,
    },
    /// A key could not be generated or encoded.
    #[error("key generation failed")]
    Crypto(#[from] CryptoError),
}

impl KeyError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        KeyError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
