//! The relay in front of the request server's ROUTER: the public TCP port
//! is ours, and every connection is relayed to the zeromq socket, which
//! listens on a private Unix socket (a fresh 0700 directory under the temp
//! dir). (The publisher needs none: it speaks ZMTP itself, see
//! [`crate::publish_server`].)
//!
//! Why: the `zeromq` crate has neither a maximum message size nor a
//! high-water mark. Client → server, the relay scans the ZMTP stream
//! ([`crate::guard`]) so no oversized frame reaches the crate's decoder
//! (which would reserve the announced length, or abort the process on an
//! absurd one). Server → client, it reads whole units off the crate and
//! queues at most [`Limits::queue_depth`] of them per client; a client that
//! lets the queue fill is disconnected with a logged reason, and never
//! holds up the others or grows memory without bound.
//!
//! It also gives each connection a ZMTP identity of its own,
//! `brine:<peer address>#<n>` (see [`crate::guard`]), which is how the
//! request server learns a client's address ([`peer_of`]).
//!
//! Cost: one more socket pair and one more copy per connection; apart from
//! the READY command's identity, the bytes pass through untouched.
//!
//! [`Limits::queue_depth`]: brine_transport_api::Limits

use std::{
    net::SocketAddr,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use brine_transport_api::TransportError;
use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UnixStream, tcp, unix},
    sync::mpsc,
    task::JoinSet,
};
use tracing::Instrument;

use crate::{
    guard::{self, Scanner, Violation},
    task::{StopSignal, Worker},
};

/// Bytes read from a socket at once. Each relayed connection holds two such
/// buffers (about 20 KiB per client with the rest), so keep it small: a
/// master relays for every minion.
const READ_CHUNK: usize = 8 * 1024;

/// Small units written to a client in one go.
const WRITE_BATCH: usize = 16 * 1024;

/// Pause after a failed `accept` (out of descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Prefix of the identities the relay hands out.
const IDENTITY_PREFIX: &str = "brine:";

/// The identity of the `n`th relayed connection, from `peer`.
fn identity_for(peer: SocketAddr, n: u64) -> Bytes {
    Bytes::from(format!("{IDENTITY_PREFIX}{peer}#{n}"))
}

/// The client address in an identity the relay handed out.
pub(crate) fn peer_of(identity: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(identity).ok()?;
    let (addr, _) = text.strip_prefix(IDENTITY_PREFIX)?.rsplit_once('#')?;
    addr.parse().ok()
}

/// What a relay enforces on each connection.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Which server, for logs.
    pub(crate) role: &'static str,
    /// Limits on what clients send.
    pub(crate) inbound: guard::Limits,
    /// Units queued towards one client before it is disconnected.
    pub(crate) queue_depth: usize,
}

/// The private Unix socket a zeromq server socket listens on.
#[derive(Debug)]
pub(crate) struct Internal {
    dir: PathBuf,
    path: PathBuf,
}

impl Internal {
    /// Creates the private directory and binds the socket in it.
    ///
    /// # Errors
    /// [`TransportError::Bind`] naming the path.
    pub(crate) fn bind() -> Result<(Self, std::os::unix::net::UnixListener), TransportError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let bind_err = |path: &Path, source| TransportError::Bind {
            addr: path.display().to_string(),
            source,
        };
        let mut attempt = 0;
        let dir = loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!(
                "brine-zmq-{}-{}-{nanos}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                // Someone else's: pick another name.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => {
                    attempt += 1;
                }
                Err(err) => return Err(bind_err(&dir, err)),
            }
        };
        let internal = Self {
            path: dir.join("zmq.sock"),
            dir,
        };
        let listener = std::os::unix::net::UnixListener::bind(&internal.path)
            .map_err(|err| bind_err(&internal.path, err))?;
        Ok((internal, listener))
    }

    /// Removes the socket file and its directory (idempotent).
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Drop for Internal {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The running relay: its accept loop and every relayed connection.
#[derive(Debug)]
pub(crate) struct Relay {
    internal: Internal,
    worker: Worker,
}

impl Relay {
    /// Starts relaying connections accepted on `public` to `internal`.
    ///
    /// # Errors
    /// [`TransportError::Bind`] if the listener cannot be registered with tokio.
    pub(crate) fn start(
        public: std::net::TcpListener,
        internal: Internal,
        policy: Policy,
    ) -> Result<Self, TransportError> {
        let addr = public
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let bind_err = |source| TransportError::Bind {
            addr: addr.clone(),
            source,
        };
        public.set_nonblocking(true).map_err(bind_err)?;
        let public = TcpListener::from_std(public).map_err(bind_err)?;
        let path: Arc<Path> = Arc::from(internal.path.as_path());
        let worker = Worker::spawn(|stop| accept(public, path, Arc::new(policy), stop));
        Ok(Self { internal, worker })
    }

    /// Closes the public port and every relayed connection.
    pub(crate) async fn stop(&self) {
        self.worker.stop().await;
    }

    /// Removes the private socket; call after the zeromq socket is closed.
    pub(crate) fn remove_internal(&self) {
        self.internal.remove();
    }
}

async fn accept(listener: TcpListener, path: Arc<Path>, policy: Arc<Policy>, mut stop: StopSignal) {
    let mut connections = JoinSet::new();
    let mut accepted_count: u64 = 0;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    accepted_count = accepted_count.wrapping_add(1);
                    let identity = identity_for(peer, accepted_count);
                    let span = tracing::debug_span!("zmq_relay", role = policy.role, %peer);
                    let conn = relay(tcp, identity, Arc::clone(&path), Arc::clone(&policy));
                    connections.spawn(conn.instrument(span));
                }
                Err(err) => {
                    tracing::warn!(role = policy.role, error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// How a relayed connection ended.
enum End {
    Closed(&'static str),
    Io(&'static str, std::io::Error),
    Violation(Violation),
    Slow,
}

async fn relay(tcp: TcpStream, identity: Bytes, path: Arc<Path>, policy: Arc<Policy>) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
    let internal = match UnixStream::connect(&*path).await {
        Ok(internal) => internal,
        Err(err) => {
            tracing::warn!(error = %err, "relay cannot reach the zeromq socket");
            return;
        }
    };
    tracing::debug!("client connected");
    let (tcp_read, tcp_write) = tcp.into_split();
    let (internal_read, internal_write) = internal.into_split();
    let (units, queued) = mpsc::channel(policy.queue_depth.max(1));
    let scanner = Scanner::inbound(policy.inbound.clone(), identity);
    let end = tokio::select! {
        end = inbound(tcp_read, internal_write, scanner) => end,
        end = outbound(internal_read, units) => end,
        end = write_out(queued, tcp_write) => end,
    };
    match end {
        End::Closed(side) => tracing::debug!(side, "connection closed"),
        End::Io(side, err) => tracing::debug!(side, error = %err, "connection failed"),
        End::Violation(violation) => tracing::warn!(
            reason = %violation.describe(),
            "client disconnected: over a protocol limit"
        ),
        End::Slow => tracing::warn!(
            queue_depth = policy.queue_depth,
            reason = "send queue full",
            "slow client disconnected"
        ),
    }
}

/// Client → zeromq socket, through the scanner.
async fn inbound(
    mut from: tcp::OwnedReadHalf,
    mut to: unix::OwnedWriteHalf,
    mut scanner: Scanner,
) -> End {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => return End::Closed("client"),
            Ok(n) => n,
            Err(err) => return End::Io("client", err),
        };
        let mut input = buf.get(..n).unwrap_or_default();
        while !input.is_empty() {
            match scanner.step(input, &mut out) {
                Ok(step) if step.consumed > 0 => {
                    input = input.get(step.consumed..).unwrap_or_default();
                }
                Ok(_) => break, // cannot happen: every state consumes input
                Err(violation) => return End::Violation(violation),
            }
        }
        if !out.is_empty() {
            if let Err(err) = to.write_all(&out).await {
                return End::Io("zeromq socket", err);
            }
            out.clear();
        }
    }
}

/// Zeromq socket → the client's bounded queue, one whole unit at a time.
async fn outbound(mut from: unix::OwnedReadHalf, units: mpsc::Sender<Bytes>) -> End {
    let mut scanner = Scanner::outbound();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut unit = BytesMut::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => return End::Closed("zeromq socket"),
            Ok(n) => n,
            Err(err) => return End::Io("zeromq socket", err),
        };
        let mut input = buf.get(..n).unwrap_or_default();
        while !input.is_empty() {
            let step = match scanner.step(input, &mut unit) {
                Ok(step) if step.consumed > 0 => step,
                Ok(_) => break,
                Err(violation) => return End::Violation(violation),
            };
            input = input.get(step.consumed..).unwrap_or_default();
            if step.unit_done {
                match units.try_send(unit.split().freeze()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => return End::Slow,
                    Err(mpsc::error::TrySendError::Closed(_)) => return End::Closed("client"),
                }
            }
        }
    }
}

/// The client's queue → the client, batching small units.
async fn write_out(mut queued: mpsc::Receiver<Bytes>, mut to: tcp::OwnedWriteHalf) -> End {
    let mut batch = BytesMut::new();
    while let Some(first) = queued.recv().await {
        let written = match queued.try_recv() {
            Err(_) => to.write_all(&first).await,
            Ok(second) => {
                batch.clear();
                batch.extend_from_slice(&first);
                batch.extend_from_slice(&second);
                while batch.len() < WRITE_BATCH {
                    match queued.try_recv() {
                        Ok(unit) => batch.extend_from_slice(&unit),
                        Err(_) => break,
                    }
                }
                to.write_all(&batch).await
            }
        };
        if let Err(err) = written {
            return End::Io("client", err);
        }
    }
    End::Closed("relay")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_carry_the_peer_address() {
        for peer in ["127.0.0.1:4506", "[2001:db8::1]:65535"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let identity = identity_for(peer, u64::MAX);
            assert!(
                identity.len() <= 255,
                "zeromq identities are at most 255 bytes"
            );
            assert_eq!(peer_of(&identity), Some(peer));
        }
        assert_eq!(peer_of(b"minion-1"), None);
        assert_eq!(peer_of(b"brine:nonsense#1"), None);
        assert_eq!(peer_of(&[0xff, 0xfe]), None);
    }

    #[test]
    fn the_private_socket_is_owner_only_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let (internal, listener) = Internal::bind().unwrap();
        let mode = std::fs::metadata(&internal.dir)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(internal.path.exists());
        let dir = internal.dir.clone();
        drop(listener);
        drop(internal);
        assert!(!dir.exists());
    }
}
