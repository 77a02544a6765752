//! The request channel's TCP-specific behaviour: multiplexing, oversized
//! frames, late replies, broken connections and junk on the wire.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use brine_transport_api::{
    ClientOptions, RequestClient, RequestServer, ServerOptions, Transport, TransportError,
    handler_fn,
};
use brine_transport_tcp::TcpTransport;
use bytes::Bytes;
use support::{loopback, quick};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Barrier, Notify, mpsc},
};

const LONG: Duration = Duration::from_secs(10);

fn echo() -> Arc<dyn brine_transport_api::RequestHandler> {
    handler_fn(|frame: Bytes, _| async move {
        let mut reply = b"re:".to_vec();
        reply.extend_from_slice(&frame);
        Bytes::from(reply)
    })
}

async fn echo_server(max_frame: usize) -> Box<dyn RequestServer> {
    let mut opts = ServerOptions::new(loopback());
    opts.limits.max_frame_size = max_frame;
    TcpTransport::new()
        .bind_requests(opts, echo())
        .await
        .unwrap()
}

async fn client_for(server: &dyn RequestServer, max_frame: usize) -> Box<dyn RequestClient> {
    let mut opts = quick(ClientOptions::new(server.local_addr(), "minion"));
    opts.limits.max_frame_size = max_frame;
    TcpTransport::new().connect_requests(opts).await.unwrap()
}

async fn assert_echo(client: &dyn RequestClient, body: &[u8]) {
    let reply = client
        .request(Bytes::copy_from_slice(body), LONG)
        .await
        .unwrap();
    assert_eq!(&reply[3..], body);
}

#[tokio::test]
async fn oversized_request_is_refused_and_the_connection_goes_on() {
    let server = echo_server(1024).await;
    let client = client_for(&*server, 1 << 20).await;
    assert_echo(&*client, b"before").await;
    let err = client
        .request(Bytes::from(vec![7u8; 4096]), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::FrameTooLarge {
                len: 4096,
                max: 1024,
                ..
            }
        ),
        "{err:?}"
    );
    // Same client, same connection: still served, and at the limit exactly
    // (the reply, "re:" and the body, is 1024 bytes).
    assert_echo(&*client, b"after").await;
    let at_limit = client
        .request(Bytes::from(vec![1u8; 1021]), LONG)
        .await
        .unwrap();
    assert_eq!(at_limit.len(), 1024);
    // A reply over the server's limit is reported the same way.
    let err = client
        .request(Bytes::from(vec![1u8; 1024]), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::FrameTooLarge {
                len: 1027,
                max: 1024,
                ..
            }
        ),
        "{err:?}"
    );
    assert_echo(&*client, b"still").await;
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test]
async fn client_refuses_to_send_over_its_own_limit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let server = TcpTransport::new()
        .bind_requests(
            ServerOptions::new(loopback()),
            handler_fn(move |frame: Bytes, _| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { frame }
            }),
        )
        .await
        .unwrap();
    let client = client_for(&*server, 100).await;
    let err = client
        .request(Bytes::from(vec![0u8; 101]), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::FrameTooLarge {
                len: 101,
                max: 100,
                ..
            }
        ),
        "{err:?}"
    );
    client
        .request(Bytes::from_static(b"ok"), LONG)
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.close().await.unwrap();
}

#[tokio::test]
async fn reply_over_the_client_limit_is_refused_and_the_connection_goes_on() {
    let server = TcpTransport::new()
        .bind_requests(
            ServerOptions::new(loopback()),
            handler_fn(|frame: Bytes, _| async move {
                let n = usize::from(frame.first().copied().unwrap_or(0));
                Bytes::from(vec![9u8; n * 100])
            }),
        )
        .await
        .unwrap();
    let client = client_for(&*server, 1000).await;
    let err = client
        .request(Bytes::from_static(&[11]), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::FrameTooLarge {
                len: 1100,
                max: 1000,
                ..
            }
        ),
        "{err:?}"
    );
    let reply = client
        .request(Bytes::from_static(&[10]), LONG)
        .await
        .unwrap();
    assert_eq!(reply.len(), 1000);
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_one_connection_are_handled_concurrently() {
    const N: usize = 16;
    // Every handler waits for all N: only concurrent handling gets past it.
    let barrier = Arc::new(Barrier::new(N));
    let server = TcpTransport::new()
        .bind_requests(
            ServerOptions::new(loopback()),
            handler_fn(move |frame: Bytes, _| {
                let barrier = Arc::clone(&barrier);
                async move {
                    barrier.wait().await;
                    frame
                }
            }),
        )
        .await
        .unwrap();
    let client: Arc<dyn RequestClient> = Arc::from(client_for(&*server, 1 << 20).await);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..N {
        let client = Arc::clone(&client);
        calls.spawn(async move {
            let body = Bytes::from(format!("request {i}"));
            let reply = client.request(body.clone(), LONG).await.unwrap();
            assert_eq!(reply, body, "each request gets its own reply");
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap();
    }
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test]
async fn late_reply_is_discarded_not_given_to_the_next_request() {
    let release = Arc::new(Notify::new());
    let gate = Arc::clone(&release);
    let server = TcpTransport::new()
        .bind_requests(
            ServerOptions::new(loopback()),
            handler_fn(move |frame: Bytes, _| {
                let gate = Arc::clone(&gate);
                async move {
                    if &frame[..] == b"slow" {
                        gate.notified().await;
                    }
                    frame
                }
            }),
        )
        .await
        .unwrap();
    let client = client_for(&*server, 1 << 20).await;
    let err = client
        .request(Bytes::from_static(b"slow"), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err:?}");
    release.notify_one();
    for body in [&b"fast"[..], b"again", b"and again"] {
        let reply = client
            .request(Bytes::copy_from_slice(body), LONG)
            .await
            .unwrap();
        assert_eq!(&reply[..], body);
    }
    server.close().await.unwrap();
}

#[tokio::test]
async fn pending_requests_fail_with_connection_lost_when_the_server_goes() {
    let (arrived_tx, mut arrived) = mpsc::channel(1);
    let server = TcpTransport::new()
        .bind_requests(
            ServerOptions::new(loopback()),
            handler_fn(move |_frame: Bytes, _| {
                let arrived = arrived_tx.clone();
                async move {
                    let _ = arrived.send(()).await;
                    std::future::pending::<Bytes>().await
                }
            }),
        )
        .await
        .unwrap();
    let client = client_for(&*server, 1 << 20).await;
    let request = client.request(
        Bytes::from_static(b"never answered"),
        Duration::from_secs(60),
    );
    let close = async {
        arrived.recv().await.unwrap();
        server.close().await.unwrap();
    };
    let (result, ()) = tokio::join!(request, close);
    let err = result.unwrap_err();
    assert!(
        matches!(err, TransportError::ConnectionLost { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_reconnects_after_its_connection_breaks_and_close_is_final() {
    let server = echo_server(1024).await;
    let addr = server.local_addr();
    let client = client_for(&*server, 1024).await;
    assert_echo(&*client, b"one").await;
    server.close().await.unwrap();
    drop(server);
    let mut opts = ServerOptions::new(addr);
    opts.limits.max_frame_size = 1024;
    let server = TcpTransport::new()
        .bind_requests(opts, echo())
        .await
        .unwrap();
    // The broken connection is noticed and replaced within one request.
    let mut last = None;
    for _ in 0..50 {
        match client.request(Bytes::from_static(b"two"), LONG).await {
            Ok(reply) => {
                assert_eq!(&reply[..], b"re:two");
                last = None;
                break;
            }
            Err(err) => last = Some(err),
        }
    }
    assert!(last.is_none(), "never reconnected: {last:?}");
    client.close().await.unwrap();
    let err = client
        .request(Bytes::from_static(b"three"), LONG)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err:?}");
    server.close().await.unwrap();
}

async fn raw(server: &dyn RequestServer) -> TcpStream {
    TcpStream::connect(server.local_addr()).await.unwrap()
}

/// Reads until the server closes the connection; fails after 10 s.
async fn assert_closed_by_server(mut stream: TcpStream) {
    let mut sink = Vec::new();
    tokio::time::timeout(LONG, stream.read_to_end(&mut sink))
        .await
        .expect("server closes the connection")
        .ok();
}

#[tokio::test]
async fn raw_oversized_request_gets_a_too_large_reply_then_service_continues() {
    let server = echo_server(16).await;
    let mut stream = raw(&*server).await;
    let mut wire = Vec::new();
    wire.extend_from_slice(&(8u32 + 17).to_be_bytes());
    wire.extend_from_slice(&77u64.to_be_bytes());
    wire.extend_from_slice(&[0xAA; 17]);
    wire.extend_from_slice(&(8u32 + 2).to_be_bytes());
    wire.extend_from_slice(&78u64.to_be_bytes());
    wire.extend_from_slice(b"hi");
    stream.write_all(&wire).await.unwrap();

    let mut refused = [0u8; 4 + 9 + 16];
    stream.read_exact(&mut refused).await.unwrap();
    assert_eq!(&refused[..4], &25u32.to_be_bytes());
    assert_eq!(&refused[4..12], &77u64.to_be_bytes());
    assert_eq!(refused[12], 1, "status: too large");
    assert_eq!(&refused[13..21], &17u64.to_be_bytes());
    assert_eq!(&refused[21..], &16u64.to_be_bytes());

    let mut answered = [0u8; 4 + 9 + 5];
    stream.read_exact(&mut answered).await.unwrap();
    assert_eq!(&answered[4..12], &78u64.to_be_bytes());
    assert_eq!(answered[12], 0, "status: ok");
    assert_eq!(&answered[13..], b"re:hi");
    server.close().await.unwrap();
}

#[tokio::test]
async fn junk_and_truncated_frames_end_only_their_own_connection() {
    let server = echo_server(1024).await;
    let client = client_for(&*server, 1024).await;
    assert_echo(&*client, b"before").await;

    // A frame too short to hold a request id.
    let mut short = raw(&*server).await;
    short.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.unwrap();
    assert_closed_by_server(short).await;

    // Text where a length prefix belongs: announces ~1.2 GB, then hangs up.
    let mut text = raw(&*server).await;
    text.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    drop(text);

    // A truncated frame, then hang up.
    let mut truncated = raw(&*server).await;
    truncated
        .write_all(&[0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 1, 9])
        .await
        .unwrap();
    drop(truncated);

    // A maximal length prefix with no id behind it.
    let mut huge = raw(&*server).await;
    huge.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    huge.shutdown().await.unwrap();
    assert_closed_by_server(huge).await;

    // Random bytes.
    let mut noise = raw(&*server).await;
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = noise.write_all(&junk).await;
    drop(noise);

    assert_echo(&*client, b"after").await;
    let fresh = client_for(&*server, 1024).await;
    assert_echo(&*fresh, b"fresh").await;
    server.close().await.unwrap();
}

#[tokio::test]
async fn port_can_be_bound_again_right_after_close() {
    let server = echo_server(1024).await;
    let addr = server.local_addr();
    let client = client_for(&*server, 1024).await;
    assert_echo(&*client, b"x").await;
    server.close().await.unwrap();
    let again = TcpTransport::new()
        .bind_requests(ServerOptions::new(addr), echo())
        .await
        .unwrap();
    assert_eq!(again.local_addr(), addr);
    again.close().await.unwrap();
}
