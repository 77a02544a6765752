//! Length-prefixed framing (u32 big-endian length, then the payload), shared
//! by the stream backends and the event bus IPC.
//!
//! [`FrameDecoder`] is sans-IO: push bytes in, take whole frames out. The
//! async helpers [`read_frame`] and [`write_frame`] wrap it for tokio streams.
//! Either way the announced length is checked against the limit *before*
//! anything of that size is allocated, and a frame's buffer grows only as
//! its bytes actually arrive.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::TransportError;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// Most bytes reserved at once while a large frame arrives.
const READ_CHUNK: usize = 64 * 1024;

/// The 4-byte length prefix for a payload of `len` bytes.
///
/// # Errors
/// [`TransportError::FrameTooLarge`] when `len` exceeds `max` (or `u32`).
pub fn encode_header(
    len: usize,
    max: usize,
    peer: &str,
) -> Result<[u8; HEADER_LEN], TransportError> {
    let too_large = || TransportError::FrameTooLarge {
        peer: peer.to_owned(),
        len: len as u64,
        max,
    };
    if len > max {
        return Err(too_large());
    }
    let len = u32::try_from(len).map_err(|_| too_large())?;
    Ok(len.to_be_bytes())
}

/// Incremental decoder of length-prefixed frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// [`TransportError::FrameTooLarge`] as soon as a header announces more
    /// than the limit; the stream cannot be resynchronised after that.
    pub fn next_frame(&mut self, peer: &str) -> Result<Option<Bytes>, TransportError> {
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                peer: peer.to_owned(),
                len: len as u64,
                max: self.max_frame,
            });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
///
/// # Errors
/// [`TransportError::FrameTooLarge`] when the prefix announces more than
/// `max` (nothing of that size is allocated; the payload is left unread),
/// [`TransportError::ConnectionLost`] when the stream ends inside a frame,
/// and other I/O errors mapped by [`TransportError::from_io`].
///
/// # Cancel safety
/// Not cancel safe: a cancelled read loses the partial frame.
pub async fn read_frame<R>(
    reader: &mut R,
    max: usize,
    peer: &str,
) -> Result<Option<Bytes>, TransportError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(TransportError::from_io(peer, err)),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(TransportError::FrameTooLarge {
            peer: peer.to_owned(),
            len: len as u64,
            max,
        });
    }
    read_payload(reader, len, peer).await.map(Some)
}

/// Reads exactly `len` payload bytes, growing the buffer as they arrive.
///
/// # Errors
/// As [`read_frame`].
pub async fn read_payload<R>(
    reader: &mut R,
    len: usize,
    peer: &str,
) -> Result<Bytes, TransportError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut buf = BytesMut::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        let want = (len - buf.len()).min(READ_CHUNK);
        buf.reserve(want);
        let n = (&mut *reader)
            .take(want as u64)
            .read_buf(&mut buf)
            .await
            .map_err(|err| TransportError::from_io(peer, err))?;
        if n == 0 {
            return Err(TransportError::ConnectionLost {
                peer: peer.to_owned(),
                source: None,
            });
        }
    }
    Ok(buf.freeze())
}

/// Reads and throws away `len` bytes (the payload of a refused frame), so
/// the stream stays in sync without allocating the frame.
///
/// # Errors
/// As [`read_frame`].
pub async fn discard<R>(reader: &mut R, len: u64, peer: &str) -> Result<(), TransportError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let copied = tokio::io::copy(&mut (&mut *reader).take(len), &mut tokio::io::sink())
        .await
        .map_err(|err| TransportError::from_io(peer, err))?;
    if copied < len {
        return Err(TransportError::ConnectionLost {
            peer: peer.to_owned(),
            source: None,
        });
    }
    Ok(())
}

/// Writes one frame (prefix and payload) without flushing.
///
/// # Errors
/// [`TransportError::FrameTooLarge`] before writing anything if `payload`
/// exceeds `max`; I/O errors mapped by [`TransportError::from_io`].
pub async fn write_frame<W>(
    writer: &mut W,
    payload: &[u8],
    max: usize,
    peer: &str,
) -> Result<(), TransportError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let header = encode_header(payload.len(), max, peer)?;
    writer
        .write_all(&header)
        .await
        .map_err(|err| TransportError::from_io(peer, err))?;
    writer
        .write_all(payload)
        .await
        .map_err(|err| TransportError::from_io(peer, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decoder_splits_frames_across_arbitrary_chunks() {
        let mut wire = framed(b"hello");
        wire.extend(framed(b""));
        wire.extend(framed(&[7u8; 300]));
        let mut dec = FrameDecoder::new(1024);
        let mut frames = Vec::new();
        for chunk in wire.chunks(3) {
            dec.push(chunk);
            while let Some(f) = dec.next_frame("test").unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(&frames[0][..], b"hello");
        assert!(frames[1].is_empty());
        assert_eq!(frames[2].len(), 300);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn decoder_refuses_oversized_header_before_payload_arrives() {
        let mut dec = FrameDecoder::new(10);
        dec.push(&u32::MAX.to_be_bytes());
        let err = dec.next_frame("p").unwrap_err();
        assert!(
            matches!(err, TransportError::FrameTooLarge { len, max: 10, .. } if len == u64::from(u32::MAX))
        );
    }

    #[test]
    fn header_refuses_over_limit() {
        assert!(encode_header(11, 10, "p").is_err());
        assert_eq!(encode_header(10, 10, "p").unwrap(), [0, 0, 0, 10]);
    }

    #[tokio::test]
    async fn async_read_write_round_trip_and_truncation() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            write_frame(&mut a, &[1u8; 1000], 2000, "b").await.unwrap();
            a.write_all(&[0, 0, 0, 50, 1, 2]).await.unwrap(); // truncated frame
        });
        let first = read_frame(&mut b, 2000, "a").await.unwrap().unwrap();
        assert_eq!(first.len(), 1000);
        writer.await.unwrap();
        let err = read_frame(&mut b, 2000, "a").await.unwrap_err();
        assert!(
            matches!(err, TransportError::ConnectionLost { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn discard_keeps_stream_in_sync() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            write_frame(&mut a, &[9u8; 100], 1000, "b").await.unwrap();
            write_frame(&mut a, b"next", 1000, "b").await.unwrap();
        });
        let err = read_frame(&mut b, 10, "a").await.unwrap_err();
        let TransportError::FrameTooLarge { len, .. } = err else {
            panic!("{err}")
        };
        discard(&mut b, len, "a").await.unwrap();
        let next = read_frame(&mut b, 10, "a").await.unwrap().unwrap();
        assert_eq!(&next[..], b"next");
    }
}
