//! Servers going away and coming back, and what `close` leaves behind.

use std::{net::SocketAddr, time::Duration};

use brine_transport_api::{
    Audience, Backoff, ClientOptions, PublishClient, PublishServer, Received, RequestClient,
    RequestServer, Transport, TransportError,
};
use bytes::Bytes;
use tokio::time::Instant;

use super::request::{echo_handler, echo_once};
use super::support::{
    DATA, PATIENCE, ctx, loopback, next_frame, tagged, wait_connected, warm_up_one,
};
use crate::{CheckResult, Harness, Outcome};

/// The timeout of requests to a dead server.
const DEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// Longer than this means the request ignored its timeout (a hang, not a
/// performance figure).
const DEAD_HANG: Duration = Duration::from_secs(5);

/// Client options that retry quickly, so reconnect checks stay short.
fn quick(h: &dyn Harness, connect: SocketAddr, identity: &str) -> ClientOptions {
    let mut opts = h.client_options(connect, identity);
    opts.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    opts
}

/// A request that must fail with a typed connection error within its timeout.
async fn fails_in_time(client: &dyn RequestClient, who: &str) -> Result<(), String> {
    let started = Instant::now();
    let result = tokio::time::timeout(
        DEAD_HANG,
        client.request(Bytes::from_static(b"anyone?"), DEAD_TIMEOUT),
    )
    .await;
    let took = started.elapsed();
    match result {
        Err(_) => Err(format!(
            "{who}: a request with a {DEAD_TIMEOUT:?} timeout to a dead server had not \
             returned after {DEAD_HANG:?}"
        )),
        Ok(Ok(_)) => Err(format!("{who}: a dead server answered")),
        Ok(Err(
            TransportError::Timeout { .. }
            | TransportError::ConnectionRefused { .. }
            | TransportError::ConnectionLost { .. },
        )) => Ok(()),
        Ok(Err(err)) => Err(format!(
            "{who}: expected Timeout, ConnectionRefused or ConnectionLost from a dead server, \
             got {err:?} after {took:?}"
        )),
    }
}

/// 8. A request to a server that is gone fails with a typed error within
///    its timeout, from a client that knew the server and from a new one.
pub async fn request_to_dead_server_fails_in_time(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let server = t
        .bind_requests(h.server_options(loopback()), echo_handler())
        .await
        .map_err(ctx("bind request server"))?;
    let addr = server.local_addr();
    let known = t
        .connect_requests(h.client_options(addr, "minion-known"))
        .await
        .map_err(ctx("connect request client"))?;
    echo_once(&*known, b"alive?").await?;
    server.close().await.map_err(ctx("close server"))?;
    drop(server);
    fails_in_time(&*known, "client connected before the server died").await?;
    let fresh = t
        .connect_requests(h.client_options(addr, "minion-fresh"))
        .await
        .map_err(ctx("connect request client to a dead address"))?;
    fails_in_time(&*fresh, "client created after the server died").await?;
    known.close().await.map_err(ctx("close client"))?;
    fresh.close().await.map_err(ctx("close client"))?;
    Ok(Outcome::Passed)
}

/// Binds again on `at`, retrying briefly in case the old socket lingers.
async fn rebind<T, F, Fut>(at: SocketAddr, bind: F) -> Result<T, String>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<T, TransportError>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match bind(at).await {
            Ok(bound) => return Ok(bound),
            Err(err) if Instant::now() < deadline => {
                tracing::debug!(error = %err, %at, "rebind failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => return Err(format!("cannot bind {at} again: {err}")),
        }
    }
}

/// A successful echo from `client`, retrying with short timeouts while the
/// client reconnects.
async fn echo_eventually(client: &dyn RequestClient) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client
            .request(Bytes::from_static(b"back?"), Duration::from_secs(1))
            .await
        {
            Ok(reply) if &reply[..] == b"re:back?" => return Ok(()),
            Ok(reply) => return Err(format!("wrong reply after restart: {reply:?}")),
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "the request client did not get through within {PATIENCE:?} of the server's restart \
         (last error: {last})"
    ))
}

/// Waits for `Disconnected` and then `Connected` from `sub`.
async fn wait_reconnected(sub: &dyn PublishClient) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    let mut disconnected = false;
    loop {
        match tokio::time::timeout_at(deadline, sub.recv()).await {
            Ok(Ok(Received::Disconnected { .. })) => disconnected = true,
            Ok(Ok(Received::Connected)) if disconnected => return Ok(()),
            Ok(Ok(Received::Connected)) => {
                return Err("subscriber reported Connected without Disconnected first".into());
            }
            Ok(Ok(Received::Frame(_))) => {}
            Ok(Err(err)) => return Err(format!("subscriber recv failed: {err}")),
            Err(_) if disconnected => {
                return Err(format!(
                    "subscriber did not reconnect within {PATIENCE:?} of the restart"
                ));
            }
            Err(_) => {
                return Err(format!(
                    "subscriber did not report Disconnected within {PATIENCE:?} of the \
                     server closing"
                ));
            }
        }
    }
}

/// 9. After both servers close and are bound again on the same addresses,
///    the same request client and subscriber work again by themselves.
pub async fn clients_reconnect_after_server_restart(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let requests = t
        .bind_requests(h.server_options(loopback()), echo_handler())
        .await
        .map_err(ctx("bind request server"))?;
    let publisher = t
        .bind_publisher(h.server_options(loopback()))
        .await
        .map_err(ctx("bind publisher"))?;
    let (req_addr, pub_addr) = (requests.local_addr(), publisher.local_addr());
    let client = t
        .connect_requests(quick(h, req_addr, "minion-r"))
        .await
        .map_err(ctx("connect request client"))?;
    let sub = t
        .subscribe(quick(h, pub_addr, "minion-r"))
        .await
        .map_err(ctx("subscribe"))?;
    echo_once(&*client, b"first life").await?;
    wait_connected(&*sub, "subscriber").await?;
    warm_up_one(&*publisher, &*sub, "subscriber").await?;

    requests
        .close()
        .await
        .map_err(ctx("close request server"))?;
    publisher.close().await.map_err(ctx("close publisher"))?;
    drop((requests, publisher));

    let requests = rebind(req_addr, |at| {
        t.bind_requests(h.server_options(at), echo_handler())
    })
    .await?;
    let publisher = rebind(pub_addr, |at| t.bind_publisher(h.server_options(at))).await?;

    echo_eventually(&*client).await?;
    wait_reconnected(&*sub).await?;
    warm_up_one(&*publisher, &*sub, "subscriber after restart").await?;
    let frame = tagged(DATA, 7, 32);
    publisher
        .publish(frame.clone(), &Audience::All)
        .await
        .map_err(ctx("publish after restart"))?;
    let got = next_frame(&*sub, "subscriber after restart").await?;
    if got != frame {
        return Err("the frame published after the restart arrived damaged".to_owned());
    }
    client.close().await.map_err(ctx("close client"))?;
    sub.close().await.map_err(ctx("close subscriber"))?;
    requests
        .close()
        .await
        .map_err(ctx("close request server"))?;
    publisher.close().await.map_err(ctx("close publisher"))?;
    Ok(Outcome::Passed)
}

/// How long tasks may take to wind down after the ends are closed.
const WIND_DOWN: Duration = Duration::from_secs(10);

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// The alive task count once it stops changing (tasks of earlier checks in
/// the same runtime, as under [`run_all`](crate::run_all), may still be
/// winding down), sampled for at most a couple of seconds.
async fn settled_task_count() -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut last = alive_tasks();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = alive_tasks();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// Waits until at most `baseline` tasks are alive.
async fn tasks_back_to(baseline: usize, after: &str) -> Result<(), String> {
    let deadline = Instant::now() + WIND_DOWN;
    loop {
        let alive = alive_tasks();
        if alive <= baseline {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{after}: {alive} tasks still alive after {WIND_DOWN:?}, {} more than the {baseline} \
                 before the check",
                alive - baseline
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Ends = (
    Box<dyn RequestServer>,
    Box<dyn PublishServer>,
    Box<dyn RequestClient>,
    Box<dyn PublishClient>,
);

/// Binds both servers at the given addresses, connects a client and a
/// subscriber, and sends a request and a published frame through them.
async fn with_traffic(
    h: &dyn Harness,
    t: &dyn Transport,
    req_at: SocketAddr,
    pub_at: SocketAddr,
) -> Result<Ends, String> {
    let requests = t
        .bind_requests(h.server_options(req_at), echo_handler())
        .await
        .map_err(|err| format!("bind request server at {req_at}: {err}"))?;
    let publisher = t
        .bind_publisher(h.server_options(pub_at))
        .await
        .map_err(|err| format!("bind publisher at {pub_at}: {err}"))?;
    let client = t
        .connect_requests(h.client_options(requests.local_addr(), "minion-s"))
        .await
        .map_err(ctx("connect request client"))?;
    let sub = t
        .subscribe(h.client_options(publisher.local_addr(), "minion-s"))
        .await
        .map_err(ctx("subscribe"))?;
    echo_once(&*client, b"traffic").await?;
    wait_connected(&*sub, "subscriber").await?;
    warm_up_one(&*publisher, &*sub, "subscriber").await?;
    publisher
        .publish(tagged(DATA, 1, 32), &Audience::All)
        .await
        .map_err(ctx("publish"))?;
    next_frame(&*sub, "subscriber").await?;
    Ok((requests, publisher, client, sub))
}

/// 14. `close` ends every task the ends started and releases the ports:
///     the task count returns to where it was and the same addresses can be
///     bound again at once. Dropping the ends without `close` ends their
///     tasks too.
pub async fn clean_shutdown_releases_ports_and_tasks(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let baseline = settled_task_count().await;

    let (requests, publisher, client, sub) = with_traffic(h, &*t, loopback(), loopback()).await?;
    let (req_addr, pub_addr) = (requests.local_addr(), publisher.local_addr());
    client.close().await.map_err(ctx("close client"))?;
    sub.close().await.map_err(ctx("close subscriber"))?;
    requests
        .close()
        .await
        .map_err(ctx("close request server"))?;
    publisher.close().await.map_err(ctx("close publisher"))?;
    drop((requests, publisher, client, sub));
    tasks_back_to(baseline, "after close").await?;

    // The ports are free at once: bound again on the first try.
    let (requests, publisher, client, sub) = with_traffic(h, &*t, req_addr, pub_addr)
        .await
        .map_err(|why| format!("after close, the old addresses: {why}"))?;
    drop((client, sub));
    drop((requests, publisher));
    tasks_back_to(baseline, "after dropping the ends without close").await?;
    Ok(Outcome::Passed)
}
