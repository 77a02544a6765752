//! The backend's own errors and their mapping into [`TransportError`].
//!
//! quinn and rustls types never leave this crate: a failure with a semantic
//! [`TransportError`] variant (TLS, timeout, lost connection, oversized
//! frame) is mapped to it, and anything else becomes
//! [`TransportError::Backend`] carrying an [`Error`] whose source is kept
//! opaque.

use std::{fmt, io, sync::Arc, time::Duration};

use brine_transport_api::TransportError;

use crate::{NAME, wire::code};

/// Failures of the QUIC backend that no semantic [`TransportError`] variant
/// covers; found as the source of [`TransportError::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// quinn refused to start a connection (a bad server name, the local
    /// endpoint stopping, an unusable remote address).
    #[error("cannot start a connection")]
    Connect(#[source] Opaque),
    /// An established connection failed in a way no semantic variant covers.
    #[error("connection failed")]
    Connection(#[source] Opaque),
    /// The TLS or QUIC configuration could not be built from the material given.
    #[error("cannot build the tls configuration")]
    Config(#[source] Opaque),
    /// A self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate")]
    Generate(#[source] Opaque),
    /// The peer broke Brine's stream protocol (unknown stream kind, unknown
    /// reply status).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A background task ended abnormally.
    #[error("background task failed")]
    Task(#[source] Opaque),
}

/// A third-party error (quinn, rustls, rcgen), kept opaque so that their
/// types stay out of this crate's API. `Display` and `source` forward to it.
pub struct Opaque(Box<dyn std::error::Error + Send + Sync>);

impl Opaque {
    pub(crate) fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(err))
    }

    pub(crate) fn msg(text: impl Into<String>) -> Self {
        Self(text.into().into())
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Opaque {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<Error> for TransportError {
    fn from(err: Error) -> Self {
        backend(err)
    }
}

/// `TransportError::Backend` for this transport.
pub(crate) fn backend(err: Error) -> TransportError {
    TransportError::Backend {
        transport: NAME,
        source: Box::new(err),
    }
}

/// `TransportError::InvalidOption` naming `option`.
pub(crate) fn invalid_option(option: &str, reason: impl Into<String>) -> TransportError {
    TransportError::InvalidOption {
        option: option.to_owned(),
        reason: reason.into(),
    }
}

/// `TransportError::Io` about a local file.
pub(crate) fn file_io(path: &std::path::Path, source: io::Error) -> TransportError {
    TransportError::Io {
        peer: path.display().to_string(),
        source,
    }
}

/// `TransportError::ConnectionLost` with a short reason as its source.
pub(crate) fn lost(peer: &str, reason: impl Into<String>) -> TransportError {
    TransportError::ConnectionLost {
        peer: peer.to_owned(),
        source: Some(io::Error::other(reason.into())),
    }
}

/// `TransportError::Timeout` after `after`.
pub(crate) fn timeout(peer: &str, after: Duration) -> TransportError {
    TransportError::Timeout {
        peer: peer.to_owned(),
        after,
    }
}

/// Whether a QUIC transport error code is a TLS alert (`0x100..0x200`).
fn is_crypto_code(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// Maps a connection failure seen while connecting or on an established
/// connection. `tls_reason` is the certificate verifier's own explanation,
/// when it rejected the server.
pub(crate) fn connection(
    peer: &str,
    err: quinn::ConnectionError,
    tls_reason: Option<String>,
) -> TransportError {
    use quinn::ConnectionError as E;
    if let Some(reason) = tls_reason {
        return TransportError::Tls {
            peer: peer.to_owned(),
            reason,
        };
    }
    match err {
        E::TransportError(ref te) if is_crypto_code(te.code) || te.reason.contains("TLS") => {
            TransportError::Tls {
                peer: peer.to_owned(),
                reason: te.reason.clone(),
            }
        }
        E::ConnectionClosed(ref close) if is_crypto_code(close.error_code) => TransportError::Tls {
            peer: peer.to_owned(),
            reason: format!("rejected by the peer: {close}"),
        },
        E::ApplicationClosed(_) | E::ConnectionClosed(_) | E::Reset => {
            TransportError::ConnectionLost {
                peer: peer.to_owned(),
                source: Some(io::Error::other(Opaque::new(err))),
            }
        }
        E::TimedOut => TransportError::ConnectionLost {
            peer: peer.to_owned(),
            source: Some(io::Error::new(io::ErrorKind::TimedOut, Opaque::new(err))),
        },
        E::LocallyClosed => TransportError::Closed,
        E::VersionMismatch | E::TransportError(_) | E::CidsExhausted => {
            backend(Error::Connection(Opaque::new(err)))
        }
    }
}

/// Maps a failure to start connecting.
pub(crate) fn connect(err: quinn::ConnectError) -> TransportError {
    match err {
        quinn::ConnectError::InvalidServerName(name) => invalid_option(
            "tls.server_name",
            format!("{name:?} is not a valid server name"),
        ),
        quinn::ConnectError::EndpointStopping => TransportError::Closed,
        other => backend(Error::Connect(Opaque::new(other))),
    }
}

/// Maps a stream write failure. A stream the server stopped because its
/// service is not bound is a refusal.
pub(crate) fn write(peer: &str, err: quinn::WriteError) -> TransportError {
    match err {
        quinn::WriteError::ConnectionLost(err) => connection(peer, err, None),
        quinn::WriteError::Stopped(code::NO_SERVICE) => refused(peer),
        quinn::WriteError::Stopped(code) => lost(
            peer,
            format!("stream stopped by peer: {}", crate::wire::describe(code)),
        ),
        quinn::WriteError::ClosedStream | quinn::WriteError::ZeroRttRejected => {
            lost(peer, "stream closed")
        }
    }
}

/// Maps a stream read failure, as [`write()`] does.
pub(crate) fn read(peer: &str, err: quinn::ReadError) -> TransportError {
    match err {
        quinn::ReadError::ConnectionLost(err) => connection(peer, err, None),
        quinn::ReadError::Reset(code::NO_SERVICE) => refused(peer),
        quinn::ReadError::Reset(code) => lost(
            peer,
            format!("stream reset by peer: {}", crate::wire::describe(code)),
        ),
        other => lost(peer, other.to_string()),
    }
}

fn refused(peer: &str) -> TransportError {
    TransportError::ConnectionRefused {
        peer: peer.to_owned(),
    }
}

/// Maps a `read_exact` failure; a stream ending early is a lost exchange.
pub(crate) fn read_exact(peer: &str, err: quinn::ReadExactError) -> TransportError {
    match err {
        quinn::ReadExactError::FinishedEarly(_) => lost(peer, "stream ended early"),
        quinn::ReadExactError::ReadError(err) => read(peer, err),
    }
}

/// A copy of `err` for a second caller: link and stream failures are
/// shared by every request waiting on them, and `TransportError` is not
/// `Clone`.
pub(crate) fn duplicate(err: &TransportError) -> TransportError {
    match err {
        TransportError::Timeout { peer, after } => timeout(peer, *after),
        TransportError::ConnectionRefused { peer } => refused(peer),
        TransportError::FrameTooLarge { peer, len, max } => TransportError::FrameTooLarge {
            peer: peer.clone(),
            len: *len,
            max: *max,
        },
        TransportError::Malformed { peer, reason } => TransportError::Malformed {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        TransportError::ConnectionLost { peer, source } => TransportError::ConnectionLost {
            peer: peer.clone(),
            source: source
                .as_ref()
                .map(|s| io::Error::new(s.kind(), s.to_string())),
        },
        TransportError::Tls { peer, reason } => TransportError::Tls {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        TransportError::Closed => TransportError::Closed,
        TransportError::InvalidOption { option, reason } => invalid_option(option, reason.clone()),
        TransportError::Io { peer, source } => TransportError::Io {
            peer: peer.clone(),
            source: io::Error::new(source.kind(), source.to_string()),
        },
        other => backend(Error::Connection(Opaque::msg(chain(other)))),
    }
}

/// `err` and its sources as one line, for logs and `Disconnected` reasons.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A failure shared by everyone waiting on a link.
pub(crate) type SharedError = Arc<TransportError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keeps_the_variant_and_peer() {
        let original = timeout("127.0.0.1:1", Duration::from_secs(2));
        let copy = duplicate(&original);
        assert!(matches!(copy, TransportError::Timeout { ref peer, after }
            if peer == "127.0.0.1:1" && after == Duration::from_secs(2)));
        let tls = TransportError::Tls {
            peer: "p".into(),
            reason: "changed".into(),
        };
        assert!(
            matches!(duplicate(&tls), TransportError::Tls { reason, .. } if reason == "changed")
        );
    }

    #[test]
    fn chain_joins_sources() {
        let err = lost("peer", "stream reset");
        assert_eq!(chain(&err), "connection to peer lost: stream reset");
    }
}
