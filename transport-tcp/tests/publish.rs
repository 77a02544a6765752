//! The publish channel's TCP-specific behaviour: the welcome guarantee,
//! stalled subscribers, reconnects and junk on the wire.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::time::Duration;

use brine_transport_api::{
    Audience, ClientOptions, PublishClient, PublishServer, Received, ServerOptions, Transport,
    TransportError,
};
use brine_transport_tcp::TcpTransport;
use bytes::Bytes;
use support::{Logs, assert_stalled_dropped, loopback, next, quick};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const LONG: Duration = Duration::from_secs(10);

async fn publisher(queue_depth: usize) -> Box<dyn PublishServer> {
    let mut opts = ServerOptions::new(loopback());
    opts.limits.queue_depth = queue_depth;
    TcpTransport::new().bind_publisher(opts).await.unwrap()
}

async fn subscriber(server: &dyn PublishServer, identity: &str) -> Box<dyn PublishClient> {
    let opts = quick(ClientOptions::new(server.local_addr(), identity));
    TcpTransport::new().subscribe(opts).await.unwrap()
}

async fn connected(client: &dyn PublishClient) {
    assert_eq!(next(client).await, Received::Connected);
}

#[tokio::test]
async fn a_frame_published_right_after_connected_always_arrives() {
    let server = publisher(16).await;
    for round in 0..20 {
        let client = subscriber(&*server, "m1").await;
        connected(&*client).await;
        let frame = Bytes::from(format!("round {round}"));
        server.publish(frame.clone(), &Audience::All).await.unwrap();
        assert_eq!(next(&*client).await, Received::Frame(frame));
        client.close().await.unwrap();
        assert!(matches!(client.recv().await, Err(TransportError::Closed)));
    }
    server.close().await.unwrap();
}

/// A raw subscriber that says hello as `identity` and reads the welcome.
async fn raw_subscriber(server: &dyn PublishServer, identity: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut hello = u32::try_from(identity.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    hello.push(0x01);
    hello.extend_from_slice(identity.as_bytes());
    stream.write_all(&hello).await.unwrap();
    let mut welcome = [0u8; 5];
    stream.read_exact(&mut welcome).await.unwrap();
    assert_eq!(welcome, [0, 0, 0, 1, 0x02]);
    stream
}

// Current-thread runtime: the server's tasks log on this thread, where the
// capture is installed.
#[tokio::test]
async fn a_stalled_subscriber_is_dropped_and_the_others_get_every_frame() {
    const FRAMES: usize = 400;
    const FRAME_LEN: usize = 64 * 1024;
    let (logs, _guard) = Logs::capture();
    let server = publisher(4).await;
    let healthy = subscriber(&*server, "healthy").await;
    connected(&*healthy).await;
    // Says hello, then never reads: 25 MiB is far beyond the socket buffers.
    let mut stalled = raw_subscriber(&*server, "stalled-minion").await;
    for seq in 0..FRAMES {
        let mut frame = vec![0u8; FRAME_LEN];
        frame[..8].copy_from_slice(&(seq as u64).to_be_bytes());
        let frame = Bytes::from(frame);
        // Never blocks on the stalled subscriber.
        server.publish(frame.clone(), &Audience::All).await.unwrap();
        // Lock step with the healthy one keeps its queue short.
        assert_eq!(next(&*healthy).await, Received::Frame(frame), "frame {seq}");
    }
    assert_stalled_dropped(&logs, &mut stalled, "healthy", FRAMES * (FRAME_LEN + 5)).await;
    healthy.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test]
async fn targeted_frames_reach_only_the_named_identities() {
    let server = publisher(16).await;
    let web = subscriber(&*server, "web-01").await;
    let db = subscriber(&*server, "db-01").await;
    connected(&*web).await;
    connected(&*db).await;
    let only_db = Audience::Minions(vec!["db-01".to_owned(), "absent".to_owned()]);
    server
        .publish(Bytes::from_static(b"db"), &only_db)
        .await
        .unwrap();
    server
        .publish(Bytes::from_static(b"all"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(next(&*db).await, Received::Frame(Bytes::from_static(b"db")));
    assert_eq!(
        next(&*db).await,
        Received::Frame(Bytes::from_static(b"all"))
    );
    assert_eq!(
        next(&*web).await,
        Received::Frame(Bytes::from_static(b"all"))
    );
    server.close().await.unwrap();
}

#[tokio::test]
async fn subscriber_reports_loss_and_resubscribes_when_the_server_returns() {
    let server = publisher(16).await;
    let addr = server.local_addr();
    let client = subscriber(&*server, "m1").await;
    connected(&*client).await;
    server.close().await.unwrap();
    drop(server);
    assert!(matches!(
        next(&*client).await,
        Received::Disconnected { .. }
    ));
    let mut opts = ServerOptions::new(addr);
    opts.limits.queue_depth = 16;
    let server = TcpTransport::new().bind_publisher(opts).await.unwrap();
    connected(&*client).await;
    server
        .publish(Bytes::from_static(b"back"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*client).await,
        Received::Frame(Bytes::from_static(b"back"))
    );
    client.close().await.unwrap();
    server.close().await.unwrap();
    assert!(matches!(
        server.publish(Bytes::new(), &Audience::All).await,
        Err(TransportError::Closed)
    ));
}

#[tokio::test]
async fn a_frame_over_the_subscriber_limit_is_skipped_and_the_next_arrives() {
    let server = publisher(16).await;
    let mut opts = ClientOptions::new(server.local_addr(), "small");
    opts.limits.max_frame_size = 100;
    let client = TcpTransport::new().subscribe(opts).await.unwrap();
    connected(&*client).await;
    server
        .publish(Bytes::from(vec![1u8; 101]), &Audience::All)
        .await
        .unwrap();
    server
        .publish(Bytes::from(vec![2u8; 100]), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*client).await,
        Received::Frame(Bytes::from(vec![2u8; 100]))
    );
    server.close().await.unwrap();
}

#[tokio::test]
async fn publish_refuses_frames_over_the_server_limit() {
    let mut opts = ServerOptions::new(loopback());
    opts.limits.max_frame_size = 10;
    let server = TcpTransport::new().bind_publisher(opts).await.unwrap();
    let err = server
        .publish(Bytes::from(vec![0u8; 11]), &Audience::All)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::FrameTooLarge {
                len: 11,
                max: 10,
                ..
            }
        ),
        "{err:?}"
    );
    server.close().await.unwrap();
}

#[tokio::test]
async fn bad_hellos_and_junk_close_only_their_connection() {
    let server = publisher(16).await;
    let client = subscriber(&*server, "m1").await;
    connected(&*client).await;
    let junk: [&[u8]; 5] = [
        &[0, 0, 0, 2, 0x03, b'x'],                // not a hello
        &[0, 0, 0, 3, 0x01, 0xff, 0xfe],          // identity not UTF-8
        &[0, 0, 0, 0],                            // empty hello
        &[0x7f, 0xff, 0xff, 0xff, 0x01],          // huge hello
        b"GET / HTTP/1.1\r\nHost: brine\r\n\r\n", // not even framed
    ];
    for bytes in junk {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(LONG, stream.read_to_end(&mut rest))
            .await
            .expect("the server closes a connection with a bad hello")
            .ok();
        assert!(rest.is_empty(), "no welcome for {bytes:?}");
    }
    // Sending anything after the hello ends that subscription only.
    let mut chatty = raw_subscriber(&*server, "chatty").await;
    chatty.write_all(b"unexpected").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(LONG, chatty.read_to_end(&mut rest))
        .await
        .expect("the server closes a subscriber that talks")
        .ok();

    server
        .publish(Bytes::from_static(b"still here"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*client).await,
        Received::Frame(Bytes::from_static(b"still here"))
    );
    server.close().await.unwrap();
}
