//! The event bus: prefix subscriptions in process and over IPC.

use brine_transport_api::{Event, EventBusOptions, EventSubscription};
use tokio::{sync::watch, time::Instant};

use super::support::{PATIENCE, ctx, pattern};
use crate::{CheckResult, Harness, Outcome};

/// The next event, or a failure naming `who`.
async fn next_event(sub: &mut dyn EventSubscription, who: &str) -> Result<Event, String> {
    match tokio::time::timeout(PATIENCE, sub.next()).await {
        Ok(Ok(event)) => Ok(event),
        Ok(Err(err)) => Err(format!("{who}: next failed: {err}")),
        Err(_) => Err(format!("{who}: no event within {PATIENCE:?}")),
    }
}

fn temp_dir() -> Result<tempfile::TempDir, String> {
    tempfile::tempdir().map_err(ctx("create a temporary sock_dir"))
}

/// 12. In-process subscribers get exactly the events whose tags start with
///     their prefix (`""` gets everything), in order, and none fired
///     before they subscribed.
pub async fn event_bus_prefix_subscriptions(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let dir = temp_dir()?;
    let bus = t
        .bind_event_bus(EventBusOptions::new(dir.path(), "master"))
        .await
        .map_err(ctx("bind event bus"))?;
    bus.fire(Event::new("salt/job/0/early", "before anyone subscribed"))
        .map_err(ctx("fire"))?;
    let prefixes = ["salt/job/", "salt/auth", ""];
    let mut subs: Vec<_> = prefixes.iter().map(|p| (*p, bus.subscribe(p))).collect();
    let events: Vec<Event> = [
        "salt/job/1/new",
        "salt/auth",
        "salt/minion/m1/start",
        "salt/job/1/ret/m1",
        "salt/authz",
        "salt/jobs",
        "other/thing",
        "salt/job/end",
        "salt/auth/end",
        "zz/end",
    ]
    .iter()
    .enumerate()
    .map(|(i, tag)| Event::new(*tag, pattern(i * 10, i as u64)))
    .collect();
    for event in &events {
        bus.fire(event.clone()).map_err(ctx("fire"))?;
    }
    for (prefix, sub) in &mut subs {
        let expected: Vec<&Event> = events
            .iter()
            .filter(|e| e.tag.starts_with(*prefix))
            .collect();
        let who = format!("subscriber to {prefix:?}");
        for want in expected {
            let got = next_event(&mut **sub, &who).await?;
            if &got != want {
                return Err(format!(
                    "{who}: expected {:?}, got {:?} ({} data bytes)",
                    want.tag,
                    got.tag,
                    got.data.len()
                ));
            }
        }
    }
    bus.close().await.map_err(ctx("close event bus"))?;
    Ok(Outcome::Passed)
}

const PACED_EVENTS: u64 = 500;
const PACED_WINDOW: u64 = 16;

/// 13. The IPC side (a local tool): events it fires are seen in process,
///     events fired in process reach its subscriptions, and one of its
///     subscriptions that never reads does not delay a healthy one.
pub async fn event_bus_ipc_from_another_process_side(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let dir = temp_dir()?;
    let mut opts = EventBusOptions::new(dir.path(), "master");
    opts.queue_depth = 64;
    let bus = t
        .bind_event_bus(opts.clone())
        .await
        .map_err(ctx("bind event bus"))?;
    let tool = t
        .connect_event_bus(opts.clone())
        .await
        .map_err(ctx("connect event bus client"))?;

    // Tool → daemon.
    let mut local = bus.subscribe("tool/");
    tool.fire(Event::new("tool/hello", "from the tool"))
        .await
        .map_err(ctx("fire over IPC"))?;
    let got = next_event(&mut *local, "in-process subscriber").await?;
    if got != Event::new("tool/hello", "from the tool") {
        return Err(format!("event fired over IPC arrived as {got:?}"));
    }

    // Daemon → tool.
    let mut remote = tool
        .subscribe("salt/")
        .await
        .map_err(ctx("subscribe over IPC"))?;
    bus.fire(Event::new("other/x", "not for the tool"))
        .map_err(ctx("fire"))?;
    bus.fire(Event::new("salt/x", "for the tool"))
        .map_err(ctx("fire"))?;
    let got = next_event(&mut *remote, "IPC subscriber").await?;
    if got != Event::new("salt/x", "for the tool") {
        return Err(format!("IPC subscriber to \"salt/\" got {got:?}"));
    }

    // A stalled IPC subscriber does not hold up a healthy one.
    let stalled = tool
        .subscribe("load/")
        .await
        .map_err(ctx("subscribe stalled over IPC"))?;
    let mut healthy = tool
        .subscribe("load/")
        .await
        .map_err(ctx("subscribe healthy over IPC"))?;
    let (progress_tx, mut progress) = watch::channel(0u64);
    let reader = tokio::spawn(async move {
        for seq in 0..PACED_EVENTS {
            let event = next_event(&mut *healthy, "healthy IPC subscriber").await?;
            if event.tag != format!("load/{seq}") {
                return Err(format!(
                    "healthy IPC subscriber: expected load/{seq}, got {}",
                    event.tag
                ));
            }
            progress_tx.send_replace(seq + 1);
        }
        Ok::<_, String>(())
    });
    let data = pattern(64 * 1024, 9);
    let started = Instant::now();
    for seq in 0..PACED_EVENTS {
        let wanted = seq.saturating_sub(PACED_WINDOW);
        let waited = tokio::time::timeout(PATIENCE, async {
            progress.wait_for(|&done| done >= wanted).await.map(drop)
        })
        .await;
        if !matches!(waited, Ok(Ok(_))) {
            break; // The reader's result says why.
        }
        bus.fire(Event::new(format!("load/{seq}"), data.clone()))
            .map_err(ctx("fire"))?;
    }
    reader
        .await
        .map_err(|err| format!("healthy reader task failed: {err}"))??;
    tracing::debug!(took = ?started.elapsed(), "healthy IPC subscriber got every event");
    drop(stalled);
    bus.close().await.map_err(ctx("close event bus"))?;
    Ok(Outcome::Passed)
}
