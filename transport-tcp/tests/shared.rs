//! Publish and requests on one address: one listener, one connection per
//! minion for both channels (`publish_port == ret_port`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use brine_transport_api::{
    Audience, ClientOptions, PublishClient, PublishServer, Received, RequestClient, RequestHandler,
    RequestServer, ServerOptions, Transport, TransportError, handler_fn,
};
use brine_transport_tcp::TcpTransport;
use bytes::Bytes;
use support::{Certificate, Logs, assert_stalled_dropped, loopback, next, quick};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const LONG: Duration = Duration::from_secs(10);

fn echo() -> Arc<dyn RequestHandler> {
    handler_fn(|frame: Bytes, _| async move {
        let mut reply = b"re:".to_vec();
        reply.extend_from_slice(&frame);
        Bytes::from(reply)
    })
}

/// A publish server and a request server of `t` on one loopback address.
async fn shared_servers(
    t: &TcpTransport,
    opts: ServerOptions,
) -> (Box<dyn PublishServer>, Box<dyn RequestServer>, SocketAddr) {
    let publisher = t.bind_publisher(opts.clone()).await.unwrap();
    let addr = publisher.local_addr();
    let requests = t
        .bind_requests(ServerOptions { bind: addr, ..opts }, echo())
        .await
        .unwrap();
    assert_eq!(requests.local_addr(), addr);
    (publisher, requests, addr)
}

/// A minion's two clients, made as the minion makes them: requests first.
struct Minion {
    req: Box<dyn RequestClient>,
    sub: Box<dyn PublishClient>,
}

impl Minion {
    async fn start(t: &TcpTransport, opts: ClientOptions) -> Self {
        let req = t.connect_requests(opts.clone()).await.unwrap();
        // Authenticate on a request-only connection, then subscribe.
        assert_eq!(&ping(&*req, "auth").await.unwrap()[..], b"re:auth");
        let sub = t.subscribe(opts).await.unwrap();
        assert_eq!(next(&*sub).await, Received::Connected);
        Self { req, sub }
    }

    async fn close(self) {
        self.sub.close().await.unwrap();
        self.req.close().await.unwrap();
    }
}

async fn ping(client: &dyn RequestClient, body: &str) -> Result<Bytes, TransportError> {
    client.request(Bytes::from(body.to_owned()), LONG).await
}

/// Established TCP connections whose local port is `port`: on loopback,
/// the server ends of the connections accepted on that port.
fn established(port: u16) -> usize {
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            // State 01 is ESTABLISHED.
            if local_port == Some(port) && *state == "01" {
                count += 1;
            }
        }
    }
    count
}

/// Waits (a hang detector, not a timing assertion) until `port` has
/// exactly `want` established server-side connections.
async fn wait_for_connections(port: u16, want: usize) {
    let waited = tokio::time::timeout(LONG, async {
        while established(port) != want {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "expected {want} connections on port {port}, found {}",
        established(port)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_minion_uses_one_connection_for_both_channels() {
    const MINIONS: usize = 10;
    let t = TcpTransport::new();
    let (publisher, requests, addr) = shared_servers(&t, ServerOptions::new(loopback())).await;
    let mut minions = Vec::new();
    for n in 0..MINIONS {
        minions.push(Minion::start(&t, quick(ClientOptions::new(addr, format!("m{n}")))).await);
    }
    // The request-only connections each minion authenticated on are retired.
    wait_for_connections(addr.port(), MINIONS).await;
    publisher
        .publish(Bytes::from_static(b"job"), &Audience::All)
        .await
        .unwrap();
    for (n, minion) in minions.iter().enumerate() {
        assert_eq!(
            next(&*minion.sub).await,
            Received::Frame(Bytes::from_static(b"job"))
        );
        let body = format!("ret {n}");
        assert_eq!(
            ping(&*minion.req, &body).await.unwrap(),
            Bytes::from(format!("re:{body}"))
        );
    }
    assert_eq!(established(addr.port()), MINIONS, "still one per minion");
    for minion in minions {
        minion.close().await;
    }
    wait_for_connections(addr.port(), 0).await;
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
    std::net::TcpListener::bind(addr).expect("port released once both servers closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_and_requests_interleave_on_the_shared_connection() {
    const FRAMES: u32 = 300;
    const REQUESTS: usize = 300;
    let t = TcpTransport::new();
    let (publisher, requests, addr) = shared_servers(&t, ServerOptions::new(loopback())).await;
    let minion = Minion::start(&t, quick(ClientOptions::new(addr, "m1"))).await;
    let req: Arc<dyn RequestClient> = Arc::from(minion.req);
    let mut asking = tokio::task::JoinSet::new();
    for n in 0..REQUESTS {
        let req = Arc::clone(&req);
        asking.spawn(async move {
            let body = format!("request {n}");
            let reply = ping(&*req, &body).await.unwrap();
            assert_eq!(reply, Bytes::from(format!("re:{body}")));
        });
    }
    for seq in 0..FRAMES {
        publisher
            .publish(Bytes::from(seq.to_be_bytes().to_vec()), &Audience::All)
            .await
            .unwrap();
    }
    for seq in 0..FRAMES {
        assert_eq!(
            next(&*minion.sub).await,
            Received::Frame(Bytes::from(seq.to_be_bytes().to_vec())),
            "frame {seq}"
        );
    }
    while let Some(done) = asking.join_next().await {
        done.unwrap();
    }
    wait_for_connections(addr.port(), 1).await;
    minion.sub.close().await.unwrap();
    req.close().await.unwrap();
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
}

/// A raw client that sends `hello` (kind and identity) and reads one
/// one-byte answer.
async fn raw_hello(addr: SocketAddr, kind: u8, identity: &str) -> (TcpStream, u8) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut hello = u32::try_from(identity.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    hello.push(kind);
    hello.extend_from_slice(identity.as_bytes());
    stream.write_all(&hello).await.unwrap();
    let mut answer = [0u8; 5];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[..4], [0, 0, 0, 1]);
    (stream, answer[4])
}

async fn read_raw_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).await.unwrap();
    frame
}

fn raw_request(id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(8 + body.len())
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn the_first_frame_picks_the_service_on_a_shared_listener() {
    let t = TcpTransport::new();
    let (publisher, requests, addr) = shared_servers(&t, ServerOptions::new(loopback())).await;

    // Shared hello: welcome, then tagged replies and published frames.
    let (mut shared, answer) = raw_hello(addr, 0x04, "raw-shared").await;
    assert_eq!(answer, 0x02, "welcome");
    shared.write_all(&raw_request(1, b"ping")).await.unwrap();
    let mut reply = vec![0x05];
    reply.extend_from_slice(&1u64.to_be_bytes());
    reply.push(0);
    reply.extend_from_slice(b"re:ping");
    assert_eq!(read_raw_frame(&mut shared).await, reply);

    // Publish hello: a publish-only subscriber, as on a publish server.
    let (mut subscriber, answer) = raw_hello(addr, 0x01, "raw-sub").await;
    assert_eq!(answer, 0x02, "welcome");
    publisher
        .publish(Bytes::from_static(b"job"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(read_raw_frame(&mut shared).await, b"\x03job");
    assert_eq!(read_raw_frame(&mut subscriber).await, b"\x03job");

    // Anything else: a plain request connection, untagged replies.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(&raw_request(7, b"hi")).await.unwrap();
    let mut reply = 7u64.to_be_bytes().to_vec();
    reply.push(0);
    reply.extend_from_slice(b"re:hi");
    assert_eq!(read_raw_frame(&mut plain).await, reply);

    // Real clients that do not share also work here: a request client and
    // a subscriber with different identities each get their own connection.
    let req = t
        .connect_requests(ClientOptions::new(addr, "only-requests"))
        .await
        .unwrap();
    assert_eq!(&ping(&*req, "x").await.unwrap()[..], b"re:x");
    let sub = t
        .subscribe(ClientOptions::new(addr, "only-publish"))
        .await
        .unwrap();
    assert_eq!(next(&*sub).await, Received::Connected);
    publisher
        .publish(Bytes::from_static(b"two"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*sub).await,
        Received::Frame(Bytes::from_static(b"two"))
    );
    req.close().await.unwrap();
    sub.close().await.unwrap();
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
}

// Current-thread runtime: the server's tasks log on this thread, where the
// capture is installed.
#[tokio::test]
async fn a_stalled_shared_subscriber_is_dropped_and_the_others_get_every_frame() {
    const FRAMES: usize = 400;
    const FRAME_LEN: usize = 64 * 1024;
    let (logs, _guard) = Logs::capture();
    let t = TcpTransport::new();
    let mut opts = ServerOptions::new(loopback());
    opts.limits.queue_depth = 4;
    let (publisher, requests, addr) = shared_servers(&t, opts).await;
    let healthy = Minion::start(&t, quick(ClientOptions::new(addr, "healthy"))).await;
    // Says a shared hello, then never reads.
    let (mut stalled, answer) = raw_hello(addr, 0x04, "stalled-minion").await;
    assert_eq!(answer, 0x02);
    for seq in 0..FRAMES {
        let mut frame = vec![0u8; FRAME_LEN];
        frame[..8].copy_from_slice(&(seq as u64).to_be_bytes());
        let frame = Bytes::from(frame);
        // Never blocks on the stalled subscriber.
        publisher
            .publish(frame.clone(), &Audience::All)
            .await
            .unwrap();
        assert_eq!(
            next(&*healthy.sub).await,
            Received::Frame(frame),
            "frame {seq}"
        );
    }
    // The healthy minion's requests were never held up either.
    assert_eq!(
        &ping(&*healthy.req, "still").await.unwrap()[..],
        b"re:still"
    );
    assert_stalled_dropped(&logs, &mut stalled, "healthy", FRAMES * (FRAME_LEN + 5)).await;
    healthy.close().await;
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_publisher_keeps_requests_served() {
    let t = TcpTransport::new();
    let (publisher, requests, addr) = shared_servers(&t, ServerOptions::new(loopback())).await;
    let minion = Minion::start(&t, quick(ClientOptions::new(addr, "m1"))).await;
    publisher.close().await.unwrap();
    assert!(matches!(
        next(&*minion.sub).await,
        Received::Disconnected { .. }
    ));
    // The minion reconnects; the address now serves requests only.
    assert_eq!(&ping(&*minion.req, "a").await.unwrap()[..], b"re:a");
    wait_for_connections(addr.port(), 1).await;
    // A new publisher on the address: the minion is subscribed again.
    let publisher = t.bind_publisher(ServerOptions::new(addr)).await.unwrap();
    assert_eq!(next(&*minion.sub).await, Received::Connected);
    publisher
        .publish(Bytes::from_static(b"back"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*minion.sub).await,
        Received::Frame(Bytes::from_static(b"back"))
    );
    assert_eq!(&ping(&*minion.req, "b").await.unwrap()[..], b"re:b");
    minion.close().await;
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
    std::net::TcpListener::bind(addr).expect("port released once both servers closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_request_server_keeps_publishing() {
    let t = TcpTransport::new();
    let (publisher, requests, addr) = shared_servers(&t, ServerOptions::new(loopback())).await;
    let minion = Minion::start(&t, quick(ClientOptions::new(addr, "m1"))).await;
    requests.close().await.unwrap();
    assert!(matches!(
        next(&*minion.sub).await,
        Received::Disconnected { .. }
    ));
    assert_eq!(next(&*minion.sub).await, Received::Connected);
    publisher
        .publish(Bytes::from_static(b"job"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*minion.sub).await,
        Received::Frame(Bytes::from_static(b"job"))
    );
    // Requests get a typed error saying nobody serves them here.
    let err = ping(&*minion.req, "x").await.unwrap_err();
    assert!(
        matches!(err, TransportError::ConnectionRefused { .. }),
        "{err}"
    );
    minion.close().await;
    publisher.close().await.unwrap();
    std::net::TcpListener::bind(addr).expect("port released once both servers closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_first_then_requesting_also_ends_with_one_connection() {
    let t = TcpTransport::new();
    let (publisher, requests, addr) = shared_servers(&t, ServerOptions::new(loopback())).await;
    let opts = quick(ClientOptions::new(addr, "m1"));
    let sub = t.subscribe(opts.clone()).await.unwrap();
    assert_eq!(next(&*sub).await, Received::Connected);
    let req = t.connect_requests(opts).await.unwrap();
    assert_eq!(&ping(&*req, "a").await.unwrap()[..], b"re:a");
    // The publish-only connection made way for a shared one.
    assert!(matches!(next(&*sub).await, Received::Disconnected { .. }));
    assert_eq!(next(&*sub).await, Received::Connected);
    publisher
        .publish(Bytes::from_static(b"job"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*sub).await,
        Received::Frame(Bytes::from_static(b"job"))
    );
    wait_for_connections(addr.port(), 1).await;
    sub.close().await.unwrap();
    req.close().await.unwrap();
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_limits_hold_on_the_shared_connection() {
    let t = TcpTransport::new();
    let mut server_opts = ServerOptions::new(loopback());
    server_opts.limits.max_frame_size = 1024;
    let (publisher, requests, addr) = shared_servers(&t, server_opts).await;
    // The two clients share although their limits differ.
    let req_opts = quick(ClientOptions::new(addr, "m1"));
    let req = t.connect_requests(req_opts.clone()).await.unwrap();
    let mut sub_opts = req_opts;
    sub_opts.limits.max_frame_size = 100;
    let sub = t.subscribe(sub_opts).await.unwrap();
    assert_eq!(next(&*sub).await, Received::Connected);

    let err = req
        .request(Bytes::from(vec![7u8; 2048]), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::FrameTooLarge { max: 1024, .. }),
        "{err}"
    );
    assert_eq!(&ping(&*req, "after").await.unwrap()[..], b"re:after");

    publisher
        .publish(Bytes::from(vec![1u8; 500]), &Audience::All)
        .await
        .unwrap();
    publisher
        .publish(Bytes::from_static(b"small"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*sub).await,
        Received::Frame(Bytes::from_static(b"small")),
        "the frame over the subscriber's limit is skipped"
    );
    wait_for_connections(addr.port(), 1).await;
    sub.close().await.unwrap();
    req.close().await.unwrap();
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_works_on_the_shared_connection() {
    let cert = Certificate::self_signed(&["brine-master"]);
    let t = TcpTransport::new();
    let mut server_opts = ServerOptions::new(loopback());
    server_opts.tls = Some(cert.server_tls());
    let (publisher, requests, addr) = shared_servers(&t, server_opts).await;
    let mut opts = quick(ClientOptions::new(addr, "m1"));
    opts.tls = Some(cert.client_tls());
    let minion = Minion::start(&t, opts).await;
    publisher
        .publish(Bytes::from_static(b"sealed"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*minion.sub).await,
        Received::Frame(Bytes::from_static(b"sealed"))
    );
    assert_eq!(&ping(&*minion.req, "x").await.unwrap()[..], b"re:x");
    wait_for_connections(addr.port(), 1).await;
    minion.close().await;
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
}

#[tokio::test]
async fn a_second_server_of_a_kind_or_other_tls_is_refused() {
    let t = TcpTransport::new();
    let (publisher, requests, addr) = shared_servers(&t, ServerOptions::new(loopback())).await;
    let err = t
        .bind_publisher(ServerOptions::new(addr))
        .await
        .unwrap_err();
    assert!(err.is_addr_in_use(), "{err}");
    let err = t
        .bind_requests(ServerOptions::new(addr), echo())
        .await
        .unwrap_err();
    assert!(err.is_addr_in_use(), "{err}");
    // Another transport value shares nothing: the port is simply taken.
    let err = TcpTransport::new()
        .bind_publisher(ServerOptions::new(addr))
        .await
        .unwrap_err();
    assert!(err.is_addr_in_use(), "{err}");

    requests.close().await.unwrap();
    let cert = Certificate::self_signed(&["brine-master"]);
    let mut tls = ServerOptions::new(addr);
    tls.tls = Some(cert.server_tls());
    let err = t.bind_requests(tls, echo()).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::InvalidOption { option, .. } if option == "tls"),
        "{err}"
    );
    publisher.close().await.unwrap();
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (a hang detector) until at most `baseline` tasks are alive.
async fn tasks_back_to(baseline: usize, after: &str) {
    let waited = tokio::time::timeout(LONG, async {
        while alive_tasks() > baseline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{after}: {} tasks alive, {baseline} before",
        alive_tasks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_or_dropping_everything_ends_every_task() {
    let baseline = alive_tasks();
    for close in [true, false] {
        let t = TcpTransport::new();
        let (publisher, requests, addr) = shared_servers(&t, ServerOptions::new(loopback())).await;
        let minion = Minion::start(&t, quick(ClientOptions::new(addr, "m1"))).await;
        publisher
            .publish(Bytes::from_static(b"job"), &Audience::All)
            .await
            .unwrap();
        assert_eq!(
            next(&*minion.sub).await,
            Received::Frame(Bytes::from_static(b"job"))
        );
        if close {
            minion.close().await;
            requests.close().await.unwrap();
            publisher.close().await.unwrap();
        } else {
            drop(minion);
            drop(requests);
            drop(publisher);
        }
        tasks_back_to(baseline, if close { "after close" } else { "after drop" }).await;
        wait_for_connections(addr.port(), 0).await;
        std::net::TcpListener::bind(addr).expect("port released");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_reconnects_after_both_servers_restart() {
    let t = TcpTransport::new();
    let (publisher, requests, addr) = shared_servers(&t, ServerOptions::new(loopback())).await;
    let minion = Minion::start(&t, quick(ClientOptions::new(addr, "m1"))).await;
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
    assert!(matches!(
        next(&*minion.sub).await,
        Received::Disconnected { .. }
    ));
    // The master comes back on the same address.
    let (publisher, requests, _) = shared_servers(&t, ServerOptions::new(addr)).await;
    assert_eq!(next(&*minion.sub).await, Received::Connected);
    assert_eq!(&ping(&*minion.req, "again").await.unwrap()[..], b"re:again");
    publisher
        .publish(Bytes::from_static(b"job"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*minion.sub).await,
        Received::Frame(Bytes::from_static(b"job"))
    );
    wait_for_connections(addr.port(), 1).await;
    minion.close().await;
    publisher.close().await.unwrap();
    requests.close().await.unwrap();
}
