//! The built-in event bus: a tokio broadcast channel in process and a Unix
//! socket for local tools, shared by every backend unless one brings its own.
//!
//! IPC frames use [`framing`](crate::framing); inside a frame:
//! `kind: u8 | tag length: u32 BE | tag (UTF-8) | data`. Kind 1 is an event
//! (either direction), kind 2 a subscription request (tag = prefix), kind 3
//! the daemon's confirmation that a subscription is live.

use std::{
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::{
    io::{AsyncWriteExt, BufWriter},
    net::{UnixListener, UnixStream},
    sync::{Mutex, broadcast},
    task::JoinSet,
};
use tracing::{debug, warn};

use crate::{
    Event, EventBus, EventBusOptions, EventClient, EventSubscription, TransportError,
    framing::{read_frame, write_frame},
};

const KIND_EVENT: u8 = 1;
const KIND_SUBSCRIBE: u8 = 2;
const KIND_SUBSCRIBED: u8 = 3;

/// How long one write to an IPC subscriber may block before it is dropped.
const STALLED_WRITE: std::time::Duration = std::time::Duration::from_secs(10);

fn encode(kind: u8, tag: &str, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + tag.len() + data.len());
    out.put_u8(kind);
    // Tags are short; a tag over u32::MAX bytes cannot be framed anyway.
    out.put_u32(u32::try_from(tag.len()).unwrap_or(u32::MAX));
    out.put_slice(tag.as_bytes());
    out.put_slice(data);
    out.freeze()
}

fn decode(frame: &Bytes, peer: &str) -> Result<(u8, String, Bytes), TransportError> {
    let malformed = |reason: &str| TransportError::Malformed {
        peer: peer.to_owned(),
        reason: reason.to_owned(),
    };
    let (&kind, rest) = frame
        .split_first()
        .ok_or_else(|| malformed("empty frame"))?;
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("truncated tag length"))?;
    let tag_len = u32::from_be_bytes(len_bytes) as usize;
    let tag_end = 5usize
        .checked_add(tag_len)
        .filter(|end| *end <= frame.len())
        .ok_or_else(|| malformed("tag length past end of frame"))?;
    let tag = std::str::from_utf8(&frame[5..tag_end])
        .map_err(|_| malformed("tag is not UTF-8"))?
        .to_owned();
    Ok((kind, tag, frame.slice(tag_end..)))
}

/// The built-in [`EventBus`]: broadcast in process, Unix socket for tools.
#[derive(Debug)]
pub struct IpcEventBus {
    tx: broadcast::Sender<Event>,
    path: PathBuf,
    closed: Arc<AtomicBool>,
    tasks: Mutex<JoinSet<()>>,
}

impl IpcEventBus {
    /// Binds the IPC socket `<sock_dir>/<name>_event.ipc` (mode 0660) and
    /// starts serving it. A stale socket file left by a dead daemon is
    /// replaced; one a live daemon answers on is an error.
    ///
    /// # Errors
    /// [`TransportError::Bind`] when the socket cannot be bound (with
    /// `AddrInUse` if another daemon serves it).
    pub async fn bind(opts: &EventBusOptions) -> Result<Self, TransportError> {
        let path = opts.socket_path();
        let bind_err = |source: io::Error| TransportError::Bind {
            addr: path.display().to_string(),
            source,
        };
        if path.exists() {
            if UnixStream::connect(&path).await.is_ok() {
                return Err(bind_err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another daemon serves this event socket",
                )));
            }
            std::fs::remove_file(&path).map_err(bind_err)?;
        }
        let listener = UnixListener::bind(&path).map_err(bind_err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
            .map_err(bind_err)?;
        let (tx, _) = broadcast::channel(opts.queue_depth.max(1));
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(listener, tx.clone(), opts.max_frame_size));
        debug!(path = %path.display(), "event bus listening");
        Ok(Self {
            tx,
            path,
            closed: Arc::new(AtomicBool::new(false)),
            tasks: Mutex::new(tasks),
        })
    }

    /// The IPC socket's path.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl EventBus for IpcEventBus {
    fn fire(&self, event: Event) -> Result<(), TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        // An error only means nobody is subscribed right now.
        let _ = self.tx.send(event);
        Ok(())
    }

    fn subscribe(&self, prefix: &str) -> Box<dyn EventSubscription> {
        Box::new(LocalSubscription {
            rx: self.tx.subscribe(),
            prefix: prefix.to_owned(),
        })
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.closed.store(true, Ordering::Release);
        let mut tasks = self.tasks.lock().await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        match std::fs::remove_file(&self.path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(TransportError::Io {
                peer: self.path.display().to_string(),
                source: err,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for IpcEventBus {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.try_lock() {
            tasks.abort_all();
        }
    }
}

async fn accept_loop(listener: UnixListener, tx: broadcast::Sender<Event>, max_frame: usize) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_ipc_peer(stream, tx.clone(), max_frame));
                }
                Err(err) => {
                    warn!(error = %err, "event bus accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_ipc_peer(stream: UnixStream, tx: broadcast::Sender<Event>, max_frame: usize) {
    const PEER: &str = "event bus client";
    let (mut reader, writer) = stream.into_split();
    loop {
        let frame = match read_frame(&mut reader, max_frame, PEER).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(err) => {
                warn!(error = %err, "event bus client dropped");
                return;
            }
        };
        match decode(&frame, PEER) {
            Ok((KIND_EVENT, tag, data)) => {
                let _ = tx.send(Event { tag, data });
            }
            Ok((KIND_SUBSCRIBE, prefix, _)) => {
                // Subscribe before confirming, so the client sees every event
                // fired after its subscribe call returns.
                let rx = tx.subscribe();
                forward_events(reader, writer, rx, prefix, max_frame).await;
                return;
            }
            Ok((kind, _, _)) => {
                warn!(kind, "event bus client sent an unknown frame kind; dropped");
                return;
            }
            Err(err) => {
                warn!(error = %err, "event bus client dropped");
                return;
            }
        }
    }
}

async fn forward_events(
    mut reader: tokio::net::unix::OwnedReadHalf,
    writer: tokio::net::unix::OwnedWriteHalf,
    mut rx: broadcast::Receiver<Event>,
    prefix: String,
    max_frame: usize,
) {
    const PEER: &str = "event bus subscriber";
    let mut writer = BufWriter::new(writer);
    let confirmed = encode(KIND_SUBSCRIBED, &prefix, &[]);
    if write_frame(&mut writer, &confirmed, max_frame, PEER)
        .await
        .is_err()
        || writer.flush().await.is_err()
    {
        return;
    }
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Ok(event) => {
                    let matched = event.tag.starts_with(&prefix);
                    let sent = async {
                        if matched {
                            let frame = encode(KIND_EVENT, &event.tag, &event.data);
                            write_frame(&mut writer, &frame, max_frame, PEER).await?;
                        }
                        // Flush once no more events are queued, matching or
                        // not: a buffered frame must not wait for the next match.
                        if rx.is_empty() && !writer.buffer().is_empty() {
                            writer.flush().await.map_err(|e| TransportError::from_io(PEER, e))?;
                        }
                        Ok::<_, TransportError>(())
                    };
                    match tokio::time::timeout(STALLED_WRITE, sent).await {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => {
                            debug!(error = %err, "event subscriber went away");
                            return;
                        }
                        Err(_) => {
                            warn!(prefix = %prefix, "event subscriber stopped reading for {STALLED_WRITE:?}; dropped so it delays nobody");
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    warn!(missed, prefix = %prefix, "event subscriber stopped reading; dropped so it delays nobody");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // The subscriber never sends after subscribing; a read ending means it hung up.
            read = tokio::io::AsyncReadExt::read(&mut reader, &mut probe) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return;
                }
            }
        }
    }
}

#[derive(Debug)]
struct LocalSubscription {
    rx: broadcast::Receiver<Event>,
    prefix: String,
}

#[async_trait]
impl EventSubscription for LocalSubscription {
    async fn next(&mut self) -> Result<Event, TransportError> {
        loop {
            match self.rx.recv().await {
                Ok(event) if event.tag.starts_with(&self.prefix) => return Ok(event),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    warn!(missed, prefix = %self.prefix, "in-process event subscriber fell behind; dropped");
                    // Detach so later reads report the drop instead of resuming.
                    self.rx = broadcast::channel(1).0.subscribe();
                    return Err(TransportError::Lagged { missed });
                }
                Err(broadcast::error::RecvError::Closed) => return Err(TransportError::Closed),
            }
        }
    }
}

/// The built-in [`EventClient`]: connects to an [`IpcEventBus`] socket.
#[derive(Debug)]
pub struct IpcEventClient {
    path: PathBuf,
    max_frame: usize,
    firing: Mutex<Option<UnixStream>>,
}

impl IpcEventClient {
    /// A client for the bus described by `opts`; connects lazily.
    pub fn new(opts: &EventBusOptions) -> Self {
        Self {
            path: opts.socket_path(),
            max_frame: opts.max_frame_size,
            firing: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<UnixStream, TransportError> {
        UnixStream::connect(&self.path)
            .await
            .map_err(|err| TransportError::from_io(self.path.display().to_string(), err))
    }
}

#[async_trait]
impl EventClient for IpcEventClient {
    async fn fire(&self, event: Event) -> Result<(), TransportError> {
        let peer = self.path.display().to_string();
        let frame = encode(KIND_EVENT, &event.tag, &event.data);
        let mut slot = self.firing.lock().await;
        // One retry on a fresh connection covers a daemon restart in between.
        for _ in 0..2 {
            let stream = match slot.as_mut() {
                Some(stream) => stream,
                None => slot.insert(self.connect().await?),
            };
            match write_frame(stream, &frame, self.max_frame, &peer).await {
                Ok(()) => return Ok(()),
                Err(TransportError::FrameTooLarge { .. }) => {
                    return Err(TransportError::FrameTooLarge {
                        peer,
                        len: frame.len() as u64,
                        max: self.max_frame,
                    });
                }
                Err(_) => *slot = None,
            }
        }
        Err(TransportError::ConnectionLost { peer, source: None })
    }

    async fn subscribe(&self, prefix: &str) -> Result<Box<dyn EventSubscription>, TransportError> {
        let peer = self.path.display().to_string();
        let mut stream = self.connect().await?;
        write_frame(
            &mut stream,
            &encode(KIND_SUBSCRIBE, prefix, &[]),
            self.max_frame,
            &peer,
        )
        .await?;
        match read_frame(&mut stream, self.max_frame, &peer).await? {
            Some(frame) if matches!(decode(&frame, &peer), Ok((KIND_SUBSCRIBED, _, _))) => {}
            _ => {
                return Err(TransportError::Malformed {
                    peer,
                    reason: "no subscription confirmation".to_owned(),
                });
            }
        }
        Ok(Box::new(IpcSubscription {
            stream,
            peer,
            max_frame: self.max_frame,
        }))
    }
}

#[derive(Debug)]
struct IpcSubscription {
    stream: UnixStream,
    peer: String,
    max_frame: usize,
}

#[async_trait]
impl EventSubscription for IpcSubscription {
    // Cancel safety: `read_frame` is not cancel safe; a cancelled `next`
    // may lose the event being read. Tools read in a plain loop.
    async fn next(&mut self) -> Result<Event, TransportError> {
        match read_frame(&mut self.stream, self.max_frame, &self.peer).await? {
            Some(frame) => match decode(&frame, &self.peer)? {
                (KIND_EVENT, tag, data) => Ok(Event { tag, data }),
                (kind, _, _) => Err(TransportError::Malformed {
                    peer: self.peer.clone(),
                    reason: format!("unexpected frame kind {kind}"),
                }),
            },
            // The daemon closes a subscriber it dropped for lagging.
            None => Err(TransportError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_bad_frames_without_panicking() {
        for bad in [
            &b""[..],
            &[1],
            &[1, 0, 0, 0, 9, b'a'],
            &[1, 0xff, 0xff, 0xff, 0xff],
            &[1, 0, 0, 0, 2, 0xff, 0xfe],
        ] {
            assert!(
                decode(&Bytes::copy_from_slice(bad), "t").is_err(),
                "{bad:?}"
            );
        }
        let frame = encode(KIND_EVENT, "salt/job/1/new", b"data");
        let (kind, tag, data) = decode(&frame, "t").unwrap();
        assert_eq!(
            (kind, tag.as_str(), &data[..]),
            (KIND_EVENT, "salt/job/1/new", &b"data"[..])
        );
    }

    #[tokio::test]
    async fn prefix_filtering_in_process_and_over_ipc() {
        let dir = tempfile::tempdir().unwrap();
        let opts = EventBusOptions::new(dir.path(), "master");
        let bus = IpcEventBus::bind(&opts).await.unwrap();
        let mut jobs = bus.subscribe("salt/job/");
        let client = IpcEventClient::new(&opts);
        let mut remote = client.subscribe("salt/auth").await.unwrap();

        client.fire(Event::new("salt/auth", "a")).await.unwrap();
        bus.fire(Event::new("salt/job/1/new", "j")).unwrap();
        assert_eq!(jobs.next().await.unwrap().tag, "salt/job/1/new");
        assert_eq!(remote.next().await.unwrap().data, Bytes::from_static(b"a"));
        bus.close().await.unwrap();
        assert!(!opts.socket_path().exists());
    }

    #[tokio::test]
    async fn a_match_followed_only_by_other_events_is_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let opts = EventBusOptions::new(dir.path(), "master");
        let bus = IpcEventBus::bind(&opts).await.unwrap();
        let client = IpcEventClient::new(&opts);
        let mut remote = client.subscribe("salt/job/1/").await.unwrap();
        // One burst: the match is queued ahead of events for other jobs.
        bus.fire(Event::new("salt/job/1/ret/m1", "r")).unwrap();
        for i in 2..12 {
            bus.fire(Event::new(format!("salt/job/{i}/ret/m1"), ""))
                .unwrap();
        }
        // The bound only turns a lost frame into a failure instead of a hang.
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), remote.next())
            .await
            .expect("the buffered match is flushed")
            .unwrap();
        assert_eq!(got.tag, "salt/job/1/ret/m1");
        bus.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_dropped_and_others_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = EventBusOptions::new(dir.path(), "master");
        opts.queue_depth = 4;
        let bus = IpcEventBus::bind(&opts).await.unwrap();
        let mut slow = bus.subscribe("");
        let mut fast = bus.subscribe("");
        for i in 0..10 {
            bus.fire(Event::new(format!("t/{i}"), "")).unwrap();
            assert_eq!(fast.next().await.unwrap().tag, format!("t/{i}"));
        }
        assert!(matches!(
            slow.next().await,
            Err(TransportError::Lagged { .. })
        ));
        bus.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_live_socket_is_not_stolen_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let opts = EventBusOptions::new(dir.path(), "master");
        let bus = IpcEventBus::bind(&opts).await.unwrap();
        let err = IpcEventBus::bind(&opts).await.unwrap_err();
        assert!(err.is_addr_in_use(), "{err}");
        drop(bus);
        tokio::task::yield_now().await;
        // Stale file from a dead daemon: a plain file standing in for it.
        let _ = std::fs::remove_file(opts.socket_path());
        std::fs::write(opts.socket_path(), b"").unwrap();
        let bus = IpcEventBus::bind(&opts).await.unwrap();
        bus.close().await.unwrap();
    }
}
