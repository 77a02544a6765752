//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use brine_transport_api::{
    Audience, ClientOptions, PublishClient, PublishServer, Received, RequestServer, ServerOptions,
    Transport, handler_fn,
};
use brine_transport_zeromq::{Config, ZmqTransport};
use bytes::Bytes;

/// How long a test waits for something that should happen quickly.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn transport(zmq_filtering: bool) -> Arc<dyn Transport> {
    Arc::new(ZmqTransport::new(Config { zmq_filtering }))
}

pub fn endpoint(addr: SocketAddr) -> String {
    format!("tcp://{addr}")
}

/// A request server answering `re:<request>`.
pub async fn echo_server(t: &dyn Transport, opts: ServerOptions) -> Box<dyn RequestServer> {
    t.bind_requests(
        opts,
        handler_fn(|frame: Bytes, _| async move {
            let mut reply = b"re:".to_vec();
            reply.extend_from_slice(&frame);
            Bytes::from(reply)
        }),
    )
    .await
    .unwrap()
}

pub async fn subscribe(t: &dyn Transport, addr: SocketAddr, id: &str) -> Box<dyn PublishClient> {
    let mut opts = ClientOptions::new(addr, id);
    opts.backoff.initial = Duration::from_millis(20);
    t.subscribe(opts).await.unwrap()
}

/// The next item from `sub`, failing the test after [`PATIENCE`].
pub async fn next(sub: &dyn PublishClient) -> Received {
    tokio::time::timeout(PATIENCE, sub.recv())
        .await
        .expect("subscriber got nothing in time")
        .expect("recv failed")
}

pub async fn expect_connected(sub: &dyn PublishClient) {
    assert_eq!(next(sub).await, Received::Connected);
}

/// Publishes `probe` to everyone until `sub` receives it (PUB/SUB drops
/// what is published right after a connect); returns what `sub` saw first.
pub async fn warm_up(server: &dyn PublishServer, sub: &dyn PublishClient, probe: &'static [u8]) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        server
            .publish(Bytes::from_static(probe), &Audience::All)
            .await
            .unwrap();
        if let Ok(received) = tokio::time::timeout(Duration::from_millis(50), sub.recv()).await {
            match received.unwrap() {
                Received::Frame(frame) if frame == probe => return,
                other => panic!("unexpected {other:?} during warm-up"),
            }
        }
    }
    panic!("warm-up frame never arrived");
}

/// Receives from `sub` until `frame` arrives, skipping earlier copies of
/// the warm-up `probe`.
pub async fn expect_frame(sub: &dyn PublishClient, frame: &[u8], probe: &[u8]) {
    loop {
        match next(sub).await {
            Received::Frame(got) if got == probe => {}
            Received::Frame(got) => {
                assert_eq!(&got[..], frame);
                return;
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}
