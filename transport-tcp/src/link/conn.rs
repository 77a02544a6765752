//! One client connection, driven by one task: a writer sends requests (if
//! the connection carries them) and a reader hands each reply to the
//! request waiting for its id and each published frame to the subscriber.

use std::sync::Arc;

use brine_transport_api::{
    Limits, TransportError,
    framing::{HEADER_LEN, discard, read_frame, read_payload},
};
use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter},
    sync::{mpsc, watch},
};
use tracing::{Instrument, debug, debug_span, trace, warn};

use crate::{
    net::{BoxedIo, OwnedTask},
    publish::KIND_FRAME,
    request::{ID_LEN, REPLY_HEADER_LEN, Reply, body_limit, decode_reply, read_id, write_request},
    shared::KIND_REPLY,
};
use brine_transport_api::pending::Pending;

/// What a connection carries, fixed by its first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Requests only: the request channel's wire, no hello.
    Requests,
    /// Published frames only: the publish channel's wire.
    Publish,
    /// Both, after a shared hello (see `shared.rs`).
    Shared,
}

/// The publish side a connection is opened for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishPart {
    /// Which publish client of the link.
    pub(crate) side: u64,
    /// Its limits (`queue_depth`, `max_frame_size`).
    pub(crate) limits: Limits,
    /// Whether the server welcomed it (a shared connection to an address
    /// with no publish server serves requests only).
    pub(crate) subscribed: bool,
}

/// A request on its way to the writer.
pub(crate) struct Outgoing {
    pub(crate) id: u64,
    pub(crate) frame: Bytes,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("id", &self.id)
            .field("len", &self.frame.len())
            .finish()
    }
}

/// Why a connection ended, once it has.
#[derive(Debug, Clone)]
pub(crate) struct Ended(watch::Receiver<Option<String>>);

impl Ended {
    /// Waits for the end and says why, in a few words.
    pub(crate) async fn reason(mut self) -> String {
        match self.0.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "connection closed".to_owned(),
        }
    }
}

/// The published frames of a connection, for its subscriber, and the
/// connection's end.
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) frames: mpsc::Receiver<Bytes>,
    pub(crate) ended: Ended,
}

/// One connection and the task driving it (aborted on drop).
#[derive(Debug)]
pub(crate) struct Conn {
    mode: Mode,
    requests: Option<mpsc::Sender<Outgoing>>,
    pending: Arc<Pending>,
    publish: Option<PublishPart>,
    feed: Option<Feed>,
    ended: Ended,
    task: OwnedTask,
}

impl Conn {
    /// Starts the task for a connection in `mode`, already past its hello.
    pub(crate) fn start(
        io: BoxedIo,
        mode: Mode,
        peer: &str,
        requests: Option<Limits>,
        publish: Option<PublishPart>,
    ) -> Self {
        let reply_max = match (mode, requests) {
            (Mode::Requests | Mode::Shared, Some(limits)) => limits.max_frame_size,
            _ => 0,
        };
        let (requests, outgoing) = match requests {
            Some(limits) if mode != Mode::Publish => {
                let (tx, rx) = mpsc::channel(in_flight(limits));
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let (inbox, feed_rx) = match publish {
            Some(part) if part.subscribed => {
                let (tx, rx) = mpsc::channel(part.limits.queue_depth.max(1));
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let (ended_tx, ended_rx) = watch::channel(None);
        let ended = Ended(ended_rx);
        let pending = Arc::new(Pending::default());
        let reader = Reader {
            mode,
            pending: Arc::clone(&pending),
            inbox,
            reply_max,
            publish_max: publish.map_or(0, |p| p.limits.max_frame_size),
            peer: peer.to_owned(),
        };
        let span = debug_span!("connection", server = %peer, ?mode);
        let task = OwnedTask::spawn(run(io, reader, outgoing, ended_tx).instrument(span));
        Self {
            mode,
            requests,
            pending,
            publish,
            feed: feed_rx.map(|frames| Feed {
                frames,
                ended: ended.clone(),
            }),
            ended,
            task,
        }
    }

    /// What the connection carries.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the task still runs.
    pub(crate) fn is_alive(&self) -> bool {
        !self.task.is_finished() && !self.pending.is_broken()
    }

    /// The request queue and the pending map, if it takes requests.
    pub(crate) fn requests(&self) -> Option<(mpsc::Sender<Outgoing>, Arc<Pending>)> {
        let requests = self.requests.clone()?;
        Some((requests, Arc::clone(&self.pending)))
    }

    /// The publish side it was opened for.
    pub(crate) fn publish(&self) -> Option<PublishPart> {
        self.publish
    }

    /// Its published frames, the first time this is asked.
    pub(crate) fn take_feed(&mut self) -> Option<Feed> {
        self.feed.take()
    }

    /// Its end.
    pub(crate) fn ended(&self) -> Ended {
        self.ended.clone()
    }

    /// Takes no more requests: the writer sends those queued, tells the
    /// server no more will come, and the task ends once every reply is in.
    /// Published frames still arriving are dropped. A connection that
    /// carries no requests ends at once (`None`).
    pub(crate) fn retire(mut self) -> Option<Self> {
        self.feed = None;
        self.requests.take()?;
        Some(self)
    }

    /// Ends the task now, failing the requests still waiting.
    pub(crate) async fn stop(self) {
        self.pending.fail_all(|| TransportError::Closed);
        self.task.stop().await;
    }
}

fn in_flight(limits: Limits) -> usize {
    limits
        .max_in_flight
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
}

async fn run(
    io: BoxedIo,
    reader_state: Reader,
    outgoing: Option<mpsc::Receiver<Outgoing>>,
    ended: watch::Sender<Option<String>>,
) {
    let (reader, writer) = tokio::io::split(io);
    let pending = Arc::clone(&reader_state.pending);
    let peer = reader_state.peer.clone();
    let reply_max = reader_state.reply_max;
    let mut reading = std::pin::pin!(reader_state.read(reader));
    let reason = match outgoing {
        None => reading.await,
        Some(outgoing) => {
            tokio::select! {
                reason = &mut reading => reason,
                written = write_requests(writer, outgoing, &peer, reply_max) => match written {
                    Err(err) => err.to_string(),
                    // Retired: every request is out; wait for their replies.
                    Ok(()) => tokio::select! {
                        reason = &mut reading => reason,
                        () = pending.idle() => "retired".to_owned(),
                    },
                },
            }
        }
    };
    debug!(reason = %reason, "connection ended");
    pending.fail_all(|| TransportError::ConnectionLost {
        peer: peer.clone(),
        source: None,
    });
    ended.send_replace(Some(reason));
}

/// The reading half's state.
struct Reader {
    mode: Mode,
    pending: Arc<Pending>,
    inbox: Option<mpsc::Sender<Bytes>>,
    reply_max: usize,
    publish_max: usize,
    peer: String,
}

impl Reader {
    /// Reads until the connection fails; returns why.
    async fn read<R: AsyncRead + Unpin>(self, mut reader: R) -> String {
        let ended = match self.mode {
            Mode::Requests => self.read_replies(&mut reader).await,
            Mode::Publish | Mode::Shared => self.read_tagged(&mut reader).await,
        };
        match ended {
            TransportError::ConnectionLost { source: None, .. } => {
                "server closed the connection".to_owned()
            }
            other => other.to_string(),
        }
    }

    fn lost(&self) -> TransportError {
        TransportError::ConnectionLost {
            peer: self.peer.clone(),
            source: None,
        }
    }

    /// The request channel's wire: every frame is a reply.
    async fn read_replies<R: AsyncRead + Unpin>(&self, reader: &mut R) -> TransportError {
        let limit = body_limit(self.reply_max) + REPLY_HEADER_LEN;
        loop {
            let result = match read_frame(reader, limit, &self.peer).await {
                Ok(Some(frame)) => self.on_reply(&frame),
                Ok(None) => Err(self.lost()),
                Err(TransportError::FrameTooLarge { len, .. }) => {
                    self.skip_reply(reader, len).await
                }
                Err(err) => Err(err),
            };
            if let Err(err) = result {
                return err;
            }
        }
    }

    /// Tagged frames: published frames and, on a shared connection, replies.
    async fn read_tagged<R: AsyncRead + Unpin>(&self, reader: &mut R) -> TransportError {
        let reply_limit =
            u64::try_from(body_limit(self.reply_max) + REPLY_HEADER_LEN).unwrap_or(u64::MAX);
        let publish_limit = u64::try_from(self.publish_max).unwrap_or(u64::MAX);
        let io = |err| TransportError::from_io(&self.peer, err);
        loop {
            let mut header = [0u8; HEADER_LEN];
            match reader.read_exact(&mut header).await {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.lost();
                }
                Err(err) => return io(err),
            }
            let Some(rest) = u64::from(u32::from_be_bytes(header)).checked_sub(1) else {
                return self.malformed("empty frame");
            };
            let mut tag = [0u8; 1];
            if let Err(err) = reader.read_exact(&mut tag).await {
                return io(err);
            }
            let result = match tag[0] {
                KIND_FRAME if rest > publish_limit => {
                    warn!(
                        len = rest,
                        max = self.publish_max,
                        "published frame over the frame size limit skipped"
                    );
                    discard(reader, rest, &self.peer).await
                }
                KIND_FRAME => match read_payload(reader, to_usize(rest), &self.peer).await {
                    Ok(frame) => self.deliver(frame).await,
                    Err(err) => Err(err),
                },
                KIND_REPLY if self.mode == Mode::Shared && rest > reply_limit => {
                    self.skip_reply(reader, rest).await
                }
                KIND_REPLY if self.mode == Mode::Shared => {
                    match read_payload(reader, to_usize(rest), &self.peer).await {
                        Ok(frame) => self.on_reply(&frame),
                        Err(err) => Err(err),
                    }
                }
                _ => Err(self.malformed("unexpected frame kind")),
            };
            if let Err(err) = result {
                return err;
            }
        }
    }

    fn malformed(&self, reason: &str) -> TransportError {
        TransportError::Malformed {
            peer: self.peer.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Hands a published frame to the subscriber. On a publish-only
    /// connection this waits (the server drops a subscriber that falls too
    /// far behind); on a shared one it must not hold up replies, so a full
    /// queue drops the connection instead.
    async fn deliver(&self, frame: Bytes) -> Result<(), TransportError> {
        let Some(inbox) = &self.inbox else {
            trace!("published frame with no subscriber dropped");
            return Ok(());
        };
        if self.mode == Mode::Publish {
            // An error means the subscriber is gone; the frame has nowhere to go.
            let _ = inbox.send(frame).await;
            return Ok(());
        }
        match inbox.try_send(frame) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let queued = inbox.max_capacity();
                warn!(
                    queued,
                    "subscriber stopped reading; {queued} published frames queued; shared connection dropped so replies are not held up"
                );
                Err(TransportError::Lagged {
                    missed: u64::try_from(queued).unwrap_or(u64::MAX),
                })
            }
        }
    }

    /// A whole reply frame (id, status, body).
    fn on_reply(&self, frame: &Bytes) -> Result<(), TransportError> {
        let (id, reply) = decode_reply(frame).map_err(|reason| self.malformed(reason))?;
        let result = match reply {
            Reply::Ok(body) => Ok(body),
            Reply::TooLarge { len, max } => Err(TransportError::FrameTooLarge {
                peer: self.peer.clone(),
                len,
                max: usize::try_from(max).unwrap_or(usize::MAX),
            }),
            Reply::NoService => Err(TransportError::ConnectionRefused {
                peer: self.peer.clone(),
            }),
        };
        if !self.pending.complete(id, result) {
            trace!(request = id, "late reply discarded");
        }
        Ok(())
    }

    /// A reply of `len` bytes over our limit: its id is there to read (len >
    /// limit > 9), the rest is skipped and the request fails.
    async fn skip_reply<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        len: u64,
    ) -> Result<(), TransportError> {
        let id = read_id(reader, &self.peer).await?;
        let rest = len.saturating_sub(ID_LEN as u64);
        discard(reader, rest, &self.peer).await?;
        let refused = TransportError::FrameTooLarge {
            peer: self.peer.clone(),
            len: rest.saturating_sub(1),
            max: self.reply_max,
        };
        self.pending.complete(id, Err(refused));
        Ok(())
    }
}

fn to_usize(len: u64) -> usize {
    // Only called for lengths under a usize limit.
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Writes requests as they come, flushing whenever none are waiting. Once
/// the queue closes (the connection is retired), shuts the writing half so
/// the server knows no more will come.
async fn write_requests<W: AsyncWrite + Unpin>(
    writer: W,
    mut outgoing: mpsc::Receiver<Outgoing>,
    peer: &str,
    max_frame: usize,
) -> Result<(), TransportError> {
    let mut writer = BufWriter::new(writer);
    let io = |err| TransportError::from_io(peer, err);
    while let Some(Outgoing { id, frame }) = outgoing.recv().await {
        write_request(&mut writer, id, &frame, max_frame, peer).await?;
        if outgoing.is_empty() {
            writer.flush().await.map_err(io)?;
        }
    }
    writer.shutdown().await.map_err(io)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    fn tagged(tag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(payload.len() + 1)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        out.push(tag);
        out.extend_from_slice(payload);
        out
    }

    fn reply(id: u64, body: &[u8]) -> Vec<u8> {
        let mut out = id.to_be_bytes().to_vec();
        out.push(0);
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn a_shared_reader_sorts_frames_and_skips_oversized_ones() {
        let pending = Arc::new(Pending::default());
        let one = pending.register(1).unwrap();
        let two = pending.register(2).unwrap();
        let (inbox, mut frames) = mpsc::channel(8);
        let reader = Reader {
            mode: Mode::Shared,
            pending: Arc::clone(&pending),
            inbox: Some(inbox),
            reply_max: 16,
            publish_max: 4,
            peer: "p".to_owned(),
        };
        let mut wire = Vec::new();
        wire.extend(tagged(KIND_FRAME, b"job"));
        wire.extend(tagged(KIND_FRAME, b"too long"));
        wire.extend(tagged(KIND_REPLY, &reply(1, b"pong")));
        wire.extend(tagged(KIND_REPLY, &reply(2, &[0; 17])));
        wire.extend(tagged(KIND_FRAME, b"next"));
        wire.extend(tagged(0x02, b""));
        let (mut server, client) = tokio::io::duplex(4096);
        server.write_all(&wire).await.unwrap();
        let ended = reader.read(client).await;
        assert!(ended.contains("unexpected frame kind"), "{ended}");
        assert_eq!(frames.recv().await.unwrap(), Bytes::from_static(b"job"));
        assert_eq!(frames.recv().await.unwrap(), Bytes::from_static(b"next"));
        assert_eq!(&one.await.unwrap().unwrap()[..], b"pong");
        let err = two.await.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::FrameTooLarge {
                    len: 17,
                    max: 16,
                    ..
                }
            ),
            "{err}"
        );
        pending.idle().await;
    }

    #[tokio::test]
    async fn a_full_subscriber_queue_drops_a_shared_connection() {
        let (inbox, _frames) = mpsc::channel(1);
        let reader = Reader {
            mode: Mode::Shared,
            pending: Arc::default(),
            inbox: Some(inbox),
            reply_max: 16,
            publish_max: 16,
            peer: "p".to_owned(),
        };
        let (mut server, client) = tokio::io::duplex(4096);
        for _ in 0..2 {
            server.write_all(&tagged(KIND_FRAME, b"x")).await.unwrap();
        }
        let ended = reader.read(client).await;
        assert!(ended.contains("fell behind"), "{ended}");
    }
}
