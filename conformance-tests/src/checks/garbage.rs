//! Hostile bytes on the servers' ports.

use std::{net::SocketAddr, time::Duration};

use brine_transport_api::Audience;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpSocket, TcpStream, UdpSocket},
};

use super::request::{echo_handler, echo_once};
use super::support::{
    DATA, ctx, loopback, next_frame, pattern, tagged, wait_connected, warm_up_one,
};
use crate::{CheckResult, Harness, Outcome};

/// How long one junk connection may take to connect or write before the
/// check moves on (a server may stop reading junk; that is its right).
const JUNK_IO: Duration = Duration::from_secs(2);

/// What a junk TCP connection sends.
fn tcp_junk() -> Vec<(&'static str, Vec<u8>)> {
    let mut huge_prefix = u32::MAX.to_be_bytes().to_vec();
    huge_prefix.extend_from_slice(&pattern(64, 1));
    let mut truncated = 1000u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(&pattern(10, 2));
    vec![
        ("random bytes", pattern(4096, 3).to_vec()),
        ("a huge length prefix", huge_prefix),
        ("a truncated frame", truncated),
        ("a lone byte", vec![0xff]),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
    ]
}

/// Datagrams for UDP-based backends: random, empty, and shaped like QUIC
/// long-header packets with nonsense inside.
fn udp_junk() -> Vec<Vec<u8>> {
    let mut quic_initial = vec![0xc0, 0, 0, 0, 1, 8];
    quic_initial.extend_from_slice(&pattern(1200, 4));
    let mut quic_bad_version = vec![0xc0, 0xba, 0xba, 0xba, 0xba];
    quic_bad_version.extend_from_slice(&pattern(1200, 5));
    vec![
        Vec::new(),
        vec![0],
        pattern(100, 6).to_vec(),
        pattern(1500, 7).to_vec(),
        quic_initial,
        quic_bad_version,
    ]
}

/// Sends every kind of junk to `addr`; returns the connections left open
/// (idle, half-sent) so the server must serve others while they hang there.
async fn throw_junk(addr: SocketAddr) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for (what, bytes) in tcp_junk() {
        // Sent and closed.
        if let Ok(Ok(mut stream)) = tokio::time::timeout(JUNK_IO, TcpStream::connect(addr)).await {
            let _ = tokio::time::timeout(JUNK_IO, stream.write_all(&bytes)).await;
            tracing::trace!(%addr, what, "junk sent");
        }
        // Sent and left open.
        if let Ok(Ok(mut stream)) = tokio::time::timeout(JUNK_IO, TcpStream::connect(addr)).await {
            let _ = tokio::time::timeout(JUNK_IO, stream.write_all(&bytes)).await;
            held.push(stream);
        }
    }
    // Connected and reset at once (SO_LINGER 0: an RST, not a FIN).
    if let Ok(socket) = TcpSocket::new_v4()
        && let Ok(Ok(stream)) = tokio::time::timeout(JUNK_IO, socket.connect(addr)).await
    {
        let _ = stream.set_zero_linger();
        drop(stream);
    }
    // Connected and silent.
    if let Ok(Ok(stream)) = tokio::time::timeout(JUNK_IO, TcpStream::connect(addr)).await {
        held.push(stream);
    }
    if let Ok(udp) = UdpSocket::bind(loopback()).await {
        for datagram in udp_junk() {
            // Nobody may listen on UDP here; a refused send is fine.
            let _ = udp.send_to(&datagram, addr).await;
        }
    }
    held
}

/// 10. Junk on the request and publish ports (random bytes, a huge length
///     prefix, truncated frames, resets, silent connections, junk UDP
///     datagrams) neither crashes nor wedges the servers: clients old and
///     new are still answered and subscribers old and new still get frames.
pub async fn garbage_does_not_crash_or_wedge_server(h: &dyn Harness) -> CheckResult {
    if !h.binds_os_sockets() {
        return Ok(Outcome::Skipped(
            "the harness says its addresses are not OS sockets, so raw junk cannot reach them"
                .to_owned(),
        ));
    }
    let t = h.transport();
    let requests = t
        .bind_requests(h.server_options(loopback()), echo_handler())
        .await
        .map_err(ctx("bind request server"))?;
    let publisher = t
        .bind_publisher(h.server_options(loopback()))
        .await
        .map_err(ctx("bind publisher"))?;
    let old_client = t
        .connect_requests(h.client_options(requests.local_addr(), "minion-old"))
        .await
        .map_err(ctx("connect request client"))?;
    let old_sub = t
        .subscribe(h.client_options(publisher.local_addr(), "minion-old"))
        .await
        .map_err(ctx("subscribe"))?;
    echo_once(&*old_client, b"before the junk").await?;
    wait_connected(&*old_sub, "subscriber").await?;
    warm_up_one(&*publisher, &*old_sub, "subscriber").await?;

    let mut held = throw_junk(requests.local_addr()).await;
    held.extend(throw_junk(publisher.local_addr()).await);

    echo_once(&*old_client, b"after the junk")
        .await
        .map_err(|why| format!("existing client after junk: {why}"))?;
    let new_client = t
        .connect_requests(h.client_options(requests.local_addr(), "minion-new"))
        .await
        .map_err(ctx("connect request client after junk"))?;
    echo_once(&*new_client, b"new after the junk")
        .await
        .map_err(|why| format!("new client after junk: {why}"))?;

    let new_sub = t
        .subscribe(h.client_options(publisher.local_addr(), "minion-new"))
        .await
        .map_err(ctx("subscribe after junk"))?;
    wait_connected(&*new_sub, "subscriber connecting after junk").await?;
    warm_up_one(&*publisher, &*new_sub, "subscriber connecting after junk").await?;
    let frame = tagged(DATA, 1, 64);
    publisher
        .publish(frame.clone(), &Audience::All)
        .await
        .map_err(ctx("publish after junk"))?;
    for (who, sub) in [
        ("existing subscriber after junk", &old_sub),
        ("new subscriber after junk", &new_sub),
    ] {
        if next_frame(&**sub, who).await? != frame {
            return Err(format!("{who}: the frame arrived damaged"));
        }
    }
    drop(held);
    for client in [&old_client, &new_client] {
        client.close().await.map_err(ctx("close client"))?;
    }
    for sub in [&old_sub, &new_sub] {
        sub.close().await.map_err(ctx("close subscriber"))?;
    }
    requests
        .close()
        .await
        .map_err(ctx("close request server"))?;
    publisher.close().await.map_err(ctx("close publisher"))?;
    Ok(Outcome::Passed)
}
