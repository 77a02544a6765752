//! The request channel: replies match requests, one client or many.

use std::sync::Arc;

use brine_transport_api::{RequestClient, RequestHandler, handler_fn};
use bytes::Bytes;
use tokio::task::JoinSet;

use super::support::{REQUEST_TIMEOUT, ctx, loopback, summarize};
use crate::{CheckResult, Harness, Outcome};

/// A handler replying `re:` followed by the request.
pub(crate) fn echo_handler() -> Arc<dyn RequestHandler> {
    handler_fn(|frame: Bytes, _| async move {
        let mut reply = Vec::with_capacity(3 + frame.len());
        reply.extend_from_slice(b"re:");
        reply.extend_from_slice(&frame);
        Bytes::from(reply)
    })
}

/// Sends `frame` and checks the reply is [`echo_handler`]'s answer to it.
pub(crate) async fn echo_once(client: &dyn RequestClient, frame: &[u8]) -> Result<(), String> {
    let reply = client
        .request(Bytes::copy_from_slice(frame), REQUEST_TIMEOUT)
        .await
        .map_err(ctx("request"))?;
    match reply.strip_prefix(b"re:") {
        Some(echoed) if echoed == frame => Ok(()),
        _ => Err(format!(
            "request {:?} got the wrong reply {:?}",
            String::from_utf8_lossy(frame),
            String::from_utf8_lossy(&reply[..reply.len().min(64)])
        )),
    }
}

/// 1. One request gets its own reply back.
pub async fn request_reply_roundtrip(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let server = t
        .bind_requests(h.server_options(loopback()), echo_handler())
        .await
        .map_err(ctx("bind request server"))?;
    let client = t
        .connect_requests(h.client_options(server.local_addr(), "minion-1"))
        .await
        .map_err(ctx("connect request client"))?;
    echo_once(&*client, b"ping").await?;
    client.close().await.map_err(ctx("close client"))?;
    server.close().await.map_err(ctx("close server"))?;
    Ok(Outcome::Passed)
}

const CLIENTS: usize = 10;
const REQUESTS_PER_CLIENT: usize = 100;

/// 2. Ten clients with a hundred requests in flight each: every one of the
///    1,000 requests gets its own reply, none another's.
pub async fn concurrent_requests_from_many_clients(h: &dyn Harness) -> CheckResult {
    let t = h.transport();
    let server = t
        .bind_requests(h.server_options(loopback()), echo_handler())
        .await
        .map_err(ctx("bind request server"))?;
    let mut clients = Vec::with_capacity(CLIENTS);
    for c in 0..CLIENTS {
        let client = t
            .connect_requests(h.client_options(server.local_addr(), &format!("minion-{c}")))
            .await
            .map_err(ctx("connect request client"))?;
        clients.push(Arc::<dyn RequestClient>::from(client));
    }
    let mut requests = JoinSet::new();
    for (c, client) in clients.iter().enumerate() {
        for r in 0..REQUESTS_PER_CLIENT {
            let client = client.clone();
            requests.spawn(async move {
                let frame = format!("client {c} request {r}");
                echo_once(&*client, frame.as_bytes())
                    .await
                    .map_err(|why| format!("client {c} request {r}: {why}"))
            });
        }
    }
    let mut failures = Vec::new();
    while let Some(joined) = requests.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(why)) => failures.push(why),
            Err(err) => failures.push(format!("request task failed: {err}")),
        }
    }
    for client in &clients {
        client.close().await.map_err(ctx("close client"))?;
    }
    server.close().await.map_err(ctx("close server"))?;
    if failures.is_empty() {
        Ok(Outcome::Passed)
    } else {
        let shown: Vec<&str> = failures.iter().map(String::as_str).collect();
        Err(format!(
            "{} of {} requests failed: {}",
            failures.len(),
            CLIENTS * REQUESTS_PER_CLIENT,
            summarize(&shown)
        ))
    }
}
