//! The UDP sockets under quinn's endpoints, with room for bursts.
//!
//! One socket carries every connection of an endpoint, so ten thousand
//! minions connecting at once (a master restart) land ~12 MB of Initial
//! packets on it within a second. With Linux's default 208 KiB receive
//! buffer most are dropped and each client waits out a retransmission
//! timeout; measured: 7.7 million receive-buffer drops and 70 s to sign in
//! 10,000 minions. The buffers asked for here are capped by the kernel
//! (`net.core.rmem_max` / `wmem_max`); a smaller grant is logged, not an
//! error.

use std::{io, net::SocketAddr};

/// Receive and send buffer asked for on every endpoint socket.
pub(crate) const BUFFER_BYTES: usize = 4 << 20;

/// A quinn endpoint on a fresh socket bound to `addr` (a server when
/// `server` is given).
pub(crate) fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    let socket = bind(addr)?;
    let runtime =
        quinn::default_runtime().ok_or_else(|| io::Error::other("no async runtime to run on"))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)
}

fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let asked = BUFFER_BYTES;
    // best effort: a small buffer costs speed under bursts, not correctness
    let _ = socket.set_recv_buffer_size(asked);
    let _ = socket.set_send_buffer_size(asked);
    // Linux reports twice what it grants (bookkeeping overhead included)
    let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    if granted < asked {
        tracing::debug!(
            %addr,
            asked,
            granted,
            "UDP receive buffer capped by the kernel (net.core.rmem_max)"
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_bind_with_larger_buffers() {
        let endpoint = endpoint((std::net::Ipv4Addr::LOCALHOST, 0).into(), None).unwrap();
        assert_ne!(endpoint.local_addr().unwrap().port(), 0);
        let default = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .unwrap()
            .recv_buffer_size()
            .unwrap();
        let ours = bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
            .map(socket2::Socket::from)
            .unwrap()
            .recv_buffer_size()
            .unwrap();
        assert!(ours >= default, "{ours} < default {default}");
    }
}
