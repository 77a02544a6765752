//! The request channel: one long-lived request stream per connection
//! carries every request of a client, each matched to its reply by an id
//! (layout in [`wire`](crate::wire)), so a request costs two frames on an
//! open stream rather than a stream of its own.
//!
//! - [`client`]: the client opens the stream on its link's connection at
//!   the first request (and again after the stream or the connection
//!   breaks); one task per stream writes the queued requests and hands each
//!   reply to the request waiting for its id.
//! - [`service`]: the server reads requests from the stream and runs the
//!   handler for each concurrently, within [`Limits::max_in_flight`]
//!   server-wide and [`service::REQUESTS_PER_CONNECTION`] per stream (past
//!   those it stops reading, and QUIC's flow control holds the client
//!   back); a request over the limit is refused by id and its bytes
//!   skipped, and the stream goes on.
//! - [`decode`]: the sans-IO decoders both ends parse with.
//!
//! [`Limits::max_in_flight`]: brine_transport_api::Limits::max_in_flight

mod batch;
mod client;
mod decode;
pub(crate) mod service;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use brine_transport_api::{RequestServer, TransportError};

pub(crate) use client::QuicRequestClient;
pub(crate) use service::Service;

use crate::server::{Role, ServerEndpoint};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The master's end of the request channel.
#[derive(Debug)]
pub(crate) struct QuicRequestServer {
    addr: SocketAddr,
    service: Arc<Service>,
    endpoint: Mutex<Option<Arc<ServerEndpoint>>>,
}

impl QuicRequestServer {
    pub(crate) fn new(service: Arc<Service>, endpoint: Arc<ServerEndpoint>) -> Self {
        Self {
            addr: endpoint.local_addr(),
            service,
            endpoint: Mutex::new(Some(endpoint)),
        }
    }
}

#[async_trait]
impl RequestServer for QuicRequestServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn close(&self) -> Result<(), TransportError> {
        // Streams already open stop too, even if a publish server keeps
        // the endpoint (and their connections) up.
        self.service.close();
        let endpoint = lock(&self.endpoint).take();
        if let Some(endpoint) = endpoint
            && endpoint.detach(Role::Requests)
        {
            endpoint.released().await;
        }
        Ok(())
    }
}

impl Drop for QuicRequestServer {
    fn drop(&mut self) {
        self.service.close();
        if let Some(endpoint) = lock(&self.endpoint).take() {
            endpoint.detach(Role::Requests);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use brine_transport_api::{ClientOptions, ServerOptions, TlsOptions, Transport, handler_fn};
    use bytes::Bytes;

    use crate::{QuicTransport, link::Link, pki, wire};

    const STEP: Duration = Duration::from_secs(20);

    /// Reads what the server sends on a junk stream until it ends it.
    async fn drain(mut recv: quinn::RecvStream) {
        let read = async { while let Ok(Some(_)) = recv.read_chunk(64 * 1024, true).await {} };
        tokio::time::timeout(STEP, read)
            .await
            .expect("the server ends a junk stream");
    }

    /// Junk on request streams (random frames, a huge length, a frame cut
    /// short by the end of the stream or by a reset) neither panics the
    /// server nor closes the connection: requests on it are still served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn junk_on_request_streams_does_not_wedge_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("master");
        let cert = pki::ensure_self_signed(&pki_dir, "").unwrap().cert;
        let quic = QuicTransport::new();
        let mut server_opts = ServerOptions::new(([127, 0, 0, 1], 0).into());
        server_opts.limits.max_frame_size = 1024;
        server_opts.tls = Some(TlsOptions {
            pki_dir: Some(pki_dir),
            ..TlsOptions::default()
        });
        let echo = handler_fn(|frame: Bytes, _| async move { frame });
        let server = quic.bind_requests(server_opts, echo).await.unwrap();
        let mut opts = ClientOptions::new(server.local_addr(), "m");
        opts.tls = Some(TlsOptions {
            ca: Some(cert),
            ..TlsOptions::default()
        });
        let link = Link::obtain(&quic.inner.links, &opts).await.unwrap();
        let conn = link.connection().await.unwrap();

        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let random: Vec<u8> = (0..8192)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_be_bytes()[0]
            })
            .collect();
        let mut huge = vec![wire::KIND_REQUESTS];
        huge.extend_from_slice(&7u64.to_be_bytes());
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.extend_from_slice(&[0; 100]);
        let mut cut = vec![wire::KIND_REQUESTS];
        cut.extend_from_slice(&wire::request_head(9, 500, 1024, "p").unwrap());
        cut.extend_from_slice(&[1; 10]);
        let mut junk = vec![wire::KIND_REQUESTS];
        junk.extend_from_slice(&random);
        for (bytes, reset) in [
            (junk, false),
            (huge, false),
            (cut.clone(), false),
            (cut, true),
        ] {
            let (mut send, recv) = conn.open_bi().await.unwrap();
            send.write_all(&bytes).await.unwrap();
            if reset {
                send.reset(wire::code::CANCELLED).unwrap();
            } else {
                send.finish().unwrap();
            }
            drain(recv).await;
        }

        // The same connection (the client shares the link) is still served.
        let client = quic.connect_requests(opts).await.unwrap();
        let reply = client
            .request(Bytes::from_static(b"hi"), STEP)
            .await
            .unwrap();
        assert_eq!(&reply[..], b"hi");
        assert_eq!(
            conn.close_reason(),
            None,
            "the junk did not close the connection"
        );
        client.close().await.unwrap();
        drop((conn, link));
        server.close().await.unwrap();
    }
}
