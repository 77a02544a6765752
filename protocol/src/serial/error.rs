use thiserror::Error;

use super::Serialization;

/// Why a value could not be encoded or decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SerialError {
    /// The input ended inside an item, or a length prefix claims more bytes
    /// than remain (checked before anything is allocated).
    #[error("msgpack input truncated: need {needed} more bytes, {available} available")]
    Truncated {
        /// Bytes the item still needs.
        needed: usize,
        /// Bytes that remain in the input.
        available: usize,
    },
    /// The input holds a marker byte msgpack never uses (`0xc1`).
    #[error("invalid msgpack marker byte 0x{0:02x}")]
    InvalidMarker(u8),
    /// Arrays and maps are nested deeper than the decoder allows.
    #[error("nesting deeper than {max} levels")]
    DepthExceeded {
        /// The configured limit.
        max: usize,
    },
    /// A complete item was decoded but bytes follow it.
    #[error("{0} trailing bytes after the document")]
    TrailingBytes(usize),
    /// A string, byte string, array, map or ext is longer than msgpack can express.
    #[error("{what} of length {len} is too long for msgpack")]
    TooLong {
        /// What was being encoded.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A typed struct could not be serialized.
    #[error("could not serialize with {format}: {message}")]
    Serialize {
        /// `msgpack` or `bincode`.
        format: &'static str,
        /// The serializer's message.
        message: String,
    },
    /// Well-formed input did not match the expected type.
    #[error("could not deserialize with {format}: {message}")]
    Deserialize {
        /// `msgpack` or `bincode`.
        format: &'static str,
        /// The deserializer's message.
        message: String,
    },
    /// The `serial` config key names a serialization Brine does not have.
    #[error("unknown serialization {name:?} for the `serial` key (available: msgpack, bincode)")]
    UnknownSerialization {
        /// The configured value.
        name: String,
    },
    /// The input was packed with the other serialization: the peers'
    /// `serial` settings differ (see [`Serialization::decode_value`]).
    #[error("expected {expected}, found {found}: both peers must use the same `serial`")]
    SerializationMismatch {
        /// What this side is configured with.
        expected: Serialization,
        /// What the input was packed with.
        found: Serialization,
    },
}
