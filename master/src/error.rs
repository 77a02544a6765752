//! The master daemon's error type.

use std::path::PathBuf;

use brine_transport_api::{TransportError, UnknownTransport};
use thiserror::Error;

use crate::job_cache::JobCacheError;

/// Why [`Master::start`](crate::Master::start) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MasterError {
    /// A port the master must bind is taken (exit code 4, as Salt's).
    #[error("The ports are not available to bind: port {port} is in use")]
    PortInUse {
        /// The port.
        port: u16,
    },
    /// The `transport` key names no registered transport.
    #[error(transparent)]
    UnknownTransport(#[from] UnknownTransport),
    /// A directory could not be created or is not writable.
    #[error("directory {path} is not usable: {reason}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key file has unsafe permissions or could not be read or written.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The job cache could not be opened.
    #[error("could not open the job cache")]
    JobCache(#[source] JobCacheError),
    /// Binding a channel failed for another reason than a taken port.
    #[error("could not bind the {what}")]
    Bind {
        /// Which channel.
        what: &'static str,
        /// Why.
        #[source]
        source: TransportError,
    },
    /// The REST API (`rest_api:`) could not start.
    #[error(transparent)]
    Netapi(#[from] crate::netapi::NetapiError),
    /// A crypto primitive failed while setting up (random source, keys).
    #[error("crypto setup failed: {0}")]
    Crypto(String),
}

impl MasterError {
    /// The process exit code for this error: 4 for ports, as Salt's
    /// `EX_UNAVAILABLE`-style port check, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            MasterError::PortInUse { .. }
            | MasterError::Netapi(crate::netapi::NetapiError::PortInUse { .. }) => 4,
            _ => 1,
        }
    }
}
