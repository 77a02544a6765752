//! The publish server (Salt's 4505): a ZeroMQ PUB served by this crate.
//!
//! The `zeromq` crate's own PUB is not used: besides having no
//! high-water-mark or size limit, it can deadlock. Its per-subscriber tasks
//! look subscribers up with a blocking `scc::HashMap::get_sync` while its
//! fan-out task holds a bucket lock across an `.await`; when subscriptions
//! arrive during a publish, every runtime worker can end up blocked on that
//! lock and the holder never runs again (seen in the conformance suite:
//! 100 subscribers connecting while warm-up frames went out; both workers
//! stuck in `PubSocketBackend::message_received`).
//!
//! So the PUB side here speaks ZMTP 3.0 itself ([`crate::zmtp`]): per
//! connection, a greeting and READY each way (the peer must be a SUB or
//! XSUB), then the peer's `\x01prefix` / `\x00prefix` subscription messages
//! in, published messages out. The wire is what libzmq's PUB sends, so
//! stock Salt minions and the `zeromq` crate's SUB both connect.
//!
//! `publish` never waits: it frames the message once and hands it to every
//! subscriber with a matching subscription through [`Hub`], whose bounded
//! queues ([`Limits::queue_depth`]) share the body without copying. A
//! subscriber whose queue is full is disconnected with a warning and the
//! others are unaffected. What subscribers may send is capped: frames of
//! [`MAX_SUBSCRIPTION`] bytes, [`MAX_SUBSCRIPTIONS`] subscriptions, commands
//! of [`crate::guard::MAX_COMMAND`] bytes, and the handshake must finish within
//! [`HANDSHAKE_TIMEOUT`].
//!
//! [`Limits::queue_depth`]: brine_transport_api::Limits

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use brine_transport_api::{Audience, PublishServer, ServerOptions, TransportError};
use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    task::JoinSet,
};
use tracing::Instrument;

use crate::{
    guard::Violation,
    hub::{Hub, Registration, SubscriberId},
    socket,
    task::{StopSignal, Worker},
    topic,
    zmtp::{self, FrameDecoder, HandshakeError, Unit},
};

/// Largest subscription message a subscriber may send: the flag byte and a
/// prefix of up to 255 bytes (Salt's are at most 40).
pub(crate) const MAX_SUBSCRIPTION: u64 = 256;

/// Subscriptions one subscriber may hold (Salt uses one or two).
pub(crate) const MAX_SUBSCRIPTIONS: usize = 64;

/// How long a new connection has to complete its ZMTP handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read from a subscriber at once (it only sends subscriptions).
const READ_CHUNK: usize = 1024;

/// Small messages written to a subscriber in one go.
const WRITE_BATCH: usize = 16 * 1024;

/// Pause after a failed `accept` (out of descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The PUB end of the publish channel.
#[derive(Debug)]
pub(crate) struct ZmqPublishServer {
    local_addr: SocketAddr,
    filtering: bool,
    max_frame: usize,
    hub: Arc<Hub>,
    worker: Worker,
}

impl ZmqPublishServer {
    /// Binds `opts.bind` and starts accepting subscribers.
    pub(crate) async fn bind(opts: ServerOptions, filtering: bool) -> Result<Self, TransportError> {
        let (listener, local_addr) = socket::bind_listener(opts.bind)?;
        let bind_err = |source| TransportError::Bind {
            addr: local_addr.to_string(),
            source,
        };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(listener).map_err(bind_err)?;
        let hub = Arc::new(Hub::new(opts.limits.queue_depth));
        let worker = Worker::spawn(|stop| accept(listener, Arc::clone(&hub), stop));
        tracing::info!(addr = %local_addr, filtering, "zeromq publish server listening");
        Ok(Self {
            local_addr,
            filtering,
            max_frame: opts.limits.max_frame_size,
            hub,
            worker,
        })
    }
}

#[async_trait]
impl PublishServer for ZmqPublishServer {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn publish(&self, frame: Bytes, audience: &Audience) -> Result<(), TransportError> {
        if !self.worker.is_running() {
            return Err(TransportError::Closed);
        }
        if frame.len() > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                peer: self.local_addr.to_string(),
                len: u64::try_from(frame.len()).unwrap_or(u64::MAX),
                max: self.max_frame,
            });
        }
        match (self.filtering, audience) {
            // Salt's default: one frame, to everyone; minions re-check the target.
            (false, _) => {
                let unit = Unit::message(None, frame.clone());
                self.hub.fan_out([(&frame[..], unit)]);
            }
            (true, Audience::All) => {
                let unit = Unit::message(Some(topic::BROADCAST), frame);
                self.hub.fan_out([(topic::BROADCAST, unit)]);
            }
            (true, Audience::Minions(ids)) => {
                let topics: Vec<Bytes> = ids.iter().map(|id| topic::of(id)).collect();
                self.hub.fan_out(topics.iter().map(|topic| {
                    let unit = Unit::message(Some(topic), frame.clone());
                    (&topic[..], unit)
                }));
            }
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.hub.close();
        self.worker.stop().await;
        Ok(())
    }
}

impl Drop for ZmqPublishServer {
    fn drop(&mut self) {
        self.hub.close();
    }
}

async fn accept(listener: TcpListener, hub: Arc<Hub>, mut stop: StopSignal) {
    let mut subscribers = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(_) = subscribers.join_next(), if !subscribers.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let span = tracing::debug_span!("zmq_subscriber", %peer);
                    subscribers.spawn(serve(tcp, peer, Arc::clone(&hub)).instrument(span));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "publish server accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    subscribers.shutdown().await;
    tracing::info!("zeromq publish server closed");
}

/// How a subscriber's connection ended.
enum End {
    Closed,
    Io(std::io::Error),
    Handshake(HandshakeError),
    HandshakeTimeout,
    Violation(Violation),
    TooManySubscriptions,
    Kicked(&'static str),
}

/// One subscriber's connection, from handshake to close.
async fn serve(tcp: TcpStream, peer: SocketAddr, hub: Arc<Hub>) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
    let (mut reader, mut writer) = tcp.into_split();
    let mut decoder = FrameDecoder::new(MAX_SUBSCRIPTION);
    let handshake = handshake(&mut reader, &mut writer, &mut decoder);
    let end = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Err(_) => End::HandshakeTimeout,
        Ok(Err(end)) => end,
        Ok(Ok(identity)) => match hub.register(peer) {
            None => End::Kicked("publisher closed"),
            Some(registration) => {
                tracing::debug!(identity = %identity, "subscriber connected");
                let id = registration.id;
                let end = pump(registration, reader, writer, decoder, &hub).await;
                hub.remove(id);
                end
            }
        },
    };
    match end {
        End::Closed => tracing::debug!("subscriber disconnected"),
        End::Io(err) => tracing::debug!(error = %err, "subscriber connection failed"),
        End::Handshake(err) => {
            tracing::debug!(reason = %err.describe(), "subscriber handshake failed");
        }
        End::HandshakeTimeout => tracing::debug!(
            timeout = ?HANDSHAKE_TIMEOUT,
            "subscriber handshake timed out"
        ),
        End::Violation(violation) => tracing::warn!(
            reason = %violation.describe(),
            "subscriber disconnected: over a protocol limit"
        ),
        End::TooManySubscriptions => tracing::warn!(
            max = MAX_SUBSCRIPTIONS,
            reason = "too many subscriptions",
            "subscriber disconnected: over a protocol limit"
        ),
        // The hub has logged a slow subscriber already.
        End::Kicked(reason) => tracing::debug!(reason, "subscriber dropped"),
    }
}

/// Greetings and READYs; returns the peer's identity, for logs.
async fn handshake(
    reader: &mut OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
    decoder: &mut FrameDecoder,
) -> Result<String, End> {
    writer.write_all(&zmtp::greeting()).await.map_err(End::Io)?;
    let mut greeting = [0u8; zmtp::GREETING_LEN];
    reader.read_exact(&mut greeting).await.map_err(End::Io)?;
    zmtp::check_greeting(&greeting).map_err(End::Handshake)?;
    writer
        .write_all(&zmtp::ready("PUB"))
        .await
        .map_err(End::Io)?;
    let frame = loop {
        if let Some(frame) = decoder.next_frame().map_err(End::Violation)? {
            break frame;
        }
        read_some(reader, decoder).await?;
    };
    if !frame.is_command() {
        return Err(End::Handshake(HandshakeError::BadReady));
    }
    let ready = zmtp::parse_ready(&frame.body).map_err(End::Handshake)?;
    if !matches!(ready.socket_type.as_str(), "SUB" | "XSUB") {
        return Err(End::Handshake(HandshakeError::SocketType(
            ready.socket_type,
        )));
    }
    // Client-chosen bytes: shown lossily and short, for logs only.
    let identity = ready
        .identity
        .map(|id| String::from_utf8_lossy(&id[..id.len().min(64)]).into_owned())
        .unwrap_or_default();
    Ok(identity)
}

async fn read_some(reader: &mut OwnedReadHalf, decoder: &mut FrameDecoder) -> Result<(), End> {
    let mut chunk = [0u8; READ_CHUNK];
    match reader.read(&mut chunk).await {
        Ok(0) => Err(End::Closed),
        Ok(n) => {
            decoder.push(chunk.get(..n).unwrap_or_default());
            Ok(())
        }
        Err(err) => Err(End::Io(err)),
    }
}

/// Subscriptions in, messages out, until either side ends or the hub
/// kicks the subscriber.
async fn pump(
    registration: Registration,
    mut reader: OwnedReadHalf,
    mut writer: OwnedWriteHalf,
    mut decoder: FrameDecoder,
    hub: &Hub,
) -> End {
    let Registration {
        id,
        mut queue,
        mut kicked,
    } = registration;
    let mut batch = BytesMut::new();
    loop {
        // Subscriptions already buffered (they may follow READY directly).
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Err(end) = subscription(hub, id, &frame) {
                        return end;
                    }
                }
                Ok(None) => break,
                Err(violation) => return End::Violation(violation),
            }
        }
        tokio::select! {
            biased;
            reason = &mut kicked => return End::Kicked(reason.unwrap_or("publisher closed")),
            read = read_some(&mut reader, &mut decoder) => {
                if let Err(end) = read {
                    return end;
                }
            }
            unit = queue.recv() => {
                let Some(unit) = unit else {
                    return End::Kicked("publisher closed");
                };
                let written = tokio::select! {
                    biased;
                    reason = &mut kicked => return End::Kicked(reason.unwrap_or("publisher closed")),
                    written = write(&mut writer, unit, &mut queue, &mut batch) => written,
                };
                if let Err(err) = written {
                    return End::Io(err);
                }
            }
        }
    }
}

/// Applies one frame from a subscriber.
fn subscription(hub: &Hub, id: SubscriberId, frame: &zmtp::Frame) -> Result<(), End> {
    // Commands after READY (a libzmq PING, say) are ignored.
    if frame.is_command() {
        return Ok(());
    }
    if frame.has_more() {
        return Err(End::Violation(Violation::TooManyFrames(1)));
    }
    match frame.body.split_first() {
        Some((1, prefix)) => {
            if !hub.subscribe(id, Bytes::copy_from_slice(prefix), MAX_SUBSCRIPTIONS) {
                return Err(End::TooManySubscriptions);
            }
        }
        Some((0, prefix)) => hub.unsubscribe(id, prefix),
        // Not a subscription: libzmq's PUB ignores these too.
        _ => tracing::debug!("subscriber sent a message that is not a subscription"),
    }
    Ok(())
}

/// Writes `first` and whatever else is queued, small messages batched.
async fn write(
    writer: &mut OwnedWriteHalf,
    first: Unit,
    queue: &mut tokio::sync::mpsc::Receiver<Unit>,
    batch: &mut BytesMut,
) -> std::io::Result<()> {
    let mut next = Some(first);
    while let Some(unit) = next.take() {
        if unit.len() >= WRITE_BATCH {
            if !batch.is_empty() {
                writer.write_all(batch).await?;
                batch.clear();
            }
            writer.write_all(&unit.head).await?;
            writer.write_all(&unit.body).await?;
        } else {
            batch.extend_from_slice(&unit.head);
            batch.extend_from_slice(&unit.body);
        }
        if batch.len() < WRITE_BATCH {
            next = queue.try_recv().ok();
        }
    }
    if !batch.is_empty() {
        writer.write_all(batch).await?;
        batch.clear();
    }
    Ok(())
}
