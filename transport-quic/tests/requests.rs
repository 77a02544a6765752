//! The request channel: oversized frames, a server that is down, and
//! reconnection.

mod support;

use std::time::{Duration, Instant};

use brine_transport_api::{RequestClientExt, TransportError};
use bytes::Bytes;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let mut opts = server_opts(loopback(), &master);
    opts.limits.max_frame_size = 1024;
    let server = t.bind_requests(opts, echo()).await.unwrap();
    let addr = server.local_addr();
    let ca = cert_path(&master);
    // The client's own limit is the default (64 MiB), so the frame goes out
    // and the server has to refuse it.
    let client = t
        .connect_requests(client_opts_ca(addr, "big", &ca))
        .await
        .unwrap();
    let other = t
        .connect_requests(client_opts_ca(addr, "small", &ca))
        .await
        .unwrap();

    for size in [1025, 64 * 1024, 8 * 1024 * 1024] {
        match client.request(Bytes::from(vec![7u8; size]), STEP).await {
            Err(TransportError::FrameTooLarge { len, max, .. }) => {
                assert_eq!((len, max), (size as u64, 1024));
            }
            other => panic!("{size}-byte request: expected FrameTooLarge, got {other:?}"),
        }
        // The same client and everyone else are still served.
        let reply = client
            .request(Bytes::from_static(b"ok"), STEP)
            .await
            .unwrap();
        assert_eq!(&reply[..], b"re:ok");
        let reply = other
            .request(Bytes::from(vec![1u8; 1021]), STEP)
            .await
            .unwrap();
        assert_eq!(reply.len(), 1024);
    }
    // A reply over the server's own limit is refused, not sent.
    match other.request(Bytes::from(vec![1u8; 1024]), STEP).await {
        Err(TransportError::FrameTooLarge {
            len: 1027,
            max: 1024,
            ..
        }) => {}
        unexpected => panic!("expected FrameTooLarge for the reply, got {unexpected:?}"),
    }
    client.close().await.unwrap();
    other.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_is_refused_by_the_client_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let server = t
        .bind_requests(server_opts(loopback(), &master), echo())
        .await
        .unwrap();
    let mut opts = client_opts_ca(server.local_addr(), "m", &cert_path(&master));
    opts.limits.max_frame_size = 16;
    let client = t.connect_requests(opts).await.unwrap();
    let err = client
        .request(Bytes::from(vec![0u8; 17]), STEP)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::FrameTooLarge {
                len: 17,
                max: 16,
                ..
            }
        ),
        "{err}"
    );
    // A reply over the client's limit is refused too (`re:` makes it 19).
    let err = client
        .request(Bytes::from(vec![0u8; 16]), STEP)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::FrameTooLarge { max: 16, .. }),
        "{err}"
    );
    let reply = client
        .request(Bytes::from_static(b"fits"), STEP)
        .await
        .unwrap();
    assert_eq!(&reply[..], b"re:fits");
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_in_flight_on_one_client_get_their_own_replies() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let mut opts = server_opts(loopback(), &master);
    opts.limits.max_in_flight = 8;
    let server = t.bind_requests(opts, echo()).await.unwrap();
    let client = t
        .connect_requests(client_opts_ca(
            server.local_addr(),
            "m",
            &cert_path(&master),
        ))
        .await
        .unwrap();
    let client: std::sync::Arc<dyn brine_transport_api::RequestClient> = client.into();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let client = client.clone();
        tasks.spawn(async move {
            let body = Bytes::from(i.to_be_bytes().to_vec());
            let reply = client.request(body.clone(), STEP).await.unwrap();
            assert_eq!(&reply[3..], &body[..], "request {i} got another's reply");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_while_the_server_is_down_fails_typed_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let server = t
        .bind_requests(server_opts(loopback(), &master), echo())
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut opts = client_opts_ca(addr, "m", &cert_path(&master));
    opts.connect_timeout = Duration::from_millis(300);
    let client = t.connect_requests(opts).await.unwrap();
    assert_echoes(&*client, b"a").await;
    server.close().await.unwrap();

    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = client
        .request(Bytes::from_static(b"b"), timeout)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "a down server is worth retrying: {err}");
    assert!(
        started.elapsed() < timeout + Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );

    // Back on the same port: the client reconnects by itself.
    let server = t
        .bind_requests(server_opts(addr, &master), echo())
        .await
        .unwrap();
    let reply = client
        .request_with_tries(Bytes::from_static(b"c"), Duration::from_secs(2), 10)
        .await
        .unwrap();
    assert_eq!(&reply[..], b"re:c");
    client.close().await.unwrap();
    let err = client
        .request(Bytes::from_static(b"d"), STEP)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err}");
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_times_out_the_request_only() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let handler = brine_transport_api::handler_fn(move |frame: Bytes, _| {
        let mut release = release_rx.clone();
        async move {
            if &frame[..] == b"hang" {
                let _ = release.wait_for(|r| *r).await;
            }
            frame
        }
    });
    let server = t
        .bind_requests(server_opts(loopback(), &master), handler)
        .await
        .unwrap();
    let client = t
        .connect_requests(client_opts_ca(
            server.local_addr(),
            "m",
            &cert_path(&master),
        ))
        .await
        .unwrap();
    let err = client
        .request(Bytes::from_static(b"hang"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    let reply = client
        .request(Bytes::from_static(b"next"), STEP)
        .await
        .unwrap();
    assert_eq!(
        &reply[..],
        b"next",
        "a late reply must never reach another request"
    );
    release_tx.send_replace(true);
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_without_close_frees_everything() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let server = t
        .bind_requests(server_opts(loopback(), &master), echo())
        .await
        .unwrap();
    let addr = server.local_addr();
    let client = t
        .connect_requests(client_opts_ca(addr, "m", &cert_path(&master)))
        .await
        .unwrap();
    assert_echoes(&*client, b"x").await;
    drop(client);
    drop(server);
    // Drop closes without waiting; the port comes back once quinn has
    // finished closing (polled, bounded).
    let mut rebound = None;
    for _ in 0..200 {
        match t.bind_requests(server_opts(addr, &master), echo()).await {
            Ok(server) => {
                rebound = Some(server);
                break;
            }
            Err(err) if err.is_addr_in_use() => tokio::time::sleep(Duration::from_millis(25)).await,
            Err(err) => panic!("rebind failed: {err}"),
        }
    }
    let server = rebound.expect("port released after drop");
    let client = t
        .connect_requests(client_opts_ca(addr, "m", &cert_path(&master)))
        .await
        .unwrap();
    assert_echoes(&*client, b"y").await;
    client.close().await.unwrap();
    server.close().await.unwrap();
}
