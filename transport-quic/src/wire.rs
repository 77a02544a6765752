//! Brine's stream protocol inside a QUIC connection.
//!
//! Every stream is bidirectional and opened by the client; its first byte
//! says what it carries. Integers are big-endian.
//!
//! - **requests** (`0x02`): one long-lived stream per connection, opened by
//!   the client's first request and again after it breaks, carrying every
//!   request of that client; a request id the client picks (unique per
//!   client) matches each reply to its request:
//!
//!   ```text
//!   client → server:  | id u64 | len u32 | request (len bytes) |        repeated
//!   server → client:  | id u64 | status u8 | what the status carries |  repeated, any order
//!   ```
//!
//!   | status | carries | meaning |
//!   | --- | --- | --- |
//!   | `OK` `0x00` | `len u32` + the reply | the handler's answer |
//!   | `TOO_LARGE` `0x01` | `len u64`, `max u64` | the request was over the server's limit; the server skips its bytes unread and goes on serving the stream |
//!   | `REPLY_TOO_LARGE` `0x02` | `len u64`, `max u64` | the reply was over the server's limit and was not sent |
//!   | `NO_SERVICE` `0x03` | nothing | no request server is bound at this address; the client fails every request on that stream and opens a fresh one next time |
//!
//!   The server answers as handlers finish; it resets the stream with
//!   [`code::NO_SERVICE`] when its request server closes and with
//!   [`code::STALLED`] when a request stops arriving mid-frame. A client
//!   that gives up on a stream resets it with [`code::CANCELLED`]; a request
//!   that times out is forgotten by its client, and its late reply dropped.
//! - **subscribe** (`0x01`): the client sends a length-prefixed identity
//!   (u32 length, as `brine_transport_api::framing`; its minion id) and
//!   finishes its side; the server registers it, answers `HELLO_ACK`, then
//!   sends length-prefixed published frames for as long as the
//!   subscription lives. The server resets the stream with a [`code`] when
//!   it drops the subscriber.

use brine_transport_api::{TransportError, framing};
use bytes::{BufMut, Bytes, BytesMut};
use quinn::{RecvStream, VarInt};

use crate::error;

/// Stream kind: a subscription to the publish channel.
pub(crate) const KIND_SUBSCRIBE: u8 = 0x01;
/// Stream kind: the request stream, carrying many requests and replies.
pub(crate) const KIND_REQUESTS: u8 = 0x02;

/// Reply status: a reply frame follows.
pub(crate) const STATUS_OK: u8 = 0x00;
/// Reply status: the request was over the server's limit (length, limit follow).
pub(crate) const STATUS_TOO_LARGE: u8 = 0x01;
/// Reply status: the reply was over the server's limit (length, limit follow).
pub(crate) const STATUS_REPLY_TOO_LARGE: u8 = 0x02;
/// Reply status: nothing serves requests at this address.
pub(crate) const STATUS_NO_SERVICE: u8 = 0x03;

/// Bytes of a request id.
pub(crate) const ID_LEN: usize = 8;
/// Bytes before a request's payload: id and length.
pub(crate) const REQUEST_HEAD_LEN: usize = ID_LEN + framing::HEADER_LEN;
/// Bytes before a reply's payload at most: id, status, and two u64 (a refusal).
pub(crate) const REPLY_HEAD_MAX: usize = ID_LEN + 1 + 16;

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
    /// The client gave up on the stream.
    pub(crate) const CANCELLED: VarInt = VarInt::from_u32(5);
    /// A frame stopped arriving halfway for too long.
    pub(crate) const STALLED: VarInt = VarInt::from_u32(6);
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
        6 => "stalled inside a frame",
        _ => "unknown reason",
    }
}

/// One answer on the request stream, as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The handler's reply.
    Reply(Bytes),
    /// The request was `len` bytes, over the server's `max`.
    TooLarge { len: u64, max: u64 },
    /// The reply was `len` bytes, over the `max` of the server (or, decoded
    /// by the client, of the client).
    ReplyTooLarge { len: u64, max: u64 },
    /// No request server is bound where the request arrived.
    NoService,
}

impl Answer {
    /// What the request that gets this answer returns.
    pub(crate) fn into_result(self, peer: &str) -> Result<Bytes, TransportError> {
        match self {
            Self::Reply(reply) => Ok(reply),
            Self::TooLarge { len, max } | Self::ReplyTooLarge { len, max } => {
                Err(TransportError::FrameTooLarge {
                    peer: peer.to_owned(),
                    len,
                    max: usize::try_from(max).unwrap_or(usize::MAX),
                })
            }
            Self::NoService => Err(TransportError::ConnectionRefused {
                peer: peer.to_owned(),
            }),
        }
    }
}

/// `len` as a u64 (lossless on every platform Rust supports).
pub(crate) fn len64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// The head of request `id` with a `len`-byte payload.
///
/// # Errors
/// [`TransportError::FrameTooLarge`] when `len` is over `max` (or u32).
pub(crate) fn request_head(
    id: u64,
    len: usize,
    max: usize,
    peer: &str,
) -> Result<[u8; REQUEST_HEAD_LEN], TransportError> {
    let prefix = framing::encode_header(len, max, peer)?;
    let mut head = [0u8; REQUEST_HEAD_LEN];
    let (id_part, len_part) = head.split_at_mut(ID_LEN);
    id_part.copy_from_slice(&id.to_be_bytes());
    len_part.copy_from_slice(&prefix);
    Ok(head)
}

/// Appends the head of `reply` to request `id` to `out`, and returns the
/// payload to send after it, if any. A payload that does not fit the
/// length prefix goes out as `REPLY_TOO_LARGE` instead.
pub(crate) fn put_reply(out: &mut BytesMut, id: u64, reply: Answer) -> Option<Bytes> {
    out.put_u64(id);
    let (status, refusal) = match reply {
        Answer::Reply(body) => match u32::try_from(body.len()) {
            Ok(len) => {
                out.put_u8(STATUS_OK);
                out.put_u32(len);
                return Some(body);
            }
            Err(_) => (
                STATUS_REPLY_TOO_LARGE,
                Some((len64(body.len()), u64::from(u32::MAX))),
            ),
        },
        Answer::TooLarge { len, max } => (STATUS_TOO_LARGE, Some((len, max))),
        Answer::ReplyTooLarge { len, max } => (STATUS_REPLY_TOO_LARGE, Some((len, max))),
        Answer::NoService => (STATUS_NO_SERVICE, None),
    };
    out.put_u8(status);
    if let Some((len, max)) = refusal {
        out.put_u64(len);
        out.put_u64(max);
    }
    None
}

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

/// Checks an announced length against `max` before anything is allocated.
fn check_len(len: u64, max: usize, peer: &str) -> Result<usize, TransportError> {
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(TransportError::FrameTooLarge {
            peer: peer.to_owned(),
            len,
            max,
        }),
    }
}

/// Most bytes read from a stream at once.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Reads exactly `len` bytes, growing the buffer only as they arrive.
async fn read_payload(
    recv: &mut RecvStream,
    len: usize,
    peer: &str,
) -> Result<Bytes, TransportError> {
    let mut buf = BytesMut::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        let want = (len - buf.len()).min(READ_CHUNK);
        match recv.read_chunk(want, true).await {
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
    let Some(prefix) = read_array::<{ framing::HEADER_LEN }>(recv, peer).await? else {
        return Ok(None);
    };
    let len = check_len(u64::from(u32::from_be_bytes(prefix)), max, peer)?;
    read_payload(recv, len, peer).await.map(Some)
}

/// A kind (or status) byte followed by a length prefix for `len` bytes.
pub(crate) fn lead(first: u8, len: usize, max: usize, peer: &str) -> Result<Bytes, TransportError> {
    let header = framing::encode_header(len, max, peer)?;
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
    fn request_head_is_id_then_length() {
        let head = request_head(0x0102, 3, 10, "p").unwrap();
        assert_eq!(head, [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 3]);
        assert!(matches!(
            request_head(1, 11, 10, "p"),
            Err(TransportError::FrameTooLarge {
                len: 11,
                max: 10,
                ..
            })
        ));
    }

    #[test]
    fn reply_layouts() {
        let mut out = BytesMut::new();
        let body = put_reply(&mut out, 7, Answer::Reply(Bytes::from_static(b"abc")));
        assert_eq!(body.as_deref(), Some(&b"abc"[..]));
        assert_eq!(&out[..], &[0, 0, 0, 0, 0, 0, 0, 7, STATUS_OK, 0, 0, 0, 3]);

        out.clear();
        assert!(put_reply(&mut out, 1, Answer::TooLarge { len: 5, max: 4 }).is_none());
        assert_eq!(out.len(), REPLY_HEAD_MAX);
        assert_eq!(out[8], STATUS_TOO_LARGE);
        assert_eq!(&out[9..17], &5u64.to_be_bytes());
        assert_eq!(&out[17..], &4u64.to_be_bytes());

        out.clear();
        assert!(put_reply(&mut out, 2, Answer::NoService).is_none());
        assert_eq!(&out[..], &[0, 0, 0, 0, 0, 0, 0, 2, STATUS_NO_SERVICE]);
    }

    #[test]
    fn replies_become_typed_results() {
        let too_large = Answer::ReplyTooLarge { len: 9, max: 8 }.into_result("p");
        assert!(matches!(
            too_large,
            Err(TransportError::FrameTooLarge { len: 9, max: 8, .. })
        ));
        assert!(matches!(
            Answer::NoService.into_result("p"),
            Err(TransportError::ConnectionRefused { .. })
        ));
    }

    #[test]
    fn lead_is_kind_then_length() {
        let b = lead(KIND_SUBSCRIBE, 3, 10, "p").unwrap();
        assert_eq!(&b[..], &[KIND_SUBSCRIBE, 0, 0, 0, 3]);
        assert!(lead(KIND_SUBSCRIBE, 11, 10, "p").is_err());
    }
}
