//! The publish channel: `Connected` means live, targeting, slow
//! subscribers, frame limits and reconnection.

mod support;

use std::time::Duration;

use brine_transport_api::{Audience, PublishServer, Received, TransportError};
use bytes::Bytes;
use support::*;

fn frame(n: u32) -> Bytes {
    Bytes::from(n.to_be_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_means_live_and_targeting_reaches_only_the_listed() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let ca = cert_path(&master);
    let t = transport();
    let server = t
        .bind_publisher(server_opts(loopback(), &master))
        .await
        .unwrap();
    let addr = server.local_addr();
    let m1 = t.subscribe(client_opts_ca(addr, "m1", &ca)).await.unwrap();
    let m2 = t.subscribe(client_opts_ca(addr, "m2", &ca)).await.unwrap();
    // No warm-up: a frame published right after `Connected` must arrive.
    assert_eq!(next(&*m1).await, Received::Connected);
    assert_eq!(next(&*m2).await, Received::Connected);

    server
        .publish(
            frame(1),
            &Audience::Minions(vec!["m2".into(), "m2".into(), "nobody".into()]),
        )
        .await
        .unwrap();
    server.publish(frame(2), &Audience::All).await.unwrap();
    assert_eq!(next(&*m1).await, Received::Frame(frame(2)));
    assert_eq!(
        next(&*m2).await,
        Received::Frame(frame(1)),
        "duplicates in the list send once"
    );
    assert_eq!(next(&*m2).await, Received::Frame(frame(2)));

    m1.close().await.unwrap();
    assert!(matches!(m1.recv().await, Err(TransportError::Closed)));
    m2.close().await.unwrap();
    server.close().await.unwrap();
    let err = server.publish(frame(3), &Audience::All).await.unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_dropped_while_others_keep_receiving() {
    const FRAMES: u32 = 300;
    const FRAME_SIZE: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let ca = cert_path(&master);
    let t = transport();
    let mut opts = server_opts(loopback(), &master);
    opts.limits.queue_depth = 8;
    let server = t.bind_publisher(opts).await.unwrap();
    let addr = server.local_addr();
    let mut slow_opts = client_opts_ca(addr, "stalled", &ca);
    slow_opts.limits.queue_depth = 4;
    let stalled = t.subscribe(slow_opts).await.unwrap();
    let healthy = t
        .subscribe(client_opts_ca(addr, "healthy", &ca))
        .await
        .unwrap();
    connected(&*stalled).await;
    connected(&*healthy).await;

    // Publish in lock step with the healthy subscriber; the stalled one
    // never reads.
    let payload = vec![0u8; FRAME_SIZE];
    for n in 0..FRAMES {
        let mut body = n.to_be_bytes().to_vec();
        body.extend_from_slice(&payload);
        tokio::time::timeout(STEP, server.publish(Bytes::from(body), &Audience::All))
            .await
            .expect("publish must never wait for a subscriber")
            .unwrap();
        match next(&*healthy).await {
            Received::Frame(got) => assert_eq!(&got[..4], &n.to_be_bytes(), "out of order"),
            other => panic!("healthy subscriber got {other:?} at frame {n}"),
        }
    }

    // The stalled subscriber finds, after what it had buffered, that it was
    // dropped for being slow, and then resubscribes.
    let mut buffered = 0;
    let reason = loop {
        match next(&*stalled).await {
            Received::Frame(_) => buffered += 1,
            Received::Disconnected { reason } => break reason,
            Received::Connected => panic!("reconnected without a disconnect"),
        }
    };
    assert!(reason.contains("too slow"), "unclear reason: {reason}");
    assert!(buffered < FRAMES, "the stalled subscriber got everything");
    connected(&*stalled).await;
    server
        .publish(frame(7), &Audience::Minions(vec!["stalled".into()]))
        .await
        .unwrap();
    assert_eq!(next(&*stalled).await, Received::Frame(frame(7)));

    stalled.close().await.unwrap();
    healthy.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_limits_apply_on_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let mut opts = server_opts(loopback(), &master);
    opts.limits.max_frame_size = 100;
    let server = t.bind_publisher(opts).await.unwrap();
    let err = server
        .publish(Bytes::from(vec![0u8; 101]), &Audience::All)
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
        "{err}"
    );

    let mut client = client_opts_ca(server.local_addr(), "m", &cert_path(&master));
    client.limits.max_frame_size = 10;
    let sub = t.subscribe(client).await.unwrap();
    connected(&*sub).await;
    server
        .publish(Bytes::from(vec![0u8; 50]), &Audience::All)
        .await
        .unwrap();
    match next(&*sub).await {
        Received::Disconnected { reason } => assert!(reason.contains("exceeds"), "{reason}"),
        other => panic!("expected a disconnect for an oversized frame, got {other:?}"),
    }
    connected(&*sub).await;
    server
        .publish(Bytes::from_static(b"small"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*sub).await,
        Received::Frame(Bytes::from_static(b"small"))
    );
    sub.close().await.unwrap();
    server.close().await.unwrap();
}

async fn bind_at(
    t: &dyn brine_transport_api::Transport,
    addr: std::net::SocketAddr,
    pki_dir: &std::path::Path,
) -> Box<dyn PublishServer> {
    // Right after a close the port is free; retry only in case another
    // test's socket grabbed it meanwhile.
    for _ in 0..50 {
        match t.bind_publisher(server_opts(addr, pki_dir)).await {
            Ok(server) => return server,
            Err(err) if err.is_addr_in_use() => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(err) => panic!("rebind failed: {err}"),
        }
    }
    panic!("port {addr} not free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_report_the_restart_and_resubscribe() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let server = t
        .bind_publisher(server_opts(loopback(), &master))
        .await
        .unwrap();
    let addr = server.local_addr();
    let sub = t
        .subscribe(client_opts_ca(addr, "m", &cert_path(&master)))
        .await
        .unwrap();
    connected(&*sub).await;
    server.close().await.unwrap();
    match next(&*sub).await {
        Received::Disconnected { reason } => assert!(!reason.is_empty()),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let server = bind_at(&*t, addr, &master).await;
    connected(&*sub).await;
    server.publish(frame(9), &Audience::All).await.unwrap();
    assert_eq!(next(&*sub).await, Received::Frame(frame(9)));
    sub.close().await.unwrap();
    server.close().await.unwrap();
}
