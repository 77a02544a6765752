//! Shared pieces of the checks: addresses, tagged frames, payload patterns
//! and checksums, and subscribers followed by their own tasks.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use brine_transport_api::{Audience, PublishClient, PublishServer, Received};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::{sync::mpsc, task::JoinSet, time::Instant};

/// How long a check waits for any one thing before it reports what is
/// missing (well inside [`CHECK_TIMEOUT`](crate::CHECK_TIMEOUT), so the
/// failure says more than "timed out").
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The timeout of requests that are expected to succeed.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often warm-up frames go out while waiting for subscribers.
const WARM_UP_EVERY: Duration = Duration::from_millis(25);

/// `127.0.0.1:0`: every check binds here.
pub(crate) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Turns any displayable error into a check failure with context.
pub(crate) fn ctx<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {err}")
}

// ------------------------------------------------------------ tagged frames

/// First bytes of every frame the publish checks tag.
const MAGIC: &[u8; 4] = b"BRNc";

/// Length of a tagged frame without padding: magic, kind, sequence number,
/// padding length.
const TAGGED_LEN: usize = MAGIC.len() + 1 + 8 + 4;

/// A warm-up frame, published until every subscriber has seen one
/// (PUB/SUB backends may drop the first frames after a connect).
pub(crate) const WARM_UP: u8 = b'W';
/// A numbered data frame.
pub(crate) const DATA: u8 = b'D';
/// The end of a run: followers stop collecting when they see it.
pub(crate) const MARKER: u8 = b'M';

/// A frame tagged `kind` with sequence number `seq`, padded with `pad`
/// pattern bytes.
pub(crate) fn tagged(kind: u8, seq: u64, pad: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(TAGGED_LEN + pad);
    out.put_slice(MAGIC);
    out.put_u8(kind);
    out.put_u64(seq);
    // Checks pad by kilobytes or megabytes, far below u32::MAX.
    out.put_u32(u32::try_from(pad).unwrap_or(u32::MAX));
    out.put_slice(&pattern(pad, seq));
    out.freeze()
}

/// The `(kind, seq)` of a tagged frame whose padding is intact, else `None`.
pub(crate) fn parse_tagged(frame: &[u8]) -> Option<(u8, u64)> {
    let rest = frame.strip_prefix(MAGIC)?;
    let (&kind, rest) = rest.split_first()?;
    let seq = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let pad_len = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?);
    let pad = rest.get(12..)?;
    let intact = usize::try_from(pad_len).is_ok_and(|len| len == pad.len())
        && pad == &pattern(pad.len(), seq)[..];
    intact.then_some((kind, seq))
}

/// Whether `frame` is a warm-up frame.
pub(crate) fn is_warm_up(frame: &[u8]) -> bool {
    frame.len() == TAGGED_LEN && matches!(parse_tagged(frame), Some((WARM_UP, _)))
}

/// `len` pseudo-random bytes determined by `seed` (xorshift64), so a frame
/// corrupted or cut anywhere is noticed.
pub(crate) fn pattern(len: usize, seed: u64) -> Bytes {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = BytesMut::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word = state.to_le_bytes();
        let take = (len - out.len()).min(word.len());
        out.put_slice(&word[..take]);
    }
    out.freeze()
}

/// 64-bit FNV-1a.
pub(crate) fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A frame's length and checksum, for messages about it.
pub(crate) fn describe(frame: &[u8]) -> String {
    format!("{} bytes, fnv64 {:016x}", frame.len(), fnv64(frame))
}

// ------------------------------------------------------------- one subscriber

/// Waits for `sub` to report [`Received::Connected`], ignoring anything else.
pub(crate) async fn wait_connected(sub: &dyn PublishClient, who: &str) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, sub.recv()).await {
            Ok(Ok(Received::Connected)) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(format!("{who}: recv failed before connecting: {err}")),
            Err(_) => return Err(format!("{who}: not connected within {PATIENCE:?}")),
        }
    }
}

/// Publishes warm-up frames until `sub` has received one; anything else it
/// receives meanwhile is dropped.
pub(crate) async fn warm_up_one(
    server: &dyn PublishServer,
    sub: &dyn PublishClient,
    who: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seq = 0;
    while Instant::now() < deadline {
        server
            .publish(tagged(WARM_UP, seq, 0), &Audience::All)
            .await
            .map_err(ctx("publish warm-up frame"))?;
        seq += 1;
        let tick = Instant::now() + WARM_UP_EVERY;
        while let Ok(received) = tokio::time::timeout_at(tick, sub.recv()).await {
            match received {
                Ok(Received::Frame(frame)) if is_warm_up(&frame) => return Ok(()),
                Ok(_) => {}
                Err(err) => return Err(format!("{who}: recv failed during warm-up: {err}")),
            }
        }
    }
    Err(format!(
        "{who}: saw none of {seq} warm-up frames within {PATIENCE:?}"
    ))
}

/// The next published frame that is not a warm-up frame; a connection
/// change on the way is an error.
pub(crate) async fn next_frame(sub: &dyn PublishClient, who: &str) -> Result<Bytes, String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, sub.recv()).await {
            Ok(Ok(Received::Frame(frame))) if is_warm_up(&frame) => {}
            Ok(Ok(Received::Frame(frame))) => return Ok(frame),
            Ok(Ok(other)) => return Err(format!("{who}: unexpected {other:?}")),
            Ok(Err(err)) => return Err(format!("{who}: recv failed: {err}")),
            Err(_) => return Err(format!("{who}: no frame within {PATIENCE:?}")),
        }
    }
}

// --------------------------------------------------------- many subscribers

enum Signal {
    Connected(usize),
    WarmedUp(usize),
}

/// What one followed subscriber collected: every tagged non-warm-up frame
/// `(kind, seq)` after its warm-up, up to (not including) the marker.
pub(crate) type Collected = Result<Vec<(u8, u64)>, String>;

/// Subscribers each read by their own task, so none falls behind while the
/// check publishes. Each task waits for `Connected`, reports its first
/// warm-up frame, then collects tagged frames until the marker.
pub(crate) struct Crowd {
    names: Vec<String>,
    connected: Vec<bool>,
    warmed: Vec<bool>,
    signal_tx: mpsc::Sender<Signal>,
    signals: mpsc::Receiver<Signal>,
    tasks: JoinSet<(usize, Collected)>,
    subs: Vec<Arc<dyn PublishClient>>,
    warm_up_seq: u64,
}

impl Crowd {
    pub(crate) fn new() -> Self {
        let (signal_tx, signals) = mpsc::channel(256);
        Self {
            names: Vec::new(),
            connected: Vec::new(),
            warmed: Vec::new(),
            signal_tx,
            signals,
            tasks: JoinSet::new(),
            subs: Vec::new(),
            warm_up_seq: 1 << 32,
        }
    }

    /// Starts following `sub`, called `name` in messages; returns its index.
    pub(crate) fn add(&mut self, name: impl Into<String>, sub: Box<dyn PublishClient>) -> usize {
        let index = self.names.len();
        let name = name.into();
        let sub: Arc<dyn PublishClient> = Arc::from(sub);
        self.tasks.spawn(follow(
            sub.clone(),
            index,
            name.clone(),
            self.signal_tx.clone(),
        ));
        self.subs.push(sub);
        self.names.push(name);
        self.connected.push(false);
        self.warmed.push(false);
        index
    }

    fn note(&mut self, signal: Signal) {
        match signal {
            Signal::Connected(i) => {
                if let Some(flag) = self.connected.get_mut(i) {
                    *flag = true;
                }
            }
            Signal::WarmedUp(i) => {
                if let Some(flag) = self.warmed.get_mut(i) {
                    *flag = true;
                }
            }
        }
    }

    fn missing(&self, flags: &[bool]) -> Vec<&str> {
        flags
            .iter()
            .zip(&self.names)
            .filter(|(flag, _)| !**flag)
            .map(|(_, name)| name.as_str())
            .collect()
    }

    /// Waits until every subscriber added so far reported `Connected`.
    pub(crate) async fn wait_connected(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        while self.connected.contains(&false) {
            match tokio::time::timeout_at(deadline, self.signals.recv()).await {
                Ok(Some(signal)) => self.note(signal),
                _ => {
                    let missing = self.missing(&self.connected);
                    return Err(format!(
                        "{} subscriber(s) not connected within {PATIENCE:?}: {}",
                        missing.len(),
                        summarize(&missing)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Publishes warm-up frames to everyone until every subscriber added so
    /// far has seen one.
    pub(crate) async fn warm_up(&mut self, server: &dyn PublishServer) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        while self.warmed.contains(&false) {
            if Instant::now() >= deadline {
                let missing = self.missing(&self.warmed);
                return Err(format!(
                    "{} subscriber(s) saw no warm-up frame within {PATIENCE:?}: {}",
                    missing.len(),
                    summarize(&missing)
                ));
            }
            server
                .publish(tagged(WARM_UP, self.warm_up_seq, 0), &Audience::All)
                .await
                .map_err(ctx("publish warm-up frame"))?;
            self.warm_up_seq += 1;
            let tick = Instant::now() + WARM_UP_EVERY;
            while let Ok(Some(signal)) = tokio::time::timeout_at(tick, self.signals.recv()).await {
                self.note(signal);
            }
        }
        Ok(())
    }

    /// Publishes the marker to everyone and returns what each subscriber
    /// collected, by index, with its name.
    pub(crate) async fn finish(
        mut self,
        server: &dyn PublishServer,
    ) -> Result<Vec<(String, Collected)>, String> {
        server
            .publish(tagged(MARKER, 0, 0), &Audience::All)
            .await
            .map_err(ctx("publish marker"))?;
        let mut results: Vec<Option<Collected>> = vec![None; self.names.len()];
        let deadline = Instant::now() + PATIENCE;
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await
        {
            let (index, collected) =
                joined.map_err(|err| format!("a subscriber's task failed: {err}"))?;
            if let Some(slot) = results.get_mut(index) {
                *slot = Some(collected);
            }
        }
        for sub in &self.subs {
            // Closing is checked elsewhere; here it only frees resources.
            let _ = sub.close().await;
        }
        Ok(self
            .names
            .into_iter()
            .zip(results)
            .map(|(name, collected)| {
                let collected =
                    collected.unwrap_or_else(|| Err(format!("no marker within {PATIENCE:?}")));
                (name, collected)
            })
            .collect())
    }
}

/// The first few names, and how many more.
pub(crate) fn summarize(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let shown = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

async fn follow(
    sub: Arc<dyn PublishClient>,
    index: usize,
    name: String,
    signals: mpsc::Sender<Signal>,
) -> (usize, Collected) {
    (index, collect(&*sub, index, &name, &signals).await)
}

async fn collect(
    sub: &dyn PublishClient,
    index: usize,
    name: &str,
    signals: &mpsc::Sender<Signal>,
) -> Collected {
    let mut connected = false;
    let mut warmed = false;
    let mut seen = Vec::new();
    loop {
        let received = match tokio::time::timeout(PATIENCE, sub.recv()).await {
            Ok(Ok(received)) => received,
            Ok(Err(err)) => return Err(format!("{name}: recv failed: {err}")),
            Err(_) => {
                return Err(format!(
                    "{name}: nothing received for {PATIENCE:?} (connected: {connected}, \
                     warmed up: {warmed}, {} frames so far)",
                    seen.len()
                ));
            }
        };
        match received {
            Received::Connected if !connected => {
                connected = true;
                // The check may have gone; then nobody needs the signal.
                let _ = signals.send(Signal::Connected(index)).await;
            }
            Received::Connected => {
                return Err(format!(
                    "{name}: reconnected during the run (frames may be lost)"
                ));
            }
            Received::Disconnected { reason } => {
                return Err(format!(
                    "{name}: disconnected after {} frames: {reason}",
                    seen.len()
                ));
            }
            Received::Frame(frame) => match parse_tagged(&frame) {
                Some((WARM_UP, _)) => {
                    if !warmed {
                        warmed = true;
                        let _ = signals.send(Signal::WarmedUp(index)).await;
                    }
                }
                Some((MARKER, _)) if warmed => return Ok(seen),
                Some(tag) if warmed => seen.push(tag),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "{name}: received a frame the check did not publish ({})",
                        describe(&frame)
                    ));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_frames_round_trip_and_detect_corruption() {
        let frame = tagged(DATA, 42, 100);
        assert_eq!(parse_tagged(&frame), Some((DATA, 42)));
        let mut bad = frame.to_vec();
        bad[50] ^= 1;
        assert_eq!(parse_tagged(&bad), None);
        assert_eq!(parse_tagged(&frame[..frame.len() - 1]), None);
        assert!(is_warm_up(&tagged(WARM_UP, 1, 0)));
        assert!(!is_warm_up(&tagged(DATA, 1, 0)));
        assert!(!is_warm_up(b""));
    }

    #[test]
    fn pattern_is_deterministic_and_fnv_matches_reference() {
        assert_eq!(pattern(1000, 7), pattern(1000, 7));
        assert_ne!(pattern(1000, 7), pattern(1000, 8));
        assert_eq!(pattern(3, 1).len(), 3);
        assert_eq!(fnv64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
