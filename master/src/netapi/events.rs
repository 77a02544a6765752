//! Live events: every event of the master's bus, as Server-Sent Events
//! (`GET /events`, salt-api's format) or WebSocket text messages
//! (`GET /ws`, one JSON object `{"tag", "data"}` per message).
//!
//! Each client gets its own subscription and a queue of
//! [`CLIENT_QUEUE`] events. Events are moved from the bus into that queue
//! without waiting; a client whose queue is full (it reads slower than
//! events arrive) or whose bus subscription lagged is dropped with a
//! logged reason, and no other client or the bus ever waits for it. A
//! WebSocket send that takes longer than [`SEND_TIMEOUT`] drops the client
//! too. The login is checked again before every event: the stream ends
//! when it expires or the API shuts down.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use brine_protocol::Value;
use brine_transport_api::{Event, TransportError};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::api::Api;
use super::auth::TokenData;
use super::json;

/// Events queued per client before it counts as too slow.
pub(crate) const CLIENT_QUEUE: usize = 1024;
/// Longest a WebSocket send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// `{"tag": tag, "data": data}` of an event, as JSON.
fn event_json(event: &Event) -> String {
    let data = crate::events::decode_event_data(event)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&event.data).into_owned()));
    let wrapped: Value = [("tag", Value::from(event.tag.as_str())), ("data", data)]
        .into_iter()
        .collect();
    json::to_string(&wrapped)
}

/// Starts moving bus events into a bounded queue for one client; the
/// queue closes when the client is dropped, its login expires, or the API
/// stops.
fn pump(api: &Arc<Api>, token: Arc<TokenData>, kind: &'static str) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let mut subscription = api.bus.subscribe("");
    let api = Arc::clone(api);
    let mut stop = api.stop.clone();
    api.stats.event_clients.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let reason = loop {
            let next = tokio::select! {
                next = subscription.next() => next,
                _ = stop.changed() => break "the API is shutting down",
                () = tx.closed() => break "the client went away",
            };
            let event = match next {
                Ok(event) => event,
                Err(TransportError::Lagged { .. }) => {
                    api.stats
                        .event_clients_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(kind, user = %token.name, "dropped a slow event client: it fell behind the event bus");
                    break "lagged";
                }
                Err(_) => break "the event bus closed",
            };
            if api.logins.by_token(&token.token).is_none() {
                break "its login expired";
            }
            match tx.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    api.stats
                        .event_clients_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(
                        kind,
                        user = %token.name,
                        queue = CLIENT_QUEUE,
                        "dropped a slow event client: its queue is full"
                    );
                    break "too slow";
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break "the client went away",
            }
        };
        api.stats.event_clients.fetch_sub(1, Ordering::Relaxed);
        debug!(kind, user = %token.name, reason, "event stream ended");
    });
    rx
}

/// `GET /events`: `retry: 400`, then `tag: …` / `data: …` blocks.
pub(crate) fn sse(api: &Arc<Api>, token: Arc<TokenData>) -> Response {
    info!(user = %token.name, "event stream (SSE) opened");
    let rx = pump(api, token, "sse");
    let first = futures_util::stream::once(async {
        Ok::<_, std::convert::Infallible>(Bytes::from_static(b"retry: 400\n"))
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let block = format!("tag: {}\ndata: {}\n\n", event.tag, event_json(&event));
        Some((Ok(Bytes::from(block)), rx))
    });
    let mut response = Response::new(Body::from_stream(first.chain(events)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream;charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// `GET /ws`: the same events, one JSON text message each. Messages from
/// the client are read (and ignored) so pings and close frames work.
pub(crate) async fn websocket(api: Arc<Api>, token: Arc<TokenData>, socket: WebSocket) {
    info!(user = %token.name, "event stream (WebSocket) opened");
    let user = token.name.clone();
    let mut rx = pump(&api, token, "websocket");
    let (mut sink, mut incoming) = socket.split();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
        let _ = done_tx.send(());
    });
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                let text = event_json(&event);
                match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        api.stats.event_clients_dropped.fetch_add(1, Ordering::Relaxed);
                        warn!(user = %user, "dropped a slow WebSocket client: a send timed out");
                        break;
                    }
                }
            }
            _ = &mut done_rx => break,
        }
    }
    reader.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    debug!(user = %user, "WebSocket closed");
}
