//! What goes over the wire, and the pieces both channels share: URLs,
//! WebSocket limits, connecting, and server tasks that `close` can await.
//!
//! - Request channel (`ws://<addr>/requests`): a request is a binary
//!   message `id: u64 BE | frame`; its reply is `id: u64 BE | status: u8 |
//!   frame`, status 0 for a reply and 1 when the reply was over the
//!   server's limit (then the frame is `length: u64 BE | limit: u64 BE` and
//!   the client reports `FrameTooLarge`). Many requests
//!   are in flight on one connection; ids match replies to them.
//! - Publish channel (`ws://<addr>/publish`): the subscriber's first
//!   message is a binary hello carrying its identity; the server answers
//!   with the text message `welcome` once the subscription is live, then
//!   sends every published frame as one binary message.

use std::{net::SocketAddr, sync::Mutex, time::Duration};

use brine_transport_api::TransportError;
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config, tungstenite::protocol::WebSocketConfig,
};

use crate::error::map_ws;

/// Bytes of the request id before a request or reply frame.
pub(crate) const ID_LEN: usize = 8;
/// Reply status: the frame is the handler's reply.
pub(crate) const STATUS_OK: u8 = 0;
/// Reply status: the handler's reply was over the server's frame limit.
pub(crate) const STATUS_TOO_LARGE: u8 = 1;
/// Longest identity a subscriber may announce.
pub(crate) const MAX_HELLO: usize = 1024;
/// The server's answer once a subscription is live.
pub(crate) const WELCOME: &str = "welcome";
/// How long a peer may take over the WebSocket handshake (and hello).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket limits for messages of at most `max` bytes; the library checks
/// the announced length before allocating.
pub(crate) fn ws_config(max: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Opens a WebSocket to `ws://<addr><path>` within `within`.
///
/// # Errors
/// Connection errors mapped to [`TransportError`]; `Timeout` after `within`.
pub(crate) async fn connect(
    addr: SocketAddr,
    path: &str,
    max: usize,
    within: Duration,
) -> Result<WebSocketStream<TcpStream>, TransportError> {
    let peer = addr.to_string();
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|err| TransportError::from_io(&peer, err))?;
        stream
            .set_nodelay(true)
            .map_err(|err| TransportError::from_io(&peer, err))?;
        let (ws, _response) =
            client_async_with_config(format!("ws://{addr}{path}"), stream, Some(ws_config(max)))
                .await
                .map_err(|err| map_ws(&peer, err))?;
        Ok(ws)
    };
    tokio::time::timeout(within, attempt)
        .await
        .map_err(|_| TransportError::Timeout {
            peer: peer.clone(),
            after: within,
        })?
}

/// A server's accept task: `close` asks it to stop and waits until it and
/// every connection task it owns have ended; drop aborts it.
#[derive(Debug)]
pub(crate) struct ServerTask {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ServerTask {
    pub(crate) fn new(stop: oneshot::Sender<()>, task: JoinHandle<()>) -> Self {
        Self {
            stop: Mutex::new(Some(stop)),
            task: Mutex::new(Some(task)),
        }
    }

    /// Stops the task and waits for it.
    pub(crate) async fn stop(&self) {
        if let Some(stop) = take(&self.stop) {
            // The task may have ended already; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Some(task) = take(&self.task) {
            // A panic in the task was logged by tokio; it has ended either way.
            let _ = task.await;
        }
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        if let Some(task) = take(&self.task) {
            task.abort();
        }
    }
}

/// A client's background task, aborted on `close` and on drop.
#[derive(Debug)]
pub(crate) struct ClientTask(Mutex<Option<JoinHandle<()>>>);

impl ClientTask {
    pub(crate) fn new(task: JoinHandle<()>) -> Self {
        Self(Mutex::new(Some(task)))
    }

    /// Aborts the task and waits until it has ended.
    pub(crate) async fn stop(&self) {
        if let Some(task) = take(&self.0) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for ClientTask {
    fn drop(&mut self) {
        if let Some(task) = take(&self.0) {
            task.abort();
        }
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}
