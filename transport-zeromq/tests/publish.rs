//! The publish channel: Salt's wire format, `zmq_filtering`, reconnects.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use brine_transport_api::{Audience, Received, ServerOptions};
use bytes::Bytes;
use support::{
    PATIENCE, endpoint, expect_connected, expect_frame, loopback, next, subscribe, transport,
    warm_up,
};
use zeromq::{Socket, SocketRecv};

fn sha1_hex(id: &str) -> String {
    sha1_smol::Sha1::from(id).digest().to_string()
}

/// A raw SUB (a stand-in for a stock Salt minion) subscribed to `topic`:
/// publishes `probe` to `audience` until the subscription is live, then
/// `payload`, and returns the frames of the message carrying `payload`.
async fn raw_sub_sees(
    server: &dyn brine_transport_api::PublishServer,
    topic: &str,
    audience: &Audience,
) -> Vec<Bytes> {
    let mut sub = zeromq::SubSocket::new();
    sub.subscribe(topic).await.unwrap();
    sub.connect(&endpoint(server.local_addr())).await.unwrap();
    // Warm up: publish until the raw SUB sees something.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "raw SUB saw nothing"
        );
        server
            .publish(Bytes::from_static(b"probe"), audience)
            .await
            .unwrap();
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(50), sub.recv()).await {
            message.unwrap();
            break;
        }
    }
    server
        .publish(Bytes::from_static(b"payload"), audience)
        .await
        .unwrap();
    loop {
        let frames = tokio::time::timeout(PATIENCE, sub.recv())
            .await
            .expect("no payload")
            .unwrap()
            .into_vec();
        if frames.last().map(|f| &f[..]) != Some(b"probe") {
            return frames;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salt_compatible_publish_is_one_frame_to_everyone() {
    let t = transport(false);
    assert!(!t.capabilities().targeted_publish);
    let server = t
        .bind_publisher(ServerOptions::new(loopback()))
        .await
        .unwrap();
    let targeted = Audience::Minions(vec!["someone-else".to_owned()]);
    let frames = raw_sub_sees(&*server, "", &targeted).await;
    assert_eq!(frames, vec![Bytes::from_static(b"payload")]);
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtering_puts_salts_topic_frame_on_the_wire() {
    let t = transport(true);
    assert!(t.capabilities().targeted_publish);
    let server = t
        .bind_publisher(ServerOptions::new(loopback()))
        .await
        .unwrap();
    let topic = sha1_hex("minion-1");
    let frames = raw_sub_sees(
        &*server,
        &topic,
        &Audience::Minions(vec!["minion-2".to_owned(), "minion-1".to_owned()]),
    )
    .await;
    assert_eq!(
        frames,
        vec![Bytes::from(topic), Bytes::from_static(b"payload")]
    );
    let frames = raw_sub_sees(&*server, "broadcast", &Audience::All).await;
    assert_eq!(
        frames,
        vec![
            Bytes::from_static(b"broadcast"),
            Bytes::from_static(b"payload")
        ]
    );
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtering_delivers_only_to_the_hashed_topic() {
    let t = transport(true);
    let server = t
        .bind_publisher(ServerOptions::new(loopback()))
        .await
        .unwrap();
    let one = subscribe(&*t, server.local_addr(), "minion-1").await;
    let two = subscribe(&*t, server.local_addr(), "minion-2").await;
    for sub in [&one, &two] {
        expect_connected(&**sub).await;
        warm_up(&*server, &**sub, b"warm").await;
    }
    let for_one = Audience::Minions(vec!["minion-1".to_owned()]);
    server
        .publish(Bytes::from_static(b"for one"), &for_one)
        .await
        .unwrap();
    server
        .publish(Bytes::from_static(b"for all"), &Audience::All)
        .await
        .unwrap();
    expect_frame(&*one, b"for one", b"warm").await;
    expect_frame(&*one, b"for all", b"warm").await;
    // minion-2 never sees the targeted frame: the next one it gets is the broadcast.
    expect_frame(&*two, b"for all", b"warm").await;
    for sub in [one, two] {
        sub.close().await.unwrap();
    }
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_reconnects_after_the_publisher_restarts() {
    let t = transport(false);
    let server = t
        .bind_publisher(ServerOptions::new(loopback()))
        .await
        .unwrap();
    let addr = server.local_addr();
    let sub = subscribe(&*t, addr, "minion-1").await;
    expect_connected(&*sub).await;
    warm_up(&*server, &*sub, b"before").await;
    server.close().await.unwrap();
    loop {
        match next(&*sub).await {
            Received::Disconnected { reason } => {
                assert!(!reason.is_empty());
                break;
            }
            Received::Frame(frame) => assert_eq!(&frame[..], b"before"),
            Received::Connected => panic!("connected to a closed server"),
        }
    }
    let server = t.bind_publisher(ServerOptions::new(addr)).await.unwrap();
    expect_connected(&*sub).await;
    warm_up(&*server, &*sub, b"after").await;
    sub.close().await.unwrap();
    assert!(sub.recv().await.is_err());
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_is_bounded_and_refused_after_close() {
    let t = transport(false);
    let mut opts = ServerOptions::new(loopback());
    opts.limits.queue_depth = 2;
    opts.limits.max_frame_size = 8;
    let server = t.bind_publisher(opts).await.unwrap();
    // Far more than the queue holds: none of these waits on a subscriber.
    for _ in 0..10_000 {
        server
            .publish(Bytes::from_static(b"x"), &Audience::All)
            .await
            .unwrap();
    }
    let err = server
        .publish(Bytes::from_static(b"123456789"), &Audience::All)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        brine_transport_api::TransportError::FrameTooLarge { len: 9, max: 8, .. }
    ));
    server.close().await.unwrap();
    assert!(matches!(
        server
            .publish(Bytes::from_static(b"x"), &Audience::All)
            .await,
        Err(brine_transport_api::TransportError::Closed)
    ));
}

/// The relay gives every connection its own ZMTP identity, so two
/// subscribers announcing the same minion id (a restarted minion racing its
/// old connection) do not evict each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_sharing_an_identity_both_receive() {
    let t = transport(false);
    let server = t
        .bind_publisher(ServerOptions::new(loopback()))
        .await
        .unwrap();
    let first = subscribe(&*t, server.local_addr(), "same-id").await;
    expect_connected(&*first).await;
    warm_up(&*server, &*first, b"warm").await;
    let second = subscribe(&*t, server.local_addr(), "same-id").await;
    expect_connected(&*second).await;
    warm_up(&*server, &*second, b"warm").await;
    server
        .publish(Bytes::from_static(b"both"), &Audience::All)
        .await
        .unwrap();
    expect_frame(&*first, b"both", b"warm").await;
    expect_frame(&*second, b"both", b"warm").await;
    for sub in [first, second] {
        sub.close().await.unwrap();
    }
    server.close().await.unwrap();
}
