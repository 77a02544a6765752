//! The backend's own errors and their mapping into [`TransportError`].

use std::path::PathBuf;

use brine_transport_api::TransportError;

use crate::NAME;

/// What can go wrong while setting up a TCP channel end, before any
/// connection exists (TLS material, options).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A TLS option the configuration needs was not given.
    #[error("{option} is required when tls is on")]
    MissingTlsFile {
        /// The option, as `tls.cert`, `tls.key` or `tls.ca`.
        option: &'static str,
    },
    /// A PEM file could not be read or parsed.
    #[error("cannot load {path:?}: {reason}")]
    Pem {
        /// The option the file was given for.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong (from the PEM parser; never key material).
        reason: String,
    },
    /// `tls.server_name` is not a valid DNS name or IP address.
    #[error("{name:?} is not a valid dns name or ip address")]
    ServerName {
        /// The name given.
        name: String,
    },
    /// rustls refused the certificate, key or trust store.
    #[error("tls configuration refused")]
    TlsConfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The identity does not fit in a subscription hello.
    #[error("identity of {len} bytes is over the {max}-byte limit")]
    IdentityTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl From<Error> for TransportError {
    fn from(err: Error) -> Self {
        match err {
            Error::MissingTlsFile { option } => TransportError::InvalidOption {
                option: option.to_owned(),
                reason: err.to_string(),
            },
            Error::Pem { option, .. } => TransportError::InvalidOption {
                option: option.to_owned(),
                reason: err.to_string(),
            },
            Error::ServerName { .. } => TransportError::InvalidOption {
                option: "tls.server_name".to_owned(),
                reason: err.to_string(),
            },
            Error::IdentityTooLong { .. } => TransportError::InvalidOption {
                option: "identity".to_owned(),
                reason: err.to_string(),
            },
            Error::TlsConfig(_) => TransportError::Backend {
                transport: NAME,
                source: Box::new(err),
            },
        }
    }
}
