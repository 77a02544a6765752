//! The backend's errors and their mapping into [`TransportError`].

use std::fmt;

use brine_transport_api::TransportError;

use crate::NAME;

/// A failure of this backend that fits no semantic [`TransportError`]
/// variant; it travels as the `source` of [`TransportError::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A zeromq socket operation failed.
    #[error("zeromq {op} failed")]
    Socket {
        /// What was being done (`bind`, `connect`, `send`, …).
        op: &'static str,
        /// The zeromq crate's error.
        #[source]
        source: SocketError,
    },
}

/// An error from the `zeromq` crate, kept opaque so its types stay out of
/// Brine's public API.
pub struct SocketError(zeromq::ZmqError);

impl fmt::Debug for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<Error> for TransportError {
    fn from(err: Error) -> Self {
        Self::Backend {
            transport: NAME,
            source: Box::new(err),
        }
    }
}

/// Maps a zeromq error during `op` with `peer` to the closest semantic
/// [`TransportError`].
pub(crate) fn from_zmq(peer: &str, op: &'static str, err: zeromq::ZmqError) -> TransportError {
    match err {
        zeromq::ZmqError::Network(io) => TransportError::from_io(peer, io),
        zeromq::ZmqError::ConnectTimeout(after) => TransportError::Timeout {
            peer: peer.to_owned(),
            after,
        },
        // The peer's queue is gone: it disconnected under us.
        zeromq::ZmqError::ReturnToSender { .. } | zeromq::ZmqError::BufferFull(_) => {
            TransportError::ConnectionLost {
                peer: peer.to_owned(),
                source: None,
            }
        }
        other => Error::Socket {
            op,
            source: SocketError(other),
        }
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use std::{error::Error as _, io, time::Duration};

    use super::*;

    #[test]
    fn network_and_timeout_errors_become_semantic_variants() {
        let refused = zeromq::ZmqError::Network(io::ErrorKind::ConnectionRefused.into());
        assert!(matches!(
            from_zmq("p", "connect", refused),
            TransportError::ConnectionRefused { .. }
        ));
        let timeout = zeromq::ZmqError::ConnectTimeout(Duration::from_secs(1));
        assert!(matches!(
            from_zmq("p", "connect", timeout),
            TransportError::Timeout { .. }
        ));
        let other = from_zmq("p", "send", zeromq::ZmqError::Other("boom"));
        assert!(matches!(
            other,
            TransportError::Backend {
                transport: NAME,
                ..
            }
        ));
        let source = other.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("zeromq send failed"));
    }
}
