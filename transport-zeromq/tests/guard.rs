//! Hostile clients on raw TCP: the relay in front of the zeromq sockets
//! keeps oversized frames and floods away from the crate's decoder.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::{net::SocketAddr, time::Duration};

use brine_transport_api::{Audience, ClientOptions, ServerOptions};
use bytes::Bytes;
use support::{PATIENCE, echo_server, expect_connected, loopback, subscribe, transport, warm_up};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A ZMTP 3.0 NULL greeting.
fn greeting() -> Vec<u8> {
    let mut greeting = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0];
    greeting.extend_from_slice(b"NULL");
    greeting.resize(64, 0);
    greeting
}

/// A READY command for `socket_type`.
fn ready(socket_type: &str) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&u32::try_from(socket_type.len()).unwrap().to_be_bytes());
    body.extend_from_slice(socket_type.as_bytes());
    let mut frame = vec![0x04, u8::try_from(body.len()).unwrap()];
    frame.extend_from_slice(&body);
    frame
}

/// Connects and completes the handshake as `socket_type`.
async fn handshake(addr: SocketAddr, socket_type: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&greeting()).await.unwrap();
    stream.write_all(&ready(socket_type)).await.unwrap();
    let mut theirs = [0u8; 64];
    stream.read_exact(&mut theirs).await.unwrap();
    assert_eq!(theirs[0], 0xFF, "a zmtp greeting");
    stream
}

/// Reads until the server closes the connection.
async fn expect_closed(mut stream: TcpStream) {
    let mut sink = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server kept a hostile connection open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_announced_length_neither_allocates_nor_stops_the_server() {
    let t = transport(false);
    let server = echo_server(&*t, ServerOptions::new(loopback())).await;
    let mut attacker = handshake(server.local_addr(), "DEALER").await;
    // [b"", <2^50-byte frame>]: the crate alone would reserve 1 PiB and abort.
    let mut message = vec![0x01, 0x00, 0x02];
    message.extend_from_slice(&(1u64 << 50).to_be_bytes());
    attacker.write_all(&message).await.unwrap();
    attacker.write_all(&[0u8; 64 * 1024]).await.unwrap();
    let client = t
        .connect_requests(ClientOptions::new(server.local_addr(), "minion"))
        .await
        .unwrap();
    let reply = client
        .request(Bytes::from_static(b"still here"), PATIENCE)
        .await;
    assert_eq!(reply.unwrap(), Bytes::from_static(b"re:still here"));
    drop(attacker);
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_multipart_message_is_cut_off() {
    let t = transport(false);
    let server = echo_server(&*t, ServerOptions::new(loopback())).await;
    let mut attacker = handshake(server.local_addr(), "DEALER").await;
    let frames: Vec<u8> = std::iter::repeat_n([0x01u8, 0x01, b'x'], 10_000)
        .flatten()
        .collect();
    // The server may close while this is being written.
    let _ = attacker.write_all(&frames).await;
    expect_closed(attacker).await;
    let client = t
        .connect_requests(ClientOptions::new(server.local_addr(), "minion"))
        .await
        .unwrap();
    let reply = client.request(Bytes::from_static(b"ok"), PATIENCE).await;
    assert_eq!(reply.unwrap(), Bytes::from_static(b"re:ok"));
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_flood_is_cut_off_and_others_keep_receiving() {
    let t = transport(false);
    let server = t
        .bind_publisher(ServerOptions::new(loopback()))
        .await
        .unwrap();
    let honest = subscribe(&*t, server.local_addr(), "honest").await;
    expect_connected(&*honest).await;
    let mut attacker = handshake(server.local_addr(), "SUB").await;
    let flood: Vec<u8> = std::iter::repeat_n([0x00u8, 0x02, 0x01, b'a'], 5_000)
        .flatten()
        .collect();
    let _ = attacker.write_all(&flood).await;
    expect_closed(attacker).await;
    let mut oversized = handshake(server.local_addr(), "SUB").await;
    let mut huge = vec![0x02];
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let _ = oversized.write_all(&huge).await;
    expect_closed(oversized).await;
    warm_up(&*server, &*honest, b"still publishing").await;
    server
        .publish(Bytes::from_static(b"done"), &Audience::All)
        .await
        .unwrap();
    honest.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_does_not_block_others() {
    let t = transport(false);
    let server = echo_server(&*t, ServerOptions::new(loopback())).await;
    let silent = TcpStream::connect(server.local_addr()).await.unwrap();
    let client = t
        .connect_requests(ClientOptions::new(server.local_addr(), "minion"))
        .await
        .unwrap();
    let reply = client
        .request(Bytes::from_static(b"hi"), Duration::from_secs(10))
        .await;
    assert_eq!(reply.unwrap(), Bytes::from_static(b"re:hi"));
    drop(silent);
    client.close().await.unwrap();
    server.close().await.unwrap();
}
