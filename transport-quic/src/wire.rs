//! Brine's stream protocol inside a QUIC connection.
//!
//! Every stream is bidirectional and opened by the client; its first byte
//! says what it carries:
//!
//! - **request** (`0x02`): the client sends one length-prefixed frame (u32
//!   big-endian, as `brine_transport_api::framing`) and finishes its side;
//!   the server answers with one status byte and finishes: `OK` + a
//!   length-prefixed reply; `TOO_LARGE` / `REPLY_TOO_LARGE` + the announced
//!   length and the limit (u64 each); `NO_SERVICE` when no request server is
//!   bound at that address.
//! - **subscribe** (`0x01`): the client sends a length-prefixed identity
//!   (its minion id) and finishes its side; the server registers it, answers
//!   `HELLO_ACK`, then sends length-prefixed published frames for as long as
//!   the subscription lives. The server resets the stream with a [`code`]
//!   when it drops the subscriber.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::{RecvStream, VarInt};

use brine_transport_api::TransportError;

use crate::error;

/// Stream kind: a subscription to the publish channel.
pub(crate) const KIND_SUBSCRIBE: u8 = 0x01;
/// Stream kind: one request and its reply.
pub(crate) const KIND_REQUEST: u8 = 0x02;

/// Reply status: a reply frame follows.
pub(crate) const STATUS_OK: u8 = 0x00;
/// Reply status: the request was over the server's limit (length, limit follow).
pub(crate) const STATUS_TOO_LARGE: u8 = 0x01;
/// Reply status: the reply was over the server's limit (length, limit follow).
pub(crate) const STATUS_REPLY_TOO_LARGE: u8 = 0x02;
/// Reply status: nothing serves requests at this address.
pub(crate) const STATUS_NO_SERVICE: u8 = 0x03;

/// The server's answer to a subscription hello: the subscription is live.
pub(crate) const HELLO_ACK: u8 = 0xAC;

/// The longest identity a subscriber may announce.
pub(crate) const MAX_IDENTITY: usize = 1024;

/// Application error codes for stream resets and connection closes.
pub(crate) mod code {
    use quinn::VarInt;

    /// Orderly shutdown of the sending side.
    pub(crate) const CLOSING: VarInt = VarInt::from_u32(0);
    /// The subscriber's queue was full; it was dropped.
    pub(crate) const TOO_SLOW: VarInt = VarInt::from_u32(1);
    /// The stream's service is not bound at this address.
    pub(crate) const NO_SERVICE: VarInt = VarInt::from_u32(2);
    /// The peer broke the stream protocol.
    pub(crate) const PROTOCOL: VarInt = VarInt::from_u32(3);
    /// A frame was over the limit.
    pub(crate) const TOO_LARGE: VarInt = VarInt::from_u32(4);
    /// The request was abandoned (timed out or cancelled).
    pub(crate) const CANCELLED: VarInt = VarInt::from_u32(5);
}

/// Words for a reset `code`, for logs and `Disconnected` reasons.
pub(crate) fn describe(code: VarInt) -> &'static str {
    match code.into_inner() {
        0 => "closing",
        1 => "subscriber too slow, dropped by the server",
        2 => "service not bound at this address",
        3 => "protocol violation",
        4 => "frame too large",
        5 => "cancelled",
        _ => "unknown reason",
    }
}

/// Most bytes read from a stream at once while a frame arrives.
const READ_CHUNK: usize = 64 * 1024;

/// Reads exactly `N` bytes; `Ok(None)` if the stream ends cleanly first.
pub(crate) async fn read_array<const N: usize>(
    recv: &mut RecvStream,
    peer: &str,
) -> Result<Option<[u8; N]>, TransportError> {
    let mut buf = [0u8; N];
    match recv.read_exact(&mut buf).await {
        Ok(()) => Ok(Some(buf)),
        Err(quinn::ReadExactError::FinishedEarly(0)) => Ok(None),
        Err(err) => Err(error::read_exact(peer, err)),
    }
}

/// Reads a u32 length prefix; `Ok(None)` on a clean end before it.
pub(crate) async fn read_len(
    recv: &mut RecvStream,
    peer: &str,
) -> Result<Option<u64>, TransportError> {
    Ok(read_array::<4>(recv, peer)
        .await?
        .map(|h| u64::from(u32::from_be_bytes(h))))
}

/// Checks an announced length against `max` before anything is allocated.
pub(crate) fn check_len(len: u64, max: usize, peer: &str) -> Result<usize, TransportError> {
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(TransportError::FrameTooLarge {
            peer: peer.to_owned(),
            len,
            max,
        }),
    }
}

/// Reads exactly `len` bytes, growing the buffer only as they arrive.
pub(crate) async fn read_payload(
    recv: &mut RecvStream,
    len: usize,
    peer: &str,
) -> Result<Bytes, TransportError> {
    read_payload_within(recv, len, peer, None).await
}

/// As [`read_payload`], failing with a timeout when no bytes arrive for
/// `idle` (so a peer that stops mid-frame cannot hold resources forever).
pub(crate) async fn read_payload_within(
    recv: &mut RecvStream,
    len: usize,
    peer: &str,
    idle: Option<Duration>,
) -> Result<Bytes, TransportError> {
    let mut buf = BytesMut::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        let want = (len - buf.len()).min(READ_CHUNK);
        let read = recv.read_chunk(want, true);
        let read = match idle {
            Some(idle) => tokio::time::timeout(idle, read)
                .await
                .map_err(|_| error::timeout(peer, idle))?,
            None => read.await,
        };
        match read {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(error::lost(peer, "stream ended inside a frame")),
            Err(err) => return Err(error::read(peer, err)),
        }
    }
    Ok(buf.freeze())
}

/// Reads a length-prefixed frame of at most `max` bytes; `Ok(None)` on a
/// clean end of stream between frames.
pub(crate) async fn read_frame(
    recv: &mut RecvStream,
    max: usize,
    peer: &str,
) -> Result<Option<Bytes>, TransportError> {
    let Some(len) = read_len(recv, peer).await? else {
        return Ok(None);
    };
    let len = check_len(len, max, peer)?;
    read_payload(recv, len, peer).await.map(Some)
}

/// `[status][len u64][max u64]`: the refusal of an oversized frame.
pub(crate) fn too_large(status: u8, len: u64, max: usize) -> Bytes {
    let mut out = Vec::with_capacity(17);
    out.push(status);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&u64::try_from(max).unwrap_or(u64::MAX).to_be_bytes());
    Bytes::from(out)
}

/// A kind (or status) byte followed by a length prefix for `len` bytes.
pub(crate) fn lead(first: u8, len: usize, max: usize, peer: &str) -> Result<Bytes, TransportError> {
    let header = brine_transport_api::framing::encode_header(len, max, peer)?;
    let mut out = Vec::with_capacity(5);
    out.push(first);
    out.extend_from_slice(&header);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_len_refuses_over_the_limit() {
        assert_eq!(check_len(10, 10, "p").unwrap(), 10);
        let err = check_len(11, 10, "p").unwrap_err();
        assert!(matches!(
            err,
            TransportError::FrameTooLarge {
                len: 11,
                max: 10,
                ..
            }
        ));
    }

    #[test]
    fn refusal_layout() {
        let b = too_large(STATUS_TOO_LARGE, 5, 4);
        assert_eq!(b.len(), 17);
        assert_eq!(b[0], STATUS_TOO_LARGE);
        assert_eq!(&b[1..9], &5u64.to_be_bytes());
        assert_eq!(&b[9..], &4u64.to_be_bytes());
    }

    #[test]
    fn lead_is_kind_then_length() {
        let b = lead(KIND_REQUEST, 3, 10, "p").unwrap();
        assert_eq!(&b[..], &[KIND_REQUEST, 0, 0, 0, 3]);
        assert!(lead(KIND_REQUEST, 11, 10, "p").is_err());
    }
}
