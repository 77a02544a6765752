//! The request channel against stand-ins for stock Salt peers (the zeromq
//! crate's REQ, DEALER and a ROUTER → DEALER → REP "master"), and Brine's
//! own DEALER client.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::{sync::Arc, time::Duration};

use brine_transport_api::{ClientOptions, ServerOptions, TransportError, handler_fn};
use bytes::Bytes;
use support::{PATIENCE, echo_server, endpoint, loopback, transport};
use tokio::sync::{Barrier, watch};
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

/// Salt's "bad load" as msgpack: the body of every refusal.
const BAD_LOAD: &[u8] = b"\xa8bad load";

async fn recv(socket: &mut impl SocketRecv) -> Vec<Bytes> {
    tokio::time::timeout(PATIENCE, socket.recv())
        .await
        .expect("no reply in time")
        .expect("recv failed")
        .into_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_req_client_gets_exactly_one_frame_per_request() {
    let t = transport(false);
    let server = echo_server(&*t, ServerOptions::new(loopback())).await;
    let mut req = zeromq::ReqSocket::new();
    req.connect(&endpoint(server.local_addr())).await.unwrap();
    for load in ["first", "second"] {
        // REQ is lock-step: the second send fails unless the first got its reply.
        req.send(ZmqMessage::from(load)).await.unwrap();
        let reply = recv(&mut req).await;
        assert_eq!(reply, vec![Bytes::from(format!("re:{load}"))]);
    }
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_learns_the_clients_address() {
    let t = transport(false);
    let handler = handler_fn(|_, peer: brine_transport_api::Peer| async move {
        Bytes::from(peer.addr.map(|a| a.ip().to_string()).unwrap_or_default())
    });
    let server = t
        .bind_requests(ServerOptions::new(loopback()), handler)
        .await
        .unwrap();
    let client = t
        .connect_requests(ClientOptions::new(server.local_addr(), "minion"))
        .await
        .unwrap();
    let reply = client.request(Bytes::from_static(b"who"), PATIENCE).await;
    assert_eq!(reply.unwrap(), Bytes::from_static(b"127.0.0.1"));
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_req_over_the_limit_gets_one_bad_load_frame() {
    let t = transport(false);
    let mut opts = ServerOptions::new(loopback());
    opts.limits.max_frame_size = 1024;
    let server = echo_server(&*t, opts).await;
    let mut req = zeromq::ReqSocket::new();
    req.connect(&endpoint(server.local_addr())).await.unwrap();
    req.send(ZmqMessage::from(vec![0u8; 4096])).await.unwrap();
    assert_eq!(recv(&mut req).await, vec![Bytes::from_static(BAD_LOAD)]);
    // The same connection goes on being served.
    req.send(ZmqMessage::from("small")).await.unwrap();
    assert_eq!(recv(&mut req).await, vec![Bytes::from_static(b"re:small")]);
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brine_client_maps_the_servers_refusal_to_frame_too_large() {
    let t = transport(false);
    let mut opts = ServerOptions::new(loopback());
    opts.limits.max_frame_size = 1024;
    let server = echo_server(&*t, opts).await;
    let client = t
        .connect_requests(ClientOptions::new(server.local_addr(), "minion"))
        .await
        .unwrap();
    let err = client
        .request(Bytes::from(vec![1u8; 5000]), PATIENCE)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::FrameTooLarge {
                len: 5000,
                max: 1024,
                ..
            }
        ),
        "{err:?}"
    );
    let reply = client.request(Bytes::from_static(b"ok"), PATIENCE).await;
    assert_eq!(reply.unwrap(), Bytes::from_static(b"re:ok"));
    // Over the client's own limit: refused before sending.
    let mut opts = ClientOptions::new(server.local_addr(), "minion");
    opts.limits.max_frame_size = 10;
    let small = t.connect_requests(opts).await.unwrap();
    let err = small.request(Bytes::from(vec![0u8; 11]), PATIENCE).await;
    assert!(matches!(
        err,
        Err(TransportError::FrameTooLarge {
            len: 11,
            max: 10,
            ..
        })
    ));
    client.close().await.unwrap();
    small.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_answered_out_of_order_reach_their_own_requests() {
    const N: u8 = 8;
    let t = transport(false);
    // Every handler waits until all N are in flight, then they finish in
    // reverse order of their request number.
    let all_in = Arc::new(Barrier::new(usize::from(N)));
    let (turn_tx, turn) = watch::channel(N - 1);
    let turn_tx = Arc::new(turn_tx);
    let handler = handler_fn(move |frame: Bytes, _| {
        let all_in = Arc::clone(&all_in);
        let mut turn = turn.clone();
        let turn_tx = Arc::clone(&turn_tx);
        async move {
            let n = frame[0];
            all_in.wait().await;
            turn.wait_for(|&t| t == n).await.unwrap();
            turn_tx.send_replace(n.saturating_sub(1));
            Bytes::from(vec![n, n])
        }
    });
    let server = t
        .bind_requests(ServerOptions::new(loopback()), handler)
        .await
        .unwrap();
    let client = t
        .connect_requests(ClientOptions::new(server.local_addr(), "minion"))
        .await
        .unwrap();
    let requests = (0..N).map(|n| client.request(Bytes::from(vec![n]), PATIENCE));
    let replies = futures_util::future::join_all(requests).await;
    for (n, reply) in (0..N).zip(replies) {
        assert_eq!(reply.unwrap(), Bytes::from(vec![n, n]));
    }
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reply_is_discarded_not_given_to_the_next_request() {
    let t = transport(false);
    let (release_tx, release) = watch::channel(false);
    let handler = handler_fn(move |frame: Bytes, _| {
        let mut release = release.clone();
        async move {
            if &frame[..] == b"slow" {
                release.wait_for(|&go| go).await.unwrap();
            }
            frame
        }
    });
    let server = t
        .bind_requests(ServerOptions::new(loopback()), handler)
        .await
        .unwrap();
    let client = t
        .connect_requests(ClientOptions::new(server.local_addr(), "minion"))
        .await
        .unwrap();
    let err = client
        .request(Bytes::from_static(b"slow"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err:?}");
    release_tx.send_replace(true); // the late reply goes out now
    for _ in 0..3 {
        let reply = client.request(Bytes::from_static(b"fast"), PATIENCE).await;
        assert_eq!(reply.unwrap(), Bytes::from_static(b"fast"));
    }
    client.close().await.unwrap();
    assert!(matches!(
        client.request(Bytes::from_static(b"x"), PATIENCE).await,
        Err(TransportError::Closed)
    ));
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_refused_and_the_server_keeps_serving() {
    let t = transport(false);
    let server = echo_server(&*t, ServerOptions::new(loopback())).await;
    let mut dealer = zeromq::DealerSocket::new();
    dealer
        .connect(&endpoint(server.local_addr()))
        .await
        .unwrap();
    // No delimiter: no envelope to answer, so no reply.
    dealer.send(ZmqMessage::from("no delimiter")).await.unwrap();
    // Two body frames: refused with one reply.
    let two_bodies = vec![
        Bytes::new(),
        Bytes::from_static(b"a"),
        Bytes::from_static(b"b"),
    ];
    dealer
        .send(ZmqMessage::try_from(two_bodies).unwrap())
        .await
        .unwrap();
    assert_eq!(
        recv(&mut dealer).await,
        vec![Bytes::new(), Bytes::from_static(BAD_LOAD)]
    );
    // A well-formed request on the same connection is served.
    let good = vec![Bytes::new(), Bytes::from_static(b"good")];
    dealer
        .send(ZmqMessage::try_from(good).unwrap())
        .await
        .unwrap();
    assert_eq!(
        recv(&mut dealer).await,
        vec![Bytes::new(), Bytes::from_static(b"re:good")]
    );
    let client = t
        .connect_requests(ClientOptions::new(server.local_addr(), "minion"))
        .await
        .unwrap();
    let reply = client.request(Bytes::from_static(b"x"), PATIENCE).await;
    assert_eq!(reply.unwrap(), Bytes::from_static(b"re:x"));
    client.close().await.unwrap();
    server.close().await.unwrap();
}

/// Salt's master: a ROUTER, a DEALER device and REP workers. The Brine
/// client's `[request-id, b"", body]` envelope survives the trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brine_client_works_against_a_salt_style_router_dealer_rep_master() {
    let mut frontend = zeromq::RouterSocket::new();
    let front = frontend.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut backend = zeromq::DealerSocket::new();
    let back = backend.bind("tcp://127.0.0.1:0").await.unwrap();
    // Salt's `zmq.device(QUEUE)`: shuttle messages both ways unchanged.
    let device = tokio::spawn(async move {
        loop {
            tokio::select! {
                m = frontend.recv() => backend.send(m.unwrap()).await.unwrap(),
                m = backend.recv() => frontend.send(m.unwrap()).await.unwrap(),
            }
        }
    });
    let mut worker = zeromq::RepSocket::new();
    worker.connect(&back.to_string()).await.unwrap();
    let worker = tokio::spawn(async move {
        loop {
            let request = worker.recv().await.unwrap().into_vec();
            assert_eq!(request.len(), 1, "REP hands the worker the body only");
            let mut reply = b"re:".to_vec();
            reply.extend_from_slice(&request[0]);
            worker.send(ZmqMessage::from(reply)).await.unwrap();
        }
    });
    let zeromq::Endpoint::Tcp(_, port) = front else {
        panic!("not tcp")
    };
    let t = transport(false);
    let client = t
        .connect_requests(ClientOptions::new(([127, 0, 0, 1], port).into(), "minion"))
        .await
        .unwrap();
    let replies = futures_util::future::join_all(
        (0..4u8).map(|n| client.request(Bytes::from(vec![b'0' + n]), PATIENCE)),
    )
    .await;
    for (n, reply) in (0..4u8).zip(replies) {
        assert_eq!(
            reply.unwrap(),
            Bytes::from(vec![b'r', b'e', b':', b'0' + n])
        );
    }
    client.close().await.unwrap();
    worker.abort();
    device.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_while_the_server_is_down_times_out_then_reconnects() {
    let t = transport(false);
    let server = echo_server(&*t, ServerOptions::new(loopback())).await;
    let addr = server.local_addr();
    let mut opts = ClientOptions::new(addr, "minion");
    opts.backoff.initial = Duration::from_millis(20);
    opts.backoff.max = Duration::from_millis(200);
    let client = t.connect_requests(opts).await.unwrap();
    assert!(
        client
            .request(Bytes::from_static(b"a"), PATIENCE)
            .await
            .is_ok()
    );
    server.close().await.unwrap();
    let err = client
        .request(Bytes::from_static(b"b"), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let server = echo_server(&*t, ServerOptions::new(addr)).await;
    let reply = tokio::time::timeout(PATIENCE, async {
        loop {
            match client
                .request(Bytes::from_static(b"c"), Duration::from_secs(2))
                .await
            {
                Ok(reply) => return reply,
                Err(err) => assert!(err.is_retryable(), "{err:?}"),
            }
        }
    })
    .await
    .expect("no reconnect");
    assert_eq!(reply, Bytes::from_static(b"re:c"));
    client.close().await.unwrap();
    server.close().await.unwrap();
}
