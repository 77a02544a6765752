//! A minion's connection to one server address, shared by its publish
//! client and its request client when both were made by the same transport
//! value with the same options (see `shared.rs`).
//!
//! A link has at most one publish client and one request client, and one
//! current connection whose kind follows them: requests only (the request
//! channel's wire), publish only (the publish channel's wire), or shared
//! when both are there. The request client opens the connection when a
//! request needs one (retrying with backoff until its deadline); the
//! publish client's driver keeps one open in the background. When the kind
//! must change (a publish client joins a request client's connection), the
//! old connection is *retired*: it takes no more requests, answers those it
//! has, and closes; the new one takes over.

pub(crate) mod conn;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use brine_transport_api::{
    Backoff, ClientOptions, Limits, TransportError,
    framing::{read_frame, write_frame},
};
use tokio::{
    io::AsyncWriteExt,
    sync::{mpsc, watch},
    time::Instant,
};
use tracing::debug;

use self::conn::{Conn, Ended, Feed, Mode, Outgoing, PublishPart};
use crate::{
    net::{BoxedIo, Dialer},
    publish::{KIND_HELLO, KIND_WELCOME},
    shared::{self, KIND_REQUESTS_ONLY, KIND_SHARED_HELLO, MAX_HELLO},
};
use brine_transport_api::pending::Pending;

/// Every live link of a transport value, by server address and identity
/// (a swarm holds thousands), with the options each was made for.
#[derive(Debug, Default)]
pub(crate) struct Links {
    live: Mutex<LiveLinks>,
}

type Bucket = Vec<(ClientOptions, Weak<Link>)>;

#[derive(Debug, Default)]
struct LiveLinks {
    by_peer: HashMap<(SocketAddr, String), Bucket>,
    /// Links made since the last sweep of dead entries.
    made: usize,
}

impl LiveLinks {
    /// The bucket for `key`, without its dead entries.
    fn bucket(&mut self, key: &ClientOptions) -> &mut Bucket {
        let bucket = self
            .by_peer
            .entry((key.connect, key.identity.clone()))
            .or_default();
        bucket.retain(|(_, weak)| weak.strong_count() > 0);
        bucket
    }

    /// Drops dead entries everywhere, once per as many links made as
    /// there are buckets, so the sweeps cost O(1) per link.
    fn sweep(&mut self) {
        self.made += 1;
        if self.made > self.by_peer.len() {
            self.made = 0;
            self.by_peer.retain(|_, bucket| {
                bucket.retain(|(_, weak)| weak.strong_count() > 0);
                !bucket.is_empty()
            });
        }
    }
}

/// Which client of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Publish,
    Requests,
}

/// One server address, identity and options, and the connection to it.
#[derive(Debug)]
pub(crate) struct Link {
    dialer: Dialer,
    backoff: Backoff,
    identity: String,
    sides: Mutex<Sides>,
    slot: tokio::sync::Mutex<Slot>,
    /// Bumped whenever a connection is installed, so a waiting publish
    /// driver picks up one the request client opened.
    installed: watch::Sender<u64>,
    next_id: AtomicU64,
}

/// A client on a link: its number (so a detach is idempotent) and limits.
type Side = Option<(u64, Limits)>;

/// The clients on a link.
#[derive(Debug, Default)]
struct Sides {
    requests: Side,
    publish: Side,
    next: u64,
}

/// The current connection, and retired ones still answering requests.
#[derive(Debug, Default)]
struct Slot {
    current: Option<Conn>,
    retiring: Vec<Conn>,
}

impl Slot {
    fn prune(&mut self) {
        self.retiring.retain(Conn::is_alive);
    }

    /// Retires the current connection, if any.
    fn retire_current(&mut self) {
        if let Some(retired) = self.current.take().and_then(Conn::retire) {
            self.retiring.push(retired);
        }
    }
}

/// What the publish driver gets from [`Link::publish_conn`].
#[derive(Debug)]
pub(crate) enum Session {
    /// A connection subscribed for it.
    Subscribed(Feed),
    /// A shared connection to an address that has no publish server now;
    /// it serves requests until it ends.
    RequestsOnly(Ended),
}

/// A client's place on a link; leaves it on drop.
#[derive(Debug)]
pub(crate) struct Attached {
    link: Arc<Link>,
    kind: Kind,
    side: u64,
}

impl Attached {
    /// The link.
    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// This client's number on the link.
    pub(crate) fn side(&self) -> u64 {
        self.side
    }

    /// Leaves the link, ending connections nobody needs any more.
    pub(crate) async fn leave(&self) {
        self.link.detach(self.kind, self.side).await;
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.link.detach_now(self.kind, self.side);
    }
}

/// The part of the options that decides whether two clients may share.
fn key(opts: &ClientOptions) -> ClientOptions {
    let mut key = opts.clone();
    key.limits = Limits::default();
    key
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    /// Puts a `kind` client with `opts` on a link: one made for the same
    /// options with no `kind` client yet, or a new one.
    ///
    /// # Errors
    /// Invalid settings or TLS material; never "server not up".
    pub(crate) async fn obtain(
        links: &Links,
        opts: &ClientOptions,
        kind: Kind,
    ) -> Result<Attached, TransportError> {
        let key = key(opts);
        if let Some(attached) = join(lock(&links.live).bucket(&key), &key, kind, opts.limits) {
            return Ok(attached);
        }
        let link = Arc::new(Self {
            dialer: Dialer::new(opts).await?,
            backoff: opts.backoff,
            identity: opts.identity.clone(),
            sides: Mutex::new(Sides::default()),
            slot: tokio::sync::Mutex::new(Slot::default()),
            installed: watch::Sender::new(0),
            next_id: AtomicU64::new(1),
        });
        let mut live = lock(&links.live);
        live.sweep();
        let bucket = live.bucket(&key);
        // Another client may have made a link for these options meanwhile.
        if let Some(attached) = join(bucket, &key, kind, opts.limits) {
            return Ok(attached);
        }
        let side = link.attach(kind, opts.limits).unwrap_or_default();
        bucket.push((key, Arc::downgrade(&link)));
        Ok(Attached { link, kind, side })
    }

    /// The server, for errors and logs.
    pub(crate) fn peer(&self) -> &str {
        self.dialer.peer()
    }

    /// A fresh request id (unique on the link, so on every connection).
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A watch bumped whenever a connection is installed.
    pub(crate) fn installed(&self) -> watch::Receiver<u64> {
        self.installed.subscribe()
    }

    fn attach(&self, kind: Kind, limits: Limits) -> Option<u64> {
        let mut sides = lock(&self.sides);
        let slot = match kind {
            Kind::Publish => &mut sides.publish,
            Kind::Requests => &mut sides.requests,
        };
        if slot.is_some() {
            return None;
        }
        let side = sides.next;
        sides.next += 1;
        match kind {
            Kind::Publish => sides.publish = Some((side, limits)),
            Kind::Requests => sides.requests = Some((side, limits)),
        }
        Some(side)
    }

    fn sides(&self) -> (Side, Side) {
        let sides = lock(&self.sides);
        (sides.requests, sides.publish)
    }

    /// Clears `kind` if `side` holds it; returns which clients are left.
    fn leave_side(&self, kind: Kind, side: u64) -> (bool, bool) {
        let mut sides = lock(&self.sides);
        let slot = match kind {
            Kind::Publish => &mut sides.publish,
            Kind::Requests => &mut sides.requests,
        };
        if slot.is_some_and(|(s, _)| s == side) {
            *slot = None;
        }
        (sides.requests.is_some(), sides.publish.is_some())
    }

    /// The connections no client left on the link needs.
    fn unneeded(slot: &mut Slot, requests: bool, publish: bool) -> Vec<Conn> {
        let needed = slot.current.as_ref().is_some_and(|conn| match conn.mode() {
            Mode::Requests => requests,
            Mode::Publish => publish,
            Mode::Shared => requests || publish,
        });
        let mut unneeded: Vec<Conn> = if needed {
            Vec::new()
        } else {
            slot.current.take().into_iter().collect()
        };
        if !requests && !publish {
            unneeded.append(&mut slot.retiring);
        }
        unneeded
    }

    async fn detach(&self, kind: Kind, side: u64) {
        let (requests, publish) = self.leave_side(kind, side);
        let unneeded = Self::unneeded(&mut *self.slot.lock().await, requests, publish);
        for conn in unneeded {
            conn.stop().await;
        }
    }

    fn detach_now(&self, kind: Kind, side: u64) {
        let (requests, publish) = self.leave_side(kind, side);
        // If the slot is busy, a client still uses the link; what it does
        // not need ends when the link is dropped.
        if let Ok(mut slot) = self.slot.try_lock() {
            drop(Self::unneeded(&mut slot, requests, publish));
        }
    }

    /// For the request client: the current connection if it takes
    /// requests, else a new one (shared if a publish client is on the
    /// link), dialed with backoff while the errors are worth retrying and
    /// the next try still fits before `deadline`.
    ///
    /// # Errors
    /// The last dial error; [`TransportError::Closed`] if the request
    /// client left.
    pub(crate) async fn request_conn(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(mpsc::Sender<Outgoing>, Arc<Pending>), TransportError> {
        let mut slot = self.slot.lock().await;
        slot.prune();
        if let Some(handles) = slot
            .current
            .as_ref()
            .filter(|conn| conn.is_alive())
            .and_then(Conn::requests)
        {
            return Ok(handles);
        }
        let mut attempt = 0u32;
        let conn = loop {
            let (requests, publish) = self.sides();
            let Some((_, limits)) = requests else {
                return Err(TransportError::Closed);
            };
            match self.open(Some(limits), publish).await {
                Ok(conn) => break conn,
                Err(err) if !err.is_retryable() => return Err(err),
                Err(err) => {
                    let delay = self.backoff.delay(attempt);
                    let retry_at = Instant::now().checked_add(delay);
                    if deadline.is_some_and(|d| retry_at.is_none_or(|at| at >= d)) {
                        return Err(err);
                    }
                    debug!(error = %err, attempt, ?delay, "cannot connect; retrying");
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        };
        let handles = conn.requests().ok_or(TransportError::Closed)?;
        slot.retire_current();
        self.install(&mut slot, conn);
        Ok(handles)
    }

    /// For the publish driver of client `side`: the current connection if
    /// it was opened for it, else one new attempt (shared if a request
    /// client is on the link).
    ///
    /// # Errors
    /// The attempt's error; [`TransportError::Closed`] if the publish
    /// client left.
    pub(crate) async fn publish_conn(&self, side: u64) -> Result<Session, TransportError> {
        let mut slot = self.slot.lock().await;
        slot.prune();
        if let Some(conn) = slot.current.as_mut().filter(|conn| conn.is_alive())
            && let Some(part) = conn.publish().filter(|part| part.side == side)
        {
            if let Some(feed) = conn.take_feed() {
                return Ok(Session::Subscribed(feed));
            }
            if !part.subscribed {
                return Ok(Session::RequestsOnly(conn.ended()));
            }
            // Its feed went to an earlier session of ours: it is ending.
        }
        let (requests, publish) = self.sides();
        let Some(publish) = publish.filter(|(s, _)| *s == side) else {
            return Err(TransportError::Closed);
        };
        let mut conn = self.open(requests.map(|(_, l)| l), Some(publish)).await?;
        let session = match conn.take_feed() {
            Some(feed) => Session::Subscribed(feed),
            None => Session::RequestsOnly(conn.ended()),
        };
        slot.retire_current();
        self.install(&mut slot, conn);
        Ok(session)
    }

    fn install(&self, slot: &mut Slot, conn: Conn) {
        slot.current = Some(conn);
        self.installed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// One attempt: dial, say hello as the clients on the link need, start
    /// the connection's task.
    async fn open(
        &self,
        requests: Option<Limits>,
        publish: Option<(u64, Limits)>,
    ) -> Result<Conn, TransportError> {
        let mode = match (requests.is_some(), publish.is_some()) {
            (true, true) => Mode::Shared,
            (true, false) => Mode::Requests,
            (false, true) => Mode::Publish,
            (false, false) => return Err(TransportError::Closed),
        };
        let mut io = self.dialer.dial().await?;
        let subscribed = match mode {
            Mode::Requests => false,
            Mode::Publish => self.hello(&mut io, KIND_HELLO).await?,
            Mode::Shared => self.hello(&mut io, KIND_SHARED_HELLO).await?,
        };
        debug!(?mode, subscribed, "connection up");
        let publish = publish.map(|(side, limits)| PublishPart {
            side,
            limits,
            subscribed,
        });
        Ok(Conn::start(io, mode, self.peer(), requests, publish))
    }

    /// Sends the hello of `kind` and reads the answer, within the connect
    /// timeout: `true` for a welcome, `false` when a shared connection will
    /// serve requests only.
    async fn hello(&self, io: &mut BoxedIo, kind: u8) -> Result<bool, TransportError> {
        let peer = self.peer();
        let hello = shared::encode_hello(kind, &self.identity)?;
        let malformed = || TransportError::Malformed {
            peer: peer.to_owned(),
            reason: "expected a welcome".to_owned(),
        };
        let exchange = async {
            write_frame(io, &hello, MAX_HELLO, peer).await?;
            io.flush()
                .await
                .map_err(|err| TransportError::from_io(peer, err))?;
            match read_frame(io, 1, peer).await {
                Ok(Some(frame)) if frame[..] == [KIND_WELCOME] => Ok(true),
                Ok(Some(frame))
                    if kind == KIND_SHARED_HELLO && frame[..] == [KIND_REQUESTS_ONLY] =>
                {
                    Ok(false)
                }
                Ok(Some(_)) | Err(TransportError::FrameTooLarge { .. }) => Err(malformed()),
                Ok(None) => Err(TransportError::ConnectionLost {
                    peer: peer.to_owned(),
                    source: None,
                }),
                Err(err) => Err(err),
            }
        };
        let timeout = self.dialer.connect_timeout();
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::Timeout {
                    peer: peer.to_owned(),
                    after: timeout,
                })
            })
    }
}

fn join(
    live: &[(ClientOptions, Weak<Link>)],
    key: &ClientOptions,
    kind: Kind,
    limits: Limits,
) -> Option<Attached> {
    live.iter()
        .filter(|(k, _)| k == key)
        .filter_map(|(_, weak)| weak.upgrade())
        .find_map(|link| {
            let side = link.attach(kind, limits)?;
            debug!(server = %link.peer(), ?kind, "sharing the connection");
            Some(Attached { link, kind, side })
        })
}
