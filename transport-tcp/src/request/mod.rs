//! The request channel (Salt's port 4506): many requests in flight on one
//! connection, matched to their replies by a request id.
//!
//! # Wire layout
//!
//! Every message is a [framing](brine_transport_api::framing) frame
//! (`u32` big-endian length, then that many bytes):
//!
//! ```text
//! request:  | id: u64 BE | body ...                |   length = 8 + body
//! reply:    | id: u64 BE | status: u8 | body ...   |   length = 9 + body
//! ```
//!
//! The client picks the id (unique per client); the server answers with the
//! same id, in whatever order its handlers finish. Status:
//!
//! | status | body |
//! | --- | --- |
//! | `0` ok | the handler's reply |
//! | `1` too large | `len: u64 BE, max: u64 BE`: a frame of this exchange (the request, or the reply it would have produced) was `len` bytes, over the server's `max` |
//! | `2` no service | empty: no request server is bound at this address (sent only on a shared connection whose request server was closed; see `shared.rs`); the client reports [`TransportError::ConnectionRefused`] |
//!
//! `max_frame_size` limits the *body*; the id and status come on top. The
//! id leads the frame so that a server refusing an oversized request can
//! read those 8 bytes, skip the rest with
//! [`framing::discard`](brine_transport_api::framing::discard) without
//! allocating it, answer status 1 (the client reports
//! [`TransportError::FrameTooLarge`]) and go on reading the same connection.
//! A reply over the client's own limit is skipped the same way. A frame
//! shorter than its header cannot be resynchronised and closes the connection.

pub(crate) mod client;
pub(crate) mod server;

use brine_transport_api::{TransportError, framing::encode_header};
use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of the request id.
pub(crate) const ID_LEN: usize = 8;
/// Bytes of the reply header: id and status.
pub(crate) const REPLY_HEADER_LEN: usize = ID_LEN + 1;

const STATUS_OK: u8 = 0;
const STATUS_TOO_LARGE: u8 = 1;
const STATUS_NO_SERVICE: u8 = 2;

/// A reply as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The handler's answer.
    Ok(Bytes),
    /// A frame of `len` bytes was over the server's `max`.
    TooLarge { len: u64, max: u64 },
    /// No request server is bound where the request arrived.
    NoService,
}

/// The largest body any frame can carry whatever the configured limit:
/// the length prefix is a `u32` and includes the reply header and a tag.
pub(crate) fn body_limit(max_frame_size: usize) -> usize {
    let u32_max = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
    max_frame_size.min(u32_max - REPLY_HEADER_LEN - 1)
}

/// Reads the 8-byte request id that leads a frame whose payload is skipped.
pub(crate) async fn read_id<R: AsyncRead + Unpin>(
    reader: &mut R,
    peer: &str,
) -> Result<u64, TransportError> {
    let mut id = [0u8; ID_LEN];
    reader
        .read_exact(&mut id)
        .await
        .map_err(|err| TransportError::from_io(peer, err))?;
    Ok(u64::from_be_bytes(id))
}

/// Splits a request frame into id and body; `None` if it is too short.
pub(crate) fn split_request(frame: &Bytes) -> Option<(u64, Bytes)> {
    let id = frame.get(..ID_LEN)?;
    let id = u64::from_be_bytes(id.try_into().ok()?);
    Some((id, frame.slice(ID_LEN..)))
}

/// Decodes a reply frame into its id and reply.
pub(crate) fn decode_reply(frame: &Bytes) -> Result<(u64, Reply), &'static str> {
    let (id, rest) = split_request(frame).ok_or("reply shorter than its header")?;
    let (&status, _) = rest.split_first().ok_or("reply shorter than its header")?;
    let mut body = rest.slice(1..);
    match status {
        STATUS_OK => Ok((id, Reply::Ok(body))),
        STATUS_TOO_LARGE if body.len() == 16 => {
            let len = body.get_u64();
            let max = body.get_u64();
            Ok((id, Reply::TooLarge { len, max }))
        }
        STATUS_TOO_LARGE => Err("malformed too-large reply"),
        STATUS_NO_SERVICE if body.is_empty() => Ok((id, Reply::NoService)),
        STATUS_NO_SERVICE => Err("malformed no-service reply"),
        _ => Err("unknown reply status"),
    }
}

/// Writes one reply frame (not flushed), led by `tag` on a shared
/// connection. A reply body over `max` is sent as status 1 instead, so the
/// client learns why it got no answer.
pub(crate) async fn write_reply<W: AsyncWrite + Unpin>(
    writer: &mut W,
    id: u64,
    reply: Reply,
    max: usize,
    peer: &str,
    tag: Option<u8>,
) -> Result<(), TransportError> {
    let max = body_limit(max);
    let reply = match reply {
        Reply::Ok(body) if body.len() > max => {
            tracing::warn!(
                request = id,
                len = body.len(),
                max,
                "reply over the frame size limit; sent as an error"
            );
            Reply::TooLarge {
                len: body.len() as u64,
                max: max as u64,
            }
        }
        other => other,
    };
    let mut too_large = [0u8; 16];
    let (status, body): (u8, &[u8]) = match &reply {
        Reply::Ok(body) => (STATUS_OK, body),
        Reply::TooLarge { len, max } => {
            too_large[..8].copy_from_slice(&len.to_be_bytes());
            too_large[8..].copy_from_slice(&max.to_be_bytes());
            (STATUS_TOO_LARGE, &too_large)
        }
        Reply::NoService => (STATUS_NO_SERVICE, &[]),
    };
    let tag_len = usize::from(tag.is_some());
    let header = encode_header(
        tag_len + REPLY_HEADER_LEN + body.len(),
        tag_len + max + REPLY_HEADER_LEN,
        peer,
    )?;
    let io = |err| TransportError::from_io(peer, err);
    writer.write_all(&header).await.map_err(io)?;
    if let Some(tag) = tag {
        writer.write_all(&[tag]).await.map_err(io)?;
    }
    writer.write_all(&id.to_be_bytes()).await.map_err(io)?;
    writer.write_all(&[status]).await.map_err(io)?;
    writer.write_all(body).await.map_err(io)
}

/// Writes one request frame (not flushed).
pub(crate) async fn write_request<W: AsyncWrite + Unpin>(
    writer: &mut W,
    id: u64,
    body: &[u8],
    max: usize,
    peer: &str,
) -> Result<(), TransportError> {
    let header = encode_header(ID_LEN + body.len(), body_limit(max) + ID_LEN, peer)?;
    let io = |err| TransportError::from_io(peer, err);
    writer.write_all(&header).await.map_err(io)?;
    writer.write_all(&id.to_be_bytes()).await.map_err(io)?;
    writer.write_all(body).await.map_err(io)
}

#[cfg(test)]
mod tests {
    use brine_transport_api::framing::read_frame;

    use super::*;

    #[tokio::test]
    async fn replies_round_trip() {
        let mut wire = Vec::new();
        write_reply(
            &mut wire,
            7,
            Reply::Ok(Bytes::from_static(b"pong")),
            100,
            "p",
            None,
        )
        .await
        .unwrap();
        write_reply(
            &mut wire,
            8,
            Reply::Ok(Bytes::from(vec![0u8; 101])),
            100,
            "p",
            None,
        )
        .await
        .unwrap();
        write_reply(
            &mut wire,
            u64::MAX,
            Reply::TooLarge { len: 5, max: 4 },
            100,
            "p",
            None,
        )
        .await
        .unwrap();
        let mut rd = &wire[..];
        let mut next = async || {
            let frame = read_frame(&mut rd, 200, "p").await.unwrap().unwrap();
            decode_reply(&frame).unwrap()
        };
        assert_eq!(next().await, (7, Reply::Ok(Bytes::from_static(b"pong"))));
        assert_eq!(next().await, (8, Reply::TooLarge { len: 101, max: 100 }));
        assert_eq!(next().await, (u64::MAX, Reply::TooLarge { len: 5, max: 4 }));
    }

    #[tokio::test]
    async fn requests_round_trip_and_refuse_oversize() {
        let mut wire = Vec::new();
        write_request(&mut wire, 42, b"ping", 4, "p").await.unwrap();
        let err = write_request(&mut wire, 43, b"pings", 4, "p")
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::FrameTooLarge { .. }), "{err}");
        let frame = read_frame(&mut &wire[..], 100, "p").await.unwrap().unwrap();
        assert_eq!(
            split_request(&frame),
            Some((42, Bytes::from_static(b"ping")))
        );
    }

    #[tokio::test]
    async fn tagged_replies_and_no_service_round_trip() {
        let mut wire = Vec::new();
        write_reply(&mut wire, 3, Reply::NoService, 100, "p", Some(0x05))
            .await
            .unwrap();
        write_reply(
            &mut wire,
            4,
            Reply::Ok(Bytes::from_static(b"ok")),
            100,
            "p",
            Some(0x05),
        )
        .await
        .unwrap();
        let mut rd = &wire[..];
        for (id, reply) in [
            (3, Reply::NoService),
            (4, Reply::Ok(Bytes::from_static(b"ok"))),
        ] {
            let frame = read_frame(&mut rd, 200, "p").await.unwrap().unwrap();
            assert_eq!(frame[0], 0x05);
            assert_eq!(decode_reply(&frame.slice(1..)).unwrap(), (id, reply));
        }
        assert!(decode_reply(&Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 1, 2, 9])).is_err());
    }

    #[test]
    fn malformed_replies_are_refused_without_panicking() {
        for bad in [
            &b""[..],
            &[0; 8],
            &[0, 0, 0, 0, 0, 0, 0, 1, 9],
            &[0, 0, 0, 0, 0, 0, 0, 1, STATUS_TOO_LARGE, 1],
        ] {
            assert!(
                decode_reply(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(split_request(&Bytes::from_static(&[1; 7])), None);
    }
}
