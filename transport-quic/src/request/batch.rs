//! Frames gathered for one write: the request stream's writers (client
//! and server) send everything queued at once with one
//! `write_all_chunks`, so one lock of the connection carries many frames.

use bytes::{Bytes, BytesMut};
use quinn::SendStream;

/// Frames queued at once that go out in one write, at most.
pub(super) const WRITE_BATCH: usize = 64;

/// Payloads up to this size are copied next to their head (one chunk
/// rather than two); larger ones go out as their own chunk, uncopied.
const INLINE_PAYLOAD: usize = 1024;

/// Queue entries a writer keeps room for between writes.
const KEEP_QUEUED: usize = 4;

/// Lets go of the room a burst made in a writer's `queued` list (emptied by
/// now): an idle stream should not hold it, on every one of thousands.
pub(super) fn trim<T>(queued: &mut Vec<T>) {
    if queued.capacity() > KEEP_QUEUED {
        *queued = Vec::new();
    }
}

/// Bytes a payload of `len` takes in the batch buffer (none if it goes
/// out as its own chunk).
pub(super) fn inline_len(len: usize) -> usize {
    if len <= INLINE_PAYLOAD { len } else { 0 }
}

/// Heads and small payloads in one buffer, large payloads beside it.
///
/// Made per write with the capacity it needs: a buffer kept between writes
/// would stay as large as the largest burst, on every one of thousands of
/// streams.
#[derive(Debug)]
pub(super) struct Batch {
    buf: BytesMut,
    chunks: Vec<Bytes>,
}

impl Batch {
    /// A batch whose heads and inline payloads take `inline` bytes.
    pub(super) fn with_capacity(inline: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(inline),
            chunks: Vec::new(),
        }
    }

    /// Where the next head goes.
    pub(super) fn head(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Adds the payload that follows the last head.
    pub(super) fn payload(&mut self, payload: Bytes) {
        if inline_len(payload.len()) == payload.len() {
            self.buf.extend_from_slice(&payload);
        } else {
            if !self.buf.is_empty() {
                self.chunks.push(self.buf.split().freeze());
            }
            self.chunks.push(payload);
        }
    }

    /// Writes everything, in order.
    ///
    /// # Errors
    /// The stream's write error.
    pub(super) async fn write(mut self, send: &mut SendStream) -> Result<(), quinn::WriteError> {
        if !self.buf.is_empty() {
            self.chunks.push(self.buf.split().freeze());
        }
        send.write_all_chunks(&mut self.chunks).await
    }
}
