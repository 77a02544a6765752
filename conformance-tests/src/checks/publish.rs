//! The publish channel: fan-out, order, targeting, late joiners and slow
//! subscribers.

use std::time::Duration;

use brine_transport_api::{Audience, PublishClient, Received};
use tokio::{sync::watch, time::Instant};

use super::support::{
    Collected, Crowd, DATA, PATIENCE, ctx, loopback, parse_tagged, summarize, tagged,
    wait_connected, warm_up_one,
};
use crate::{CheckResult, Harness, Outcome};

const SUBSCRIBERS: usize = 100;
const NUMBERED: u64 = 100;

/// The names of subscribers whose collection is not exactly `expected`.
fn mismatches(
    results: &[(String, Collected)],
    expected: impl Fn(&str) -> Vec<(u8, u64)>,
) -> Vec<String> {
    results
        .iter()
        .filter_map(|(name, collected)| match collected {
            Err(why) => Some(why.clone()),
            Ok(seen) => {
                let want = expected(name);
                (seen != &want).then(|| {
                    format!(
                        "{name}: expected {} frames {}, got {} frames {}",
                        want.len(),
                        show(&want),
                        seen.len(),
                        show(seen)
                    )
                })
            }
        })
        .collect()
}

/// A short rendering of a list of tags: `D0 D1 … D99`.
fn show(tags: &[(u8, u64)]) -> String {
    let one = |(kind, seq): &(u8, u64)| format!("{}{seq}", char::from(*kind));
    if tags.len() <= 8 {
        return tags.iter().map(one).collect::<Vec<_>>().join(" ");
    }
    let head: Vec<String> = tags.iter().take(4).map(one).collect();
    let tail: Vec<String> = tags.iter().skip(tags.len() - 2).map(one).collect();
    format!("{} … {}", head.join(" "), tail.join(" "))
}

fn report(failures: Vec<String>, what: &str) -> CheckResult {
    if failures.is_empty() {
        return Ok(Outcome::Passed);
    }
    let shown: Vec<&str> = failures.iter().map(String::as_str).collect();
    Err(format!(
        "{} subscriber(s) {what}: {}",
        failures.len(),
        summarize(&shown)
    ))
}

/// 5. A hundred subscribers each receive all of a hundred numbered frames,
///    in order.
pub async fn publish_reaches_every_subscriber_in_order(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let server = t
        .bind_publisher(h.server_options(loopback()))
        .await
        .map_err(ctx("bind publisher"))?;
    let mut crowd = Crowd::new();
    for i in 0..SUBSCRIBERS {
        let name = format!("minion-{i}");
        let sub = t
            .subscribe(h.client_options(server.local_addr(), &name))
            .await
            .map_err(ctx("subscribe"))?;
        crowd.add(name, sub);
    }
    crowd.wait_connected().await?;
    crowd.warm_up(&*server).await?;
    for seq in 0..NUMBERED {
        server
            .publish(tagged(DATA, seq, 64), &Audience::All)
            .await
            .map_err(ctx("publish"))?;
    }
    let results = crowd.finish(&*server).await?;
    server.close().await.map_err(ctx("close publisher"))?;
    let all: Vec<(u8, u64)> = (0..NUMBERED).map(|seq| (DATA, seq)).collect();
    report(
        mismatches(&results, |_| all.clone()),
        "did not get every frame in order",
    )
}

/// 6. A publish to `Minions([m1, m3])` reaches m1 and m3 only.
pub async fn targeted_publish_reaches_only_listed_minions(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    if !t.capabilities().targeted_publish {
        return Ok(Outcome::Skipped(
            "the backend does not claim targeted_publish (it sends to everyone)".to_owned(),
        ));
    }
    let server = t
        .bind_publisher(h.server_options(loopback()))
        .await
        .map_err(ctx("bind publisher"))?;
    let mut crowd = Crowd::new();
    for name in ["m1", "m2", "m3", "m4"] {
        let sub = t
            .subscribe(h.client_options(server.local_addr(), name))
            .await
            .map_err(ctx("subscribe"))?;
        crowd.add(name, sub);
    }
    crowd.wait_connected().await?;
    crowd.warm_up(&*server).await?;
    server
        .publish(
            tagged(DATA, 1, 64),
            &Audience::Minions(vec!["m1".to_owned(), "m3".to_owned()]),
        )
        .await
        .map_err(ctx("targeted publish"))?;
    let results = crowd.finish(&*server).await?;
    server.close().await.map_err(ctx("close publisher"))?;
    report(
        mismatches(&results, |name| match name {
            "m1" | "m3" => vec![(DATA, 1)],
            _ => Vec::new(),
        }),
        "got the wrong frames for Minions([m1, m3])",
    )
}

/// 7. A subscriber that connects after a publish never receives it.
pub async fn late_subscriber_misses_earlier_publish(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let server = t
        .bind_publisher(h.server_options(loopback()))
        .await
        .map_err(ctx("bind publisher"))?;
    let mut crowd = Crowd::new();
    let early = t
        .subscribe(h.client_options(server.local_addr(), "early"))
        .await
        .map_err(ctx("subscribe early"))?;
    crowd.add("early", early);
    crowd.wait_connected().await?;
    crowd.warm_up(&*server).await?;
    // X: seen by the early subscriber, so it really went out.
    server
        .publish(tagged(DATA, 0, 64), &Audience::All)
        .await
        .map_err(ctx("publish X"))?;
    let late = t
        .subscribe(h.client_options(server.local_addr(), "late"))
        .await
        .map_err(ctx("subscribe late"))?;
    crowd.add("late", late);
    crowd.wait_connected().await?;
    crowd.warm_up(&*server).await?;
    server
        .publish(tagged(DATA, 1, 64), &Audience::All)
        .await
        .map_err(ctx("publish Y"))?;
    let results = crowd.finish(&*server).await?;
    server.close().await.map_err(ctx("close publisher"))?;
    report(
        mismatches(&results, |name| match name {
            "early" => vec![(DATA, 0), (DATA, 1)],
            _ => vec![(DATA, 1)],
        }),
        "saw the wrong frames (the late one must miss X = D0)",
    )
}

const SLOW_QUEUE: usize = 16;
const SLOW_FRAMES: u64 = 500;
const SLOW_FRAME_SIZE: usize = 256 * 1024;
/// Frames the healthy subscriber may be behind before the check waits for it.
const WINDOW: u64 = 8;
/// A `publish` call slower than this is taken as blocked on the slow peer.
const PUBLISH_HANG: Duration = Duration::from_secs(2);

/// 11. A subscriber that never reads does not delay a healthy one: with
///     queues of 16, the healthy subscriber gets all 500 frames of 256 KiB
///     in order and no `publish` blocks. Dropping the stalled subscriber is
///     the backend's policy: how it was cut off is logged, not asserted.
pub async fn slow_subscriber_is_dropped_others_unaffected(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let mut server_opts = h.server_options(loopback());
    server_opts.limits.queue_depth = SLOW_QUEUE;
    let server = t
        .bind_publisher(server_opts)
        .await
        .map_err(ctx("bind publisher"))?;
    let mut opts = h.client_options(server.local_addr(), "slow");
    opts.limits.queue_depth = SLOW_QUEUE;
    let slow = t.subscribe(opts).await.map_err(ctx("subscribe slow"))?;
    wait_connected(&*slow, "slow subscriber").await?;
    warm_up_one(&*server, &*slow, "slow subscriber").await?;

    let mut opts = h.client_options(server.local_addr(), "healthy");
    opts.limits.queue_depth = SLOW_QUEUE;
    let healthy = t.subscribe(opts).await.map_err(ctx("subscribe healthy"))?;
    wait_connected(&*healthy, "healthy subscriber").await?;
    // The slow subscriber stops reading from here on.
    warm_up_one(&*server, &*healthy, "healthy subscriber").await?;

    let (progress_tx, mut progress) = watch::channel(0u64);
    let reader = tokio::spawn(async move {
        let result = read_all(&*healthy, &progress_tx).await;
        let _ = healthy.close().await;
        result
    });
    let mut slowest = Duration::ZERO;
    for seq in 0..SLOW_FRAMES {
        // Pace by the healthy subscriber so that it never needs more than
        // WINDOW frames of queue.
        let wanted = seq.saturating_sub(WINDOW);
        let waited = tokio::time::timeout(PATIENCE, async {
            progress.wait_for(|&done| done >= wanted).await.map(drop)
        })
        .await;
        if !matches!(waited, Ok(Ok(_))) {
            break; // The reader ended or stalled; its result says why.
        }
        let started = Instant::now();
        let published = tokio::time::timeout(
            PUBLISH_HANG,
            server.publish(tagged(DATA, seq, SLOW_FRAME_SIZE), &Audience::All),
        )
        .await;
        match published {
            Ok(Ok(())) => slowest = slowest.max(started.elapsed()),
            Ok(Err(err)) => return Err(format!("publish of frame {seq} failed: {err}")),
            Err(_) => {
                return Err(format!(
                    "publish of frame {seq} blocked for over {PUBLISH_HANG:?} \
                     (a stalled subscriber must not hold up publish)"
                ));
            }
        }
    }
    let healthy_result = reader
        .await
        .map_err(|err| format!("healthy reader task failed: {err}"))?;
    healthy_result.map_err(|why| format!("healthy subscriber: {why}"))?;
    tracing::debug!(?slowest, "slowest publish call");

    let cut_off = slow_was_cut_off(&*slow).await?;
    tracing::debug!(how = %cut_off, "what became of the stalled subscriber");
    slow.close().await.map_err(ctx("close slow subscriber"))?;
    server.close().await.map_err(ctx("close publisher"))?;
    Ok(Outcome::Passed)
}

/// Reads frames 0..SLOW_FRAMES in order, publishing progress.
async fn read_all(sub: &dyn PublishClient, progress: &watch::Sender<u64>) -> Result<(), String> {
    let mut next = 0;
    while next < SLOW_FRAMES {
        let received = tokio::time::timeout(PATIENCE, sub.recv())
            .await
            .map_err(|_| format!("frame {next} not received within {PATIENCE:?}"))?
            .map_err(|err| format!("recv failed at frame {next}: {err}"))?;
        match received {
            Received::Frame(frame) => match parse_tagged(&frame) {
                Some((DATA, seq)) if seq == next => {
                    next += 1;
                    progress.send_replace(next);
                }
                Some((DATA, seq)) => {
                    return Err(format!("expected frame {next}, got frame {seq}"));
                }
                Some(_) => {}
                None => return Err(format!("frame {next} arrived damaged")),
            },
            other => return Err(format!("{other:?} after {next} frames")),
        }
    }
    Ok(())
}

/// How long the stalled subscriber may stay silent while it is drained.
const DRAIN_SILENCE: Duration = Duration::from_secs(2);

/// Drains the stalled subscriber and says how it was cut off: dropped
/// (`Disconnected`), or frames lost (a gap, or silence before the last).
/// What a backend does with a stalled subscriber is its policy, so this
/// fails only on damaged frames; a subscriber that still got everything is
/// logged as a warning (something buffered 125 MiB for a peer that did not
/// read).
async fn slow_was_cut_off(slow: &dyn PublishClient) -> Result<String, String> {
    let mut next = 0;
    loop {
        let received = match tokio::time::timeout(DRAIN_SILENCE, slow.recv()).await {
            Ok(Ok(received)) => received,
            Ok(Err(err)) => return Err(format!("stalled subscriber: recv failed: {err}")),
            Err(_) => return Ok(format!("frames from {next} on never arrived")),
        };
        match received {
            Received::Disconnected { reason } => {
                return Ok(format!("disconnected after {next} frames: {reason}"));
            }
            Received::Connected => return Ok(format!("reconnected after {next} frames")),
            Received::Frame(frame) => match parse_tagged(&frame) {
                Some((DATA, seq)) if seq == next => next += 1,
                Some((DATA, seq)) => return Ok(format!("frames {next}..{seq} dropped")),
                Some(_) => {}
                None => return Err("stalled subscriber: a frame arrived damaged".to_owned()),
            },
        }
        if next == SLOW_FRAMES {
            tracing::warn!(
                frames = SLOW_FRAMES,
                frame_size = SLOW_FRAME_SIZE,
                queue_depth = SLOW_QUEUE,
                "a subscriber that did not read still got every frame: the backend buffered \
                 them all for it instead of dropping it"
            );
            return Ok("never cut off".to_owned());
        }
    }
}
