//! Sockets: dialing and accepting connections (TCP tuning plus the optional
//! TLS handshake), and the owned accept loop every server runs.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use brine_transport_api::{ClientOptions, ServerOptions, TransportError};
use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::{JoinHandle, JoinSet},
};
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, debug_span, warn};

use crate::{
    config::Config,
    tls::{self, ClientTls},
};

/// A byte stream, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An established connection, plain or TLS.
pub(crate) type BoxedIo = Box<dyn Io>;

/// A connection whose first bytes were already read (to tell which service
/// it wants): reads give those bytes back first, then the rest of the
/// stream, so the service reads the connection from its start.
pub(crate) struct Prefixed {
    prefix: Bytes,
    io: BoxedIo,
}

impl Prefixed {
    /// `io`, with `prefix` put back in front of it.
    pub(crate) fn boxed(prefix: Bytes, io: BoxedIo) -> BoxedIo {
        Box::new(Self { prefix, io })
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How long a server gives a new connection for its TLS handshake and, on
/// the publish channel or a shared listener, its first frame.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a client reaches its server.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    addr: SocketAddr,
    peer: String,
    connect_timeout: Duration,
    tls: Option<ClientTls>,
    config: Config,
}

impl Dialer {
    /// Validates the options and loads the TLS trust store, if any.
    ///
    /// # Errors
    /// Invalid settings or TLS material.
    pub(crate) async fn new(opts: &ClientOptions) -> Result<Self, TransportError> {
        let config = Config::from_settings(&opts.settings)?;
        let tls = match &opts.tls {
            Some(tls) => Some(tls::client(tls).await?),
            None => None,
        };
        Ok(Self {
            addr: opts.connect,
            peer: opts.connect.to_string(),
            connect_timeout: opts.connect_timeout,
            tls,
            config,
        })
    }

    /// The server, for errors and logs.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// How long one attempt (TCP connect plus TLS handshake) may take.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// One connection attempt, bounded by the connect timeout.
    ///
    /// # Errors
    /// [`TransportError::ConnectionRefused`] when nothing listens,
    /// [`TransportError::Timeout`] past the connect timeout,
    /// [`TransportError::Tls`] when the handshake or the certificate check
    /// fails, other I/O errors as mapped by [`TransportError::from_io`].
    pub(crate) async fn dial(&self) -> Result<BoxedIo, TransportError> {
        let attempt = async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .map_err(|err| TransportError::from_io(&self.peer, err))?;
            self.config.tune(&tcp);
            let io: BoxedIo = match &self.tls {
                None => Box::new(tcp),
                Some(tls) => Box::new(
                    tls.connector
                        .connect(tls.server_name.clone(), tcp)
                        .await
                        .map_err(|err| tls::handshake_error(&self.peer, err))?,
                ),
            };
            Ok(io)
        };
        tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::Timeout {
                    peer: self.peer.clone(),
                    after: self.connect_timeout,
                })
            })
    }
}

/// How a server takes a new connection.
#[derive(Clone)]
pub(crate) struct Acceptor {
    tls: Option<TlsAcceptor>,
    config: Config,
}

impl Acceptor {
    /// Validates the options and loads the TLS certificate, if any.
    ///
    /// # Errors
    /// Invalid settings or TLS material.
    pub(crate) async fn new(opts: &ServerOptions) -> Result<Self, TransportError> {
        let config = Config::from_settings(&opts.settings)?;
        let tls = match &opts.tls {
            Some(tls) => Some(tls::server(tls).await?),
            None => None,
        };
        Ok(Self { tls, config })
    }

    /// Tunes the socket and runs the TLS handshake (bounded by
    /// [`HANDSHAKE_TIMEOUT`]).
    ///
    /// # Errors
    /// [`TransportError::Tls`] on a failed handshake, [`TransportError::Timeout`]
    /// on a slow one, I/O errors otherwise.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
        peer: &str,
    ) -> Result<BoxedIo, TransportError> {
        self.config.tune(&tcp);
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(err)) => Err(tls::handshake_error(peer, err)),
            Err(_) => Err(TransportError::Timeout {
                peer: peer.to_owned(),
                after: HANDSHAKE_TIMEOUT,
            }),
        }
    }
}

/// Binds a listening socket (tokio sets `SO_REUSEADDR` on Unix, so a port
/// can be bound again right after a close).
///
/// # Errors
/// [`TransportError::Bind`].
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, TransportError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| TransportError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// A server's accept loop and every connection task under it, owned: `stop`
/// ends them all and releases the port; dropping aborts them.
#[derive(Debug)]
pub(crate) struct AcceptLoop {
    running: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl AcceptLoop {
    /// Starts accepting on `listener`; each connection is handshaken by
    /// `acceptor` and then served by `serve` in its own task.
    pub(crate) fn start<F, Fut>(
        channel: &'static str,
        listener: TcpListener,
        acceptor: Acceptor,
        serve: F,
    ) -> Self
    where
        F: Fn(BoxedIo, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(channel, listener, acceptor, serve, stop_rx));
        Self {
            running: Mutex::new(Some((stop_tx, task))),
        }
    }

    /// Stops accepting, closes the listening socket, ends every connection
    /// task and waits for all of them. Idempotent.
    pub(crate) async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((stop, task)) = running {
            let _ = stop.send(());
            if let Err(err) = task.await {
                warn!(error = %err, "accept loop ended abnormally");
            }
        }
    }

    /// Stops without waiting (for `Drop`): the port is released as soon as
    /// the aborted task is dropped.
    pub(crate) fn abort(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((_, task)) = running {
            // Aborting drops the loop's JoinSet, which aborts every connection.
            task.abort();
        }
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.abort();
    }
}

async fn accept_loop<F, Fut>(
    channel: &'static str,
    listener: TcpListener,
    acceptor: Acceptor,
    serve: F,
    mut stop: oneshot::Receiver<()>,
) where
    F: Fn(BoxedIo, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => {
                    let acceptor = acceptor.clone();
                    let serve = Arc::clone(&serve);
                    let conn = async move {
                        let peer = addr.to_string();
                        match acceptor.accept(tcp, &peer).await {
                            Ok(io) => serve(io, addr).await,
                            Err(err @ TransportError::Tls { .. }) => {
                                warn!(error = %err, "tls handshake failed; connection closed");
                            }
                            Err(err) => debug!(error = %err, "handshake failed; connection closed"),
                        }
                    };
                    conns.spawn(conn.instrument(debug_span!("conn", channel, peer = %addr)));
                }
                Err(err) => {
                    // Usually out of file descriptors: back off briefly.
                    warn!(channel, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
    debug!(channel, "stopped");
}

/// A spawned task that is aborted when this handle is dropped.
#[derive(Debug)]
pub(crate) struct OwnedTask(Option<JoinHandle<()>>);

impl OwnedTask {
    /// Spawns `task` on the current runtime.
    pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(Some(tokio::spawn(task)))
    }

    /// Whether the task has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.0.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Aborts the task and waits until it is gone.
    pub(crate) async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            // A cancelled task's error is the expected outcome here.
            let _ = task.await;
        }
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn prefixed_gives_back_the_bytes_read_then_the_stream() {
        let (mut peer, ours) = tokio::io::duplex(64);
        peer.write_all(b" world").await.unwrap();
        let mut io = Prefixed::boxed(Bytes::from_static(b"hello"), Box::new(ours));
        let mut first = [0u8; 3];
        io.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"hel");
        let mut rest = [0u8; 8];
        io.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"lo world");
        io.write_all(b"back").await.unwrap();
        io.flush().await.unwrap();
        let mut echoed = [0u8; 4];
        peer.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"back");
    }
}
