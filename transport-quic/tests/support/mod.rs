//! Shared helpers for the QUIC backend's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use brine_transport_api::{
    Backoff, ClientOptions, PublishClient, Received, RequestClient, RequestHandler, ServerOptions,
    TlsOptions, Transport, handler_fn,
};
use brine_transport_quic::{QuicTransport, pki};
use bytes::Bytes;

/// How long any single step of a test may take before it fails.
pub const STEP: Duration = Duration::from_secs(20);

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn transport() -> Arc<dyn Transport> {
    Arc::new(QuicTransport::new())
}

/// Server options that generate (or reuse) a certificate under `pki_dir`.
pub fn server_opts(bind: SocketAddr, pki_dir: &Path) -> ServerOptions {
    let mut opts = ServerOptions::new(bind);
    opts.tls = Some(TlsOptions {
        pki_dir: Some(pki_dir.to_path_buf()),
        ..TlsOptions::default()
    });
    opts
}

fn fast_backoff(opts: &mut ClientOptions) {
    opts.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    opts.connect_timeout = Duration::from_secs(5);
}

/// Client options trusting the certificate (or CA bundle) at `ca`.
pub fn client_opts_ca(connect: SocketAddr, identity: &str, ca: &Path) -> ClientOptions {
    let mut opts = ClientOptions::new(connect, identity);
    opts.tls = Some(TlsOptions {
        ca: Some(ca.to_path_buf()),
        ..TlsOptions::default()
    });
    fast_backoff(&mut opts);
    opts
}

/// Client options trusting on first use, pinning under `pki_dir`.
pub fn client_opts_tofu(connect: SocketAddr, identity: &str, pki_dir: &Path) -> ClientOptions {
    let mut opts = ClientOptions::new(connect, identity);
    opts.tls = Some(TlsOptions {
        pki_dir: Some(pki_dir.to_path_buf()),
        ..TlsOptions::default()
    });
    fast_backoff(&mut opts);
    opts
}

pub fn cert_path(pki_dir: &Path) -> PathBuf {
    pki_dir.join(pki::CERT_FILE)
}

/// Replies `re:` + the request.
pub fn echo() -> Arc<dyn RequestHandler> {
    handler_fn(|frame: Bytes, _| async move { echo_reply(&frame) })
}

/// What [`echo`] answers to `frame`.
pub fn echo_reply(frame: &[u8]) -> Bytes {
    Bytes::from([&b"re:"[..], frame].concat())
}

/// Sends `body` and checks that [`echo`] answered it (`re:` + `body`).
pub async fn assert_echoes(client: &dyn RequestClient, body: &'static [u8]) {
    let reply = client
        .request(Bytes::from_static(body), STEP)
        .await
        .expect("echo request");
    assert_eq!(reply, echo_reply(body));
}

/// The next item, failing the test after [`STEP`].
pub async fn next(client: &dyn PublishClient) -> Received {
    tokio::time::timeout(STEP, client.recv())
        .await
        .expect("nothing received in time")
        .expect("subscription closed")
}

/// Waits for `Connected`, skipping anything before it.
pub async fn connected(client: &dyn PublishClient) {
    loop {
        if next(client).await == Received::Connected {
            return;
        }
    }
}
