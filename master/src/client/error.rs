//! LocalClient errors.

use std::path::PathBuf;

use brine_transport_api::{TransportError, UnknownTransport};
use thiserror::Error;

/// Why a [`LocalClient`](super::LocalClient) call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The root key could not be read (not running as the master's user?).
    #[error("could not read the root key at {path}")]
    RootKey {
        /// Where it was looked for.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `transport` key names no registered transport.
    #[error(transparent)]
    UnknownTransport(#[from] UnknownTransport),
    /// The request channel or the event bus failed.
    #[error("could not reach the master")]
    Transport(#[from] TransportError),
    /// No master serves the event bus under `sock_dir` (not running, or
    /// another `sock_dir`).
    #[error("the master is not running (no event bus under {})", sock_dir.display())]
    NotRunning {
        /// Where the event bus socket was looked for.
        sock_dir: PathBuf,
        /// Why connecting failed.
        #[source]
        source: TransportError,
    },
    /// The master's reply could not be read.
    #[error("unreadable reply from the master: {0}")]
    BadReply(String),
    /// The master refused: authentication, an unresolvable target, …
    #[error("the master refused: {0}")]
    Refused(String),
}
