//! Frame sizes: every size up to the limit arrives intact, and one over the
//! limit is refused without harming the server.

use std::time::Duration;

use brine_transport_api::{Audience, RequestClient, RequestClientExt, TransportError, handler_fn};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::Instant;

use super::request::{echo_handler, echo_once};
use super::support::{
    PATIENCE, REQUEST_TIMEOUT, ctx, describe, fnv64, loopback, next_frame, pattern, wait_connected,
    warm_up_one,
};
use crate::{CheckResult, Harness, Outcome};

const MIB: usize = 1024 * 1024;

/// The sizes every channel must carry: empty, one byte, 1 MiB, 16 MiB.
const SIZES: [usize; 4] = [0, 1, MIB, 16 * MIB];

/// A reply to a checksum request: the length and FNV-1a of what arrived.
fn summary(frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(16);
    out.put_u64(frame.len() as u64);
    out.put_u64(fnv64(frame));
    out.freeze()
}

/// 3. Frames of 0 B, 1 B, 1 MiB and 16 MiB arrive intact as requests, as
///    replies and as published frames.
pub async fn frames_of_every_size_arrive_intact(h: &dyn Harness) -> CheckResult {
    let t = h.transport();

    // Requests: the server answers with the length and checksum it saw.
    let summing = t
        .bind_requests(
            h.server_options(loopback()),
            handler_fn(|frame: Bytes, _| async move { summary(&frame) }),
        )
        .await
        .map_err(ctx("bind checksum server"))?;
    // Replies: the server answers a big-endian u64 size with that many
    // pattern bytes.
    let generating = t
        .bind_requests(
            h.server_options(loopback()),
            handler_fn(|frame: Bytes, _| async move {
                let len = frame
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .and_then(|len| usize::try_from(len).ok())
                    .unwrap_or(0);
                pattern(len.min(16 * MIB), len as u64)
            }),
        )
        .await
        .map_err(ctx("bind generating server"))?;
    let to_summing = t
        .connect_requests(h.client_options(summing.local_addr(), "minion-sizes"))
        .await
        .map_err(ctx("connect request client"))?;
    let to_generating = t
        .connect_requests(h.client_options(generating.local_addr(), "minion-sizes"))
        .await
        .map_err(ctx("connect request client"))?;
    for size in SIZES {
        let frame = pattern(size, size as u64);
        let reply = to_summing
            .request(frame.clone(), REQUEST_TIMEOUT)
            .await
            .map_err(|err| format!("{size}-byte request: {err}"))?;
        if reply != summary(&frame) {
            return Err(format!(
                "{size}-byte request arrived damaged: sent {}, server reports {:?}",
                describe(&frame),
                &reply[..]
            ));
        }
        let reply = to_generating
            .request(
                Bytes::copy_from_slice(&(size as u64).to_be_bytes()),
                REQUEST_TIMEOUT,
            )
            .await
            .map_err(|err| format!("{size}-byte reply: {err}"))?;
        let expected = pattern(size, size as u64);
        if reply != expected {
            return Err(format!(
                "{size}-byte reply arrived damaged: expected {}, got {}",
                describe(&expected),
                describe(&reply)
            ));
        }
    }
    for client in [&to_summing, &to_generating] {
        client.close().await.map_err(ctx("close client"))?;
    }
    summing.close().await.map_err(ctx("close server"))?;
    generating.close().await.map_err(ctx("close server"))?;

    // Published frames.
    let publisher = t
        .bind_publisher(h.server_options(loopback()))
        .await
        .map_err(ctx("bind publisher"))?;
    let sub = t
        .subscribe(h.client_options(publisher.local_addr(), "minion-sizes"))
        .await
        .map_err(ctx("subscribe"))?;
    wait_connected(&*sub, "subscriber").await?;
    warm_up_one(&*publisher, &*sub, "subscriber").await?;
    for size in SIZES {
        publisher
            .publish(pattern(size, size as u64), &Audience::All)
            .await
            .map_err(|err| format!("publish {size} bytes: {err}"))?;
    }
    for size in SIZES {
        let expected = pattern(size, size as u64);
        let got = next_frame(&*sub, "subscriber").await?;
        if got != expected {
            return Err(format!(
                "published {size}-byte frame arrived damaged: expected {}, got {}",
                describe(&expected),
                describe(&got)
            ));
        }
    }
    sub.close().await.map_err(ctx("close subscriber"))?;
    publisher.close().await.map_err(ctx("close publisher"))?;
    Ok(Outcome::Passed)
}

/// The limit the oversize check gives its server.
const SERVER_MAX: usize = MIB;

/// 4. With a 1 MiB server limit: a client whose own limit is 1 MiB refuses a
///    2 MiB request itself; a client with a larger limit gets an error (a
///    typed `FrameTooLarge` where the backend reports it), not a hang; and
///    afterwards both those clients and a fresh one are served.
pub async fn oversized_frame_refused_and_server_keeps_serving(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let reports = t.capabilities().reports_oversized_requests;
    let mut server_opts = h.server_options(loopback());
    server_opts.limits.max_frame_size = SERVER_MAX;
    let server = t
        .bind_requests(server_opts, echo_handler())
        .await
        .map_err(ctx("bind request server"))?;
    let addr = server.local_addr();
    let oversized = pattern(2 * MIB, 2);

    // (a) The client's own limit refuses the frame before sending it.
    let mut opts = h.client_options(addr, "minion-limited");
    opts.limits.max_frame_size = SERVER_MAX;
    let limited = t
        .connect_requests(opts)
        .await
        .map_err(ctx("connect limited client"))?;
    match limited
        .request(oversized.clone(), Duration::from_secs(10))
        .await
    {
        Err(TransportError::FrameTooLarge { .. }) => {}
        Err(err) => {
            return Err(format!(
                "a client with a 1 MiB limit sending 2 MiB: expected FrameTooLarge, got: {err}"
            ));
        }
        Ok(_) => {
            return Err("a client with a 1 MiB limit sent 2 MiB and got a reply".to_owned());
        }
    }

    // (b) The server's limit refuses it.
    let mut opts = h.client_options(addr, "minion-generous");
    opts.limits.max_frame_size = 4 * MIB;
    let generous = t
        .connect_requests(opts)
        .await
        .map_err(ctx("connect generous client"))?;
    echo_once(&*generous, b"before").await?;
    let started = Instant::now();
    match generous
        .request(oversized.clone(), Duration::from_secs(10))
        .await
    {
        Err(TransportError::FrameTooLarge { .. }) => {}
        Err(err) if !reports => {
            tracing::debug!(error = %err, "oversized request refused (untyped, as the backend declares)");
        }
        Err(err) => {
            return Err(format!(
                "2 MiB request to a server with a 1 MiB limit: the backend reports oversized \
                 requests, so expected FrameTooLarge, got: {err} (after {:?})",
                started.elapsed()
            ));
        }
        Ok(_) => {
            return Err(
                "a server with a 1 MiB limit accepted and answered a 2 MiB request".to_owned(),
            );
        }
    }

    // (c) Everyone is still served: a fresh client, and both old ones (a
    // client whose connection the server dropped must reconnect by itself).
    let fresh = t
        .connect_requests(h.client_options(addr, "minion-fresh"))
        .await
        .map_err(ctx("connect fresh client"))?;
    echo_once(&*fresh, b"after, fresh client")
        .await
        .map_err(|why| format!("after the oversized frame: {why}"))?;
    for (who, client) in [("generous", &generous), ("limited", &limited)] {
        served_again(&**client)
            .await
            .map_err(|why| format!("after the oversized frame, the {who} client: {why}"))?;
    }
    for client in [&limited, &generous, &fresh] {
        client.close().await.map_err(ctx("close client"))?;
    }
    server.close().await.map_err(ctx("close server"))?;
    Ok(Outcome::Passed)
}

/// A normal request succeeds, retrying retryable errors for a while (the
/// client may be reconnecting).
async fn served_again(client: &dyn RequestClient) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client
            .request_with_tries(Bytes::from_static(b"again"), Duration::from_secs(2), 3)
            .await
        {
            Ok(reply) if &reply[..] == b"re:again" => return Ok(()),
            Ok(reply) => return Err(format!("wrong reply {reply:?}")),
            Err(err) if err.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => return Err(format!("request failed: {err}")),
        }
    }
}
