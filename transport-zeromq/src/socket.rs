//! Glue to the `zeromq` crate: binding, endpoints, identities, messages.

use std::{net::SocketAddr, time::Duration};

use brine_transport_api::TransportError;
use bytes::Bytes;
use tokio::net::TcpSocket;
use zeromq::{SocketOptions, ZmqMessage};

/// Pending connections the listening socket queues (Salt's `zmq_backlog`).
const BACKLOG: u32 = 1000;

/// Binds a TCP listener on `addr` (address reuse on, Salt's backlog) for a
/// zeromq socket to adopt, so bind errors keep their `io::Error` and
/// `local_addr` is known.
///
/// # Errors
/// [`TransportError::Bind`] when the address cannot be bound.
pub(crate) fn bind_listener(
    addr: SocketAddr,
) -> Result<(std::net::TcpListener, SocketAddr), TransportError> {
    let bind_err = |source| TransportError::Bind {
        addr: addr.to_string(),
        source,
    };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(bind_err)?;
    socket.set_reuseaddr(true).map_err(bind_err)?;
    socket.bind(addr).map_err(bind_err)?;
    let listener = socket.listen(BACKLOG).map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let listener = listener.into_std().map_err(bind_err)?;
    Ok((listener, local))
}

/// The zeromq endpoint string of a TCP address (`tcp://[::1]:4506` for v6).
pub(crate) fn endpoint(addr: SocketAddr) -> String {
    format!("tcp://{addr}")
}

/// Socket options for a connecting end: its connect timeout and, when it
/// fits ZeroMQ's 1–255 bytes, `identity` as the socket identity.
pub(crate) fn client_options(connect_timeout: Duration, identity: &str) -> SocketOptions {
    let mut options = SocketOptions::default();
    options.connect_timeout(connect_timeout);
    if !identity.is_empty() {
        match zeromq::util::PeerIdentity::try_from(identity.as_bytes()) {
            Ok(id) => {
                options.peer_identity(id);
            }
            Err(_) => tracing::warn!(
                len = identity.len(),
                "identity longer than zeromq's 255 bytes; connecting without one"
            ),
        }
    }
    options
}

/// A multipart message from frames; `None` for no frames.
pub(crate) fn message(frames: Vec<Bytes>) -> Option<ZmqMessage> {
    ZmqMessage::try_from(frames).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_for_v4_and_v6() {
        for (addr, host) in [
            ("127.0.0.1:4506", zeromq::Host::Ipv4([127, 0, 0, 1].into())),
            (
                "[::1]:4505",
                zeromq::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST),
            ),
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let parsed: zeromq::Endpoint = endpoint(addr).parse().unwrap();
            assert_eq!(parsed, zeromq::Endpoint::Tcp(host, addr.port()));
        }
    }

    #[tokio::test]
    async fn bind_reports_addr_in_use() {
        let (_held, addr) = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(addr.port(), 0);
        let err = bind_listener(addr).unwrap_err();
        assert!(err.is_addr_in_use(), "{err}");
    }
}
