//! A client's connection to one server, kept up by a driver task that
//! reconnects with backoff, and shared by the publish and request clients
//! of one minion (same address, identity and options), so both channels
//! ride one QUIC connection when the master serves them on one address.
//!
//! Links of a transport value share client UDP sockets, up to
//! [`LINKS_PER_SOCKET`] on each (a quinn client endpoint carries any number
//! of connections), so a process holding thousands of minions —
//! `brine-swarm` — needs tens of file descriptors rather than one or two
//! per minion. One socket for all of them was too few: when the master
//! publishes to 10,000 minions at once, their 10,000 packets arrive within
//! milliseconds, overflowed one socket's receive buffer (~8,500 drops per
//! `test.ping` round, each waiting out a retransmission timeout) and all
//! queued behind one endpoint task.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex, Weak},
};

use brine_transport_api::{ClientOptions, Limits, TransportError};
use quinn::Connection;
use rustls_pki_types::CertificateDer;
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::Instrument;

use crate::{
    config::Config,
    error::{self, Error, Opaque, SharedError},
    pki,
    tls::ClientTls,
    wire::code,
};

/// How many links share one client socket at most.
pub(crate) const LINKS_PER_SOCKET: usize = 128;

/// Every live link of a transport value, with the options it was made
/// for, and the client endpoints they send from.
#[derive(Debug, Default)]
pub(crate) struct Links {
    live: Mutex<Vec<(ClientOptions, Weak<Link>)>>,
    /// By address family (`true` for IPv6); an endpoint lives while a link
    /// uses it, so it never outlives the runtime its links run on.
    endpoints: Mutex<[Vec<Weak<ClientEndpoint>>; 2]>,
}

impl Links {
    /// How many links are alive (for tests).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        lock(&self.live)
            .iter()
            .filter(|(_, link)| link.strong_count() > 0)
            .count()
    }

    /// How many client sockets are open (for tests).
    #[cfg(test)]
    pub(crate) fn sockets(&self) -> usize {
        lock(&self.endpoints)
            .iter()
            .flatten()
            .filter(|e| e.strong_count() > 0)
            .count()
    }

    /// A client endpoint for `peer`'s address family with room for another
    /// link, or a new one bound to an ephemeral port.
    fn endpoint(&self, peer: SocketAddr) -> Result<Arc<ClientEndpoint>, TransportError> {
        let family = usize::from(peer.is_ipv6());
        let mut endpoints = lock(&self.endpoints);
        let endpoints = &mut endpoints[family];
        endpoints.retain(|e| e.strong_count() > 0);
        // Each link holds one reference; the one taken here is the new link's.
        if let Some(existing) = endpoints
            .iter()
            .filter_map(Weak::upgrade)
            .find(|e| Arc::strong_count(e) <= LINKS_PER_SOCKET)
        {
            return Ok(existing);
        }
        let local: SocketAddr = if peer.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoint =
            crate::udp::endpoint(local, None).map_err(|source| TransportError::Bind {
                addr: local.to_string(),
                source,
            })?;
        let shared = Arc::new(ClientEndpoint(endpoint));
        endpoints.push(Arc::downgrade(&shared));
        Ok(shared)
    }
}

/// A client endpoint shared by links; closed when the last one lets go.
#[derive(Debug)]
struct ClientEndpoint(quinn::Endpoint);

impl Drop for ClientEndpoint {
    fn drop(&mut self) {
        self.0.close(code::CLOSING, b"client closing");
    }
}

/// Where the driver is.
#[derive(Debug, Clone)]
pub(crate) enum LinkState {
    /// Attempt `attempt` (1-based) is under way.
    Connecting { attempt: u64 },
    /// Attempt `attempt` connected.
    Up { conn: Connection },
    /// Attempt `attempt` failed, or its connection was lost.
    Down { attempt: u64, error: SharedError },
}

/// One client connection, kept up in the background.
#[derive(Debug)]
pub(crate) struct Link {
    peer: String,
    state: watch::Receiver<LinkState>,
    kick: Arc<Notify>,
    driver: Mutex<Option<JoinHandle<()>>>,
    /// Held so the shared endpoint outlives this link's connection.
    _endpoint: Arc<ClientEndpoint>,
}

/// The part of the options that decides whether two clients may share a link.
fn link_key(opts: &ClientOptions) -> ClientOptions {
    let mut key = opts.clone();
    key.limits = Limits::default();
    key
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Link {
    /// The link for `opts`: an existing one made for the same server,
    /// identity and options, or a new one connecting in the background.
    ///
    /// # Errors
    /// Option and TLS configuration errors; never "server not up".
    pub(crate) async fn obtain(
        links: &Links,
        opts: &ClientOptions,
    ) -> Result<Arc<Self>, TransportError> {
        let key = link_key(opts);
        if let Some(link) = find(links, &key) {
            tracing::debug!(peer = %opts.connect, "sharing the quic connection");
            return Ok(link);
        }
        let config = Config::from_settings(&opts.settings)?;
        let tls_opts = opts.tls.clone();
        let tls = tokio::task::spawn_blocking(move || ClientTls::load(tls_opts.as_ref(), &config))
            .await
            .map_err(|e| error::backend(Error::Task(Opaque::new(e))))??;
        let endpoint = links.endpoint(opts.connect)?;
        let peer = opts.connect.to_string();
        let (state_tx, state) = watch::channel(LinkState::Connecting { attempt: 1 });
        let kick = Arc::new(Notify::new());
        let driver = tokio::spawn(
            drive(endpoint.0.clone(), tls, key.clone(), state_tx, kick.clone())
                .instrument(tracing::debug_span!("quic_client", peer = %opts.connect)),
        );
        let link = Arc::new(Self {
            peer,
            state,
            kick,
            driver: Mutex::new(Some(driver)),
            _endpoint: endpoint,
        });
        let mut all = lock(&links.live);
        all.retain(|(_, weak)| weak.strong_count() > 0);
        // Another client may have made the same link meanwhile: use that one
        // (ours shuts down as it drops).
        if let Some(existing) = all
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, weak)| weak.upgrade())
        {
            return Ok(existing);
        }
        all.push((key, Arc::downgrade(&link)));
        Ok(link)
    }

    /// The server address, for errors and logs.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// A watch on the link's state.
    pub(crate) fn watch(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }

    /// An open connection, waiting for one if the link is reconnecting.
    ///
    /// A link that is down is asked to try again at once, and this fails
    /// with that attempt's error if it fails too (so a request to a server
    /// that is down fails with a typed error, not only by its timeout).
    ///
    /// # Errors
    /// The error of the first connection attempt that ends after this call;
    /// [`TransportError::Closed`] when the link shuts down.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn connection(&self) -> Result<Connection, TransportError> {
        let mut state = self.state.clone();
        // Failures of attempts up to this number predate the call.
        let mut baseline: Option<u64> = None;
        loop {
            let current = state.borrow_and_update().clone();
            match current {
                LinkState::Up { conn } if conn.close_reason().is_none() => return Ok(conn),
                LinkState::Up { .. } => {}
                LinkState::Connecting { attempt } => {
                    baseline.get_or_insert(attempt.saturating_sub(1));
                }
                LinkState::Down { attempt, error } => match baseline {
                    Some(b) if attempt > b => return Err(error::duplicate(&error)),
                    Some(_) => {}
                    None => {
                        baseline = Some(attempt);
                        self.kick.notify_one();
                    }
                },
            }
            if state.changed().await.is_err() {
                return Err(TransportError::Closed);
            }
        }
    }

    /// Ends the driver and closes the connection, returning once the
    /// close frame is on its way to the server.
    async fn shutdown(self) {
        let driver = lock(&self.driver).take();
        if let Some(driver) = driver {
            driver.abort();
            let _ = driver.await;
        }
        if let Some((conn, sent)) = self.close_connection() {
            flush_close(&conn, sent).await;
        }
    }

    /// Closes this link's connection (not the endpoint other links share);
    /// the connection and how many datagrams it had sent before, if there
    /// was one.
    fn close_connection(&self) -> Option<(Connection, u64)> {
        match &*self.state.borrow() {
            LinkState::Up { conn } => {
                let sent = conn.stats().udp_tx.datagrams;
                conn.close(code::CLOSING, b"client closing");
                Some((conn.clone(), sent))
            }
            _ => None,
        }
    }
}

/// How many times `flush_close` lets quinn's driver run before giving up.
const CLOSE_FLUSH_TRIES: u32 = 64;

/// Waits (a few scheduler turns at most) until quinn's connection driver
/// has sent a datagram since `sent`: once closed, it sends nothing but the
/// close. A command-line client exits right after closing; without this
/// the close was never sent and the master kept each such connection
/// (~36 KB) until its idle timeout.
async fn flush_close(conn: &Connection, sent: u64) {
    for _ in 0..CLOSE_FLUSH_TRIES {
        if conn.stats().udp_tx.datagrams > sent {
            return;
        }
        tokio::task::yield_now().await;
    }
    tracing::debug!(peer = %conn.remote_address(), "close not sent yet; leaving it to quinn");
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(driver) = lock(&self.driver).take() {
            driver.abort();
        }
        let _ = self.close_connection();
    }
}

/// Lets go of a client's share of `link`; the last user shuts it down.
pub(crate) async fn release(link: Arc<Link>) {
    if let Some(link) = Arc::into_inner(link) {
        link.shutdown().await;
    }
}

fn find(links: &Links, key: &ClientOptions) -> Option<Arc<Link>> {
    let mut all = lock(&links.live);
    all.retain(|(_, weak)| weak.strong_count() > 0);
    all.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, weak)| weak.upgrade())
}

/// Connects, waits for the connection to end, and reconnects with backoff,
/// until aborted.
async fn drive(
    endpoint: quinn::Endpoint,
    tls: ClientTls,
    opts: ClientOptions,
    state: watch::Sender<LinkState>,
    kick: Arc<Notify>,
) {
    let peer = opts.connect.to_string();
    let mut attempt: u64 = 0;
    let mut failures: u32 = 0;
    loop {
        attempt += 1;
        state.send_replace(LinkState::Connecting { attempt });
        let started = Instant::now();
        match connect_once(&endpoint, &tls, &opts, &peer).await {
            Ok(conn) => {
                tracing::debug!(%peer, attempt, "connected");
                failures = 0;
                state.send_replace(LinkState::Up { conn: conn.clone() });
                let reason = conn.closed().await;
                let err = error::connection(&peer, reason, None);
                tracing::info!(%peer, reason = %error::chain(&err), "connection lost; reconnecting");
                state.send_replace(LinkState::Down {
                    attempt,
                    error: Arc::new(err),
                });
            }
            Err(err) => {
                tracing::debug!(%peer, attempt, error = %error::chain(&err), "connection attempt failed");
                state.send_replace(LinkState::Down {
                    attempt,
                    error: Arc::new(err),
                });
            }
        }
        let delay = opts.backoff.delay(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = async {
                kick.notified().await;
                // Someone is waiting: retry now, but not more often than
                // the initial backoff.
                tokio::time::sleep_until(started + opts.backoff.initial).await;
            } => {}
        }
    }
}

async fn connect_once(
    endpoint: &quinn::Endpoint,
    tls: &ClientTls,
    opts: &ClientOptions,
    peer: &str,
) -> Result<Connection, TransportError> {
    let pin_path = tls.verifier.pin_path().map(Path::to_path_buf);
    let pinned = match &pin_path {
        Some(path) => {
            let path = path.clone();
            blocking(move || pki::read_pin(&path)).await?
        }
        None => None,
    };
    let first_use = pin_path.is_some() && pinned.is_none();
    tls.verifier.prepare(pinned);
    let connecting = endpoint
        .connect_with(tls.config.clone(), opts.connect, &tls.server_name)
        .map_err(error::connect)?;
    let conn = match tokio::time::timeout(opts.connect_timeout, connecting).await {
        Err(_) => return Err(error::timeout(peer, opts.connect_timeout)),
        Ok(Err(err)) => return Err(error::connection(peer, err, tls.verifier.take_rejection())),
        Ok(Ok(conn)) => conn,
    };
    if let (true, Some(path)) = (first_use, pin_path) {
        pin_first_use(&conn, path, peer).await?;
    }
    Ok(conn)
}

/// Stores the certificate of the first server contacted as the pin.
async fn pin_first_use(
    conn: &Connection,
    path: std::path::PathBuf,
    peer: &str,
) -> Result<(), TransportError> {
    let presented = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|certs| certs.first().cloned());
    let Some(presented) = presented else {
        conn.close(code::PROTOCOL, b"no certificate");
        return Err(TransportError::Tls {
            peer: peer.to_owned(),
            reason: "the server presented no certificate".to_owned(),
        });
    };
    let shown = presented.clone();
    let pin_path = path.clone();
    let stored = blocking(move || pki::store_pin(&pin_path, &shown)).await?;
    if stored != presented {
        conn.close(code::PROTOCOL, b"certificate changed");
        return Err(TransportError::Tls {
            peer: peer.to_owned(),
            reason: format!(
                "the master's certificate differs from the one pinned at {} meanwhile",
                path.display()
            ),
        });
    }
    tracing::info!(%peer, pin = %path.display(), "pinned the master's certificate on first contact");
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TransportError> + Send + 'static,
) -> Result<T, TransportError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error::backend(Error::Task(Opaque::new(e))))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn links_spread_over_sockets_and_release_them() {
        let links = Links::default();
        // Nothing listens there: links keep trying in the background, which
        // is all this test needs.
        let addr: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 9).into();
        let pki = tempfile::tempdir().unwrap();
        let mut held = Vec::new();
        for i in 0..=LINKS_PER_SOCKET {
            let mut opts = ClientOptions::new(addr, format!("minion-{i}"));
            opts.tls = Some(brine_transport_api::TlsOptions {
                pki_dir: Some(pki.path().to_owned()),
                ..Default::default()
            });
            held.push(Link::obtain(&links, &opts).await.unwrap());
        }
        assert_eq!(links.sockets(), 2, "{} links", held.len());
        held.truncate(LINKS_PER_SOCKET);
        assert_eq!(links.sockets(), 1);
        drop(held);
        assert_eq!(links.sockets(), 0, "sockets close with their last link");
    }
}
