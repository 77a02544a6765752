//! Mapping WebSocket errors onto [`TransportError`].

use brine_transport_api::TransportError;
use tokio_tungstenite::tungstenite::{
    self,
    error::{CapacityError, ProtocolError},
};

/// The registry name, used in errors.
use crate::NAME;

/// A WebSocket library error, kept private behind `TransportError::Backend`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct WsError(tungstenite::Error);

/// The closest [`TransportError`] for a WebSocket error on a connection to
/// or from `peer`.
pub(crate) fn map_ws(peer: &str, err: tungstenite::Error) -> TransportError {
    match err {
        tungstenite::Error::Io(io) => TransportError::from_io(peer, io),
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            TransportError::ConnectionLost {
                peer: peer.to_owned(),
                source: None,
            }
        }
        tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            TransportError::FrameTooLarge {
                peer: peer.to_owned(),
                len: size as u64,
                max: max_size,
            }
        }
        tungstenite::Error::Protocol(reason) => TransportError::Malformed {
            peer: peer.to_owned(),
            reason: reason.to_string(),
        },
        other => TransportError::Backend {
            transport: NAME,
            source: Box::new(WsError(other)),
        },
    }
}
