//! Typed errors shared by every transport.

use std::{io, time::Duration};

/// What went wrong in a transport, with the peer it concerned.
///
/// `Display` describes this level only; the cause, where there is one, is the
/// [`source`](std::error::Error::source). The wording is not a contract: match
/// on the variant (or use the `is_*` predicates) instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A request got no reply, or a connection was not made, within the deadline.
    #[error("timed out after {after:?} waiting for {peer}")]
    Timeout {
        /// The remote end.
        peer: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// Nothing listens at the address (or it refused the connection).
    #[error("connection to {peer} refused")]
    ConnectionRefused {
        /// The remote end.
        peer: String,
    },
    /// An established connection broke before the exchange finished.
    #[error("connection to {peer} lost")]
    ConnectionLost {
        /// The remote end.
        peer: String,
        /// The I/O error that broke it, if one was seen.
        #[source]
        source: Option<io::Error>,
    },
    /// A frame is larger than the configured maximum; nothing of that size
    /// was allocated.
    #[error("frame of {len} bytes from {peer} exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Where the frame came from (or was going to).
        peer: String,
        /// The frame length announced or attempted.
        len: u64,
        /// The configured maximum ([`Limits::max_frame_size`](crate::Limits)).
        max: usize,
    },
    /// Bytes from the peer do not follow the framing.
    #[error("malformed frame from {peer}: {reason}")]
    Malformed {
        /// The remote end.
        peer: String,
        /// What was wrong, in a few words.
        reason: String,
    },
    /// The TLS handshake or certificate check failed.
    #[error("tls with {peer} failed: {reason}")]
    Tls {
        /// The remote end.
        peer: String,
        /// What failed, in a few words (never key material).
        reason: String,
    },
    /// A listening socket could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why; `AddrInUse` means the port is taken.
        #[source]
        source: io::Error,
    },
    /// The channel end was closed, locally or by the server shutting down.
    #[error("channel closed")]
    Closed,
    /// A subscriber fell so far behind that it was dropped to protect the others.
    #[error("subscriber fell behind by {missed} messages and was dropped")]
    Lagged {
        /// How many messages it missed.
        missed: u64,
    },
    /// An option was out of range or missing; names the option.
    #[error("invalid transport option {option}: {reason}")]
    InvalidOption {
        /// The option's name as written in config.
        option: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Any other I/O error on a connection.
    #[error("i/o error with {peer}")]
    Io {
        /// The remote end or local path.
        peer: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A backend-specific failure that fits no variant above.
    #[error("{transport} transport failed")]
    Backend {
        /// The backend's registry name.
        transport: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl TransportError {
    /// Whether trying the same operation again may succeed (the peer may come
    /// back); a caller with tries left should retry these.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::ConnectionRefused { .. } | Self::ConnectionLost { .. }
        )
    }

    /// Whether this is a failure to bind because the address is taken
    /// (the daemons exit with code 4 on it, as Salt's do).
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, Self::Bind { source, .. } if source.kind() == io::ErrorKind::AddrInUse)
    }

    /// Maps an I/O error on a connection to the closest semantic variant.
    pub fn from_io(peer: impl Into<String>, source: io::Error) -> Self {
        let peer = peer.into();
        match source.kind() {
            io::ErrorKind::ConnectionRefused => Self::ConnectionRefused { peer },
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected => Self::ConnectionLost {
                peer,
                source: Some(source),
            },
            io::ErrorKind::TimedOut => Self::Timeout {
                peer,
                after: Duration::ZERO,
            },
            _ => Self::Io { peer, source },
        }
    }
}

/// A `transport` name that no registered backend answers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {name:?} (known transports: {})", known.join(", "))]
pub struct UnknownTransport {
    /// The name asked for.
    pub name: String,
    /// Every name the registry knows, sorted.
    pub known: Vec<String>,
}

/// A second backend registered under a name already taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a transport named {name:?} is already registered")]
pub struct DuplicateTransport {
    /// The contested name.
    pub name: String,
}
