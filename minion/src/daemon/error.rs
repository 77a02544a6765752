//! The daemon's error: why a minion could not start or had to stop.

use brine_protocol::{AuthError, KeyError};
use brine_transport_api::{TransportError, UnknownTransport};

/// Salt's exit code for a minion whose key the master rejected
/// (`salt.defaults.exitcodes.EX_NOPERM`).
pub const EX_NOPERM: i32 = 77;

/// Why the minion daemon could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MinionError {
    /// No `id` in the config and the host name could not be read.
    #[error("no minion id configured and the host name is unknown")]
    NoId,
    /// The configured (or derived) id is not a valid minion id.
    #[error("invalid minion id {id:?}")]
    InvalidId {
        /// The id.
        id: String,
        /// Why it is invalid.
        #[source]
        source: KeyError,
    },
    /// `minion.pem`/`minion.pub` could not be loaded or generated, or
    /// `minion_master.pub` could not be read or written.
    #[error("minion keys in the pki_dir")]
    Keys(#[source] KeyError),
    /// The `transport` config key names no registered backend.
    #[error("transport")]
    UnknownTransport(#[from] UnknownTransport),
    /// A transport end could not be built.
    #[error("transport failure")]
    Transport(#[from] TransportError),
    /// The `master` address could not be resolved.
    #[error("cannot resolve master address {master}")]
    Resolve {
        /// `host:port` as configured.
        master: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The master rejected (or denied) this minion's key and
    /// `rejected_retry` is off; the binary exits with [`EX_NOPERM`].
    #[error(
        "the master rejected this minion's public key; delete it on the master (brine-key -d <id>) and restart the minion"
    )]
    Rejected,
    /// Authentication failed for good: the master key changed, or the
    /// master's reply did not verify (see the source).
    #[error("authentication with the master failed")]
    Auth(#[source] AuthError),
    /// An internal task ended abnormally.
    #[error("the minion's {0} task ended unexpectedly")]
    TaskFailed(&'static str),
}

impl MinionError {
    /// The process exit code the `brine-minion` binary uses for this error:
    /// [`EX_NOPERM`] (77) for a rejected key, as Salt's minion, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            MinionError::Rejected => EX_NOPERM,
            _ => 1,
        }
    }
}
