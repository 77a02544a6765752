//! Many requests on one client's request stream: replies out of order,
//! late replies, oversized requests among normal ones, and what waiting
//! requests see when the server goes away.

mod support;

use std::{sync::Arc, time::Duration};

use brine_transport_api::{
    Audience, Received, RequestClient, RequestHandler, RequestServer, Transport, TransportError,
    handler_fn,
};
use bytes::Bytes;
use support::*;
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};

/// Long enough never to be what ends a request in these tests.
const NEVER: Duration = Duration::from_secs(600);

struct Setup {
    t: Arc<dyn Transport>,
    server: Box<dyn RequestServer>,
    client: Arc<dyn RequestClient>,
    _dir: tempfile::TempDir,
}

async fn setup(handler: Arc<dyn RequestHandler>) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let master = dir.path().join("master");
    let t = transport();
    let server = t
        .bind_requests(server_opts(loopback(), &master), handler)
        .await
        .expect("bind");
    let client = t
        .connect_requests(client_opts_ca(
            server.local_addr(),
            "m",
            &cert_path(&master),
        ))
        .await
        .expect("connect");
    Setup {
        t,
        server,
        client: client.into(),
        _dir: dir,
    }
}

/// Requests `0..n` (a u32 each) from one client at once; each must get its
/// own reply (`re:` + the request).
async fn all_at_once(client: &Arc<dyn RequestClient>, n: u32) {
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let client = client.clone();
        tasks.spawn(async move {
            let body = Bytes::copy_from_slice(&i.to_be_bytes());
            let reply = client
                .request(body.clone(), STEP)
                .await
                .unwrap_or_else(|err| panic!("request {i}: {err}"));
            assert_eq!(
                reply.get(3..),
                Some(&body[..]),
                "request {i} got another's reply"
            );
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("request task");
    }
}

/// Handlers finish in the reverse order of the requests, strictly: each
/// waits until every later request has been answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_in_reverse_order_reach_their_own_requests() {
    const N: u32 = 16;
    let (answered_tx, answered) = watch::channel(0u32);
    let answered_tx = Arc::new(answered_tx);
    let handler = handler_fn(move |frame: Bytes, _| {
        let mut answered = answered.clone();
        let answered_tx = answered_tx.clone();
        async move {
            let i = u32::from_be_bytes(frame[..4].try_into().unwrap());
            let _ = answered.wait_for(|done| *done == N - 1 - i).await;
            answered_tx.send_modify(|done| *done += 1);
            echo_reply(&frame)
        }
    });
    let s = setup(handler).await;
    all_at_once(&s.client, N).await;
    s.client.close().await.unwrap();
    s.server.close().await.unwrap();
}

/// Each handler sleeps for a time the request names, so replies come back
/// interleaved; every request still gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_with_varied_handler_delays_get_their_own_replies() {
    let handler = handler_fn(|frame: Bytes, _| async move {
        let i = u32::from_be_bytes(frame[..4].try_into().unwrap());
        tokio::time::sleep(Duration::from_millis(u64::from(i * 37 % 50))).await;
        echo_reply(&frame)
    });
    let s = setup(handler).await;
    all_at_once(&s.client, 300).await;
    s.client.close().await.unwrap();
    s.server.close().await.unwrap();
}

/// A request that timed out is forgotten: its reply, sent later, reaches
/// neither the next request nor any after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reply_is_dropped_not_given_to_a_later_request() {
    let (release_tx, release) = watch::channel(false);
    let (slow_done_tx, slow_done) = watch::channel(false);
    let slow_done_tx = Arc::new(slow_done_tx);
    let handler = handler_fn(move |frame: Bytes, _| {
        let mut release = release.clone();
        let mut slow_done = slow_done.clone();
        let slow_done_tx = slow_done_tx.clone();
        async move {
            match &frame[..] {
                b"slow" => {
                    let _ = release.wait_for(|r| *r).await;
                    slow_done_tx.send_replace(true);
                }
                // Answers only once the slow request has been answered, so
                // the late reply is on the stream first.
                b"next" => {
                    let _ = slow_done.wait_for(|d| *d).await;
                }
                _ => {}
            }
            frame
        }
    });
    let s = setup(handler).await;
    let err = s
        .client
        .request(Bytes::from_static(b"slow"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");

    let client = s.client.clone();
    let next = tokio::spawn(async move { client.request(Bytes::from_static(b"next"), STEP).await });
    release_tx.send_replace(true);
    let reply = next.await.unwrap().unwrap();
    assert_eq!(
        &reply[..],
        b"next",
        "the late reply reached the next request"
    );
    for i in 0..20u32 {
        let body = Bytes::copy_from_slice(&i.to_be_bytes());
        let reply = s.client.request(body.clone(), STEP).await.unwrap();
        assert_eq!(reply, body);
    }
    s.client.close().await.unwrap();
    s.server.close().await.unwrap();
}

/// An oversized request in flight among normal ones on the same client
/// (so on the same stream) is refused by itself; the others are answered,
/// and so are later ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_among_normal_ones_on_one_client() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let mut opts = server_opts(loopback(), &master);
    opts.limits.max_frame_size = 64 * 1024;
    let server = t.bind_requests(opts, echo()).await.unwrap();
    let client: Arc<dyn RequestClient> = t
        .connect_requests(client_opts_ca(
            server.local_addr(),
            "m",
            &cert_path(&master),
        ))
        .await
        .unwrap()
        .into();

    let mut tasks = JoinSet::new();
    for i in 0..50u32 {
        let client = client.clone();
        tasks.spawn(async move {
            if i == 10 {
                let huge = Bytes::from(vec![7u8; 4 * 1024 * 1024]);
                match client.request(huge, STEP).await {
                    Err(TransportError::FrameTooLarge { len, max, .. }) => {
                        assert_eq!((len, max), (4 * 1024 * 1024, 64 * 1024));
                    }
                    other => panic!("expected FrameTooLarge, got {other:?}"),
                }
            } else {
                let body = Bytes::copy_from_slice(&i.to_be_bytes());
                let reply = client.request(body.clone(), STEP).await.unwrap();
                assert_eq!(&reply[3..], &body[..], "request {i} got another's reply");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let reply = client
        .request(Bytes::from(vec![1u8; 60 * 1024]), STEP)
        .await
        .unwrap();
    assert_eq!(reply.len(), 60 * 1024 + 3);
    client.close().await.unwrap();
    server.close().await.unwrap();
}

/// A handler that never answers, and tells when it has been called.
fn black_hole() -> (Arc<dyn RequestHandler>, mpsc::Receiver<()>) {
    let (entered_tx, entered) = mpsc::channel(100);
    let handler = handler_fn(move |frame: Bytes, _| {
        let entered_tx = entered_tx.clone();
        async move {
            if &frame[..] == b"hang" {
                let _ = entered_tx.send(()).await;
                std::future::pending::<()>().await;
            }
            frame
        }
    });
    (handler, entered)
}

/// Starts `n` requests that hang in the handler; returns once all are in it.
async fn hang(
    client: &Arc<dyn RequestClient>,
    entered: &mut mpsc::Receiver<()>,
    n: usize,
) -> JoinSet<Result<Bytes, TransportError>> {
    let mut waiting = JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        waiting.spawn(async move { client.request(Bytes::from_static(b"hang"), NEVER).await });
    }
    for _ in 0..n {
        tokio::time::timeout(STEP, entered.recv())
            .await
            .expect("requests reach the handler")
            .expect("the handler lives");
    }
    waiting
}

/// Every result of `waiting`, failing the test if one is still pending
/// after [`STEP`] (their own timeout is ten minutes).
async fn results(
    mut waiting: JoinSet<Result<Bytes, TransportError>>,
) -> Vec<Result<Bytes, TransportError>> {
    let mut out = Vec::new();
    while let Some(done) = tokio::time::timeout(STEP, waiting.join_next())
        .await
        .expect("a waiting request hung on")
    {
        out.push(done.expect("request task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_fail_at_once_when_the_server_closes() {
    let (handler, mut entered) = black_hole();
    let s = setup(handler).await;
    let waiting = hang(&s.client, &mut entered, 10).await;
    s.server.close().await.unwrap();
    for result in results(waiting).await {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::ConnectionLost { .. } | TransportError::ConnectionRefused { .. }
            ),
            "expected a lost connection, got {err:?}"
        );
        assert!(err.is_retryable(), "{err}");
    }
    s.client.close().await.unwrap();
    drop(s.t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_fail_with_closed_when_the_client_closes() {
    let (handler, mut entered) = black_hole();
    let s = setup(handler).await;
    let waiting = hang(&s.client, &mut entered, 5).await;
    s.client.close().await.unwrap();
    for result in results(waiting).await {
        let err = result.unwrap_err();
        assert!(matches!(err, TransportError::Closed), "{err:?}");
    }
    s.server.close().await.unwrap();
}

/// A request server that closes while a publish server keeps the shared
/// endpoint up: requests waiting on it and new ones are refused, the
/// subscription carries on, and a request server bound there again
/// serves the same client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_request_server_alone_refuses_requests_on_the_shared_connection() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();
    let publisher = t
        .bind_publisher(server_opts(loopback(), &master))
        .await
        .unwrap();
    let addr = publisher.local_addr();
    let (handler, mut entered) = black_hole();
    let requests = t
        .bind_requests(server_opts(addr, &master), handler)
        .await
        .unwrap();
    let opts = client_opts_ca(addr, "m", &cert_path(&master));
    let sub = t.subscribe(opts.clone()).await.unwrap();
    let client: Arc<dyn RequestClient> = t.connect_requests(opts).await.unwrap().into();
    connected(&*sub).await;
    assert_eq!(
        &client
            .request(Bytes::from_static(b"hi"), STEP)
            .await
            .unwrap()[..],
        b"hi"
    );

    let waiting = hang(&client, &mut entered, 3).await;
    requests.close().await.unwrap();
    for result in results(waiting).await {
        let err = result.unwrap_err();
        assert!(
            matches!(err, TransportError::ConnectionRefused { .. }),
            "{err:?}"
        );
    }
    let err = client
        .request(Bytes::from_static(b"anyone?"), STEP)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::ConnectionRefused { .. }),
        "{err:?}"
    );

    publisher
        .publish(Bytes::from_static(b"job"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*sub).await,
        Received::Frame(Bytes::from_static(b"job"))
    );

    let requests = t
        .bind_requests(server_opts(addr, &master), echo())
        .await
        .unwrap();
    assert_echoes(&*client, b"back").await;

    client.close().await.unwrap();
    sub.close().await.unwrap();
    requests.close().await.unwrap();
    publisher.close().await.unwrap();
}
