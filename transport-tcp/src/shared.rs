//! One connection for both channels, when the master serves publish and
//! requests on the same address (`publish_port == ret_port`).
//!
//! # When
//!
//! A publish server and a request server bound to the same address by the
//! same [`TcpTransport`](crate::TcpTransport) value share one listener
//! (`listener/`; the second server must give the same TLS options, and the
//! `tcp_*` socket settings of the first apply). On the minion side, a
//! publish client and a request client made by the same value with the same
//! options (address, identity, TLS, settings, backoff, connect timeout;
//! limits may differ) share one link (`link/`) and so one connection. The client opens a
//! shared connection only when both clients exist for one address: two
//! servers cannot bind one address unless they share a listener, so the
//! server is then certain to understand the shared hello. Servers on
//! different addresses (Salt's 4505/4506 layout) mean two connections, with
//! exactly the wire of `publish/mod.rs` and `request/mod.rs`.
//!
//! # Wire layout
//!
//! Every message is a [framing](brine_transport_api::framing) frame. The
//! first frame of a connection to a shared listener says what it is:
//!
//! | first frame | the connection is |
//! | --- | --- |
//! | `0x01` + identity | a publish-only subscriber, as on a publish server |
//! | `0x04` + identity (at most [`MAX_IDENTITY`] bytes) | shared: publish and requests |
//! | anything else | a plain request connection, as on a request server |
//!
//! A request frame starts with its id (`u64` BE); our clients number
//! requests from 1, so its first byte is `0x00` for the first 2^56 requests
//! of a link and a request is never taken for a hello.
//!
//! On a shared connection:
//!
//! | direction | bytes | meaning |
//! | --- | --- | --- |
//! | server → client, once | `0x02` | welcome: subscribed, as on the publish channel |
//! | server → client, once | `0x06` | instead of the welcome: no publish server is bound here now; requests are served |
//! | server → client | `0x03` + payload | a published frame |
//! | server → client | `0x05` + reply | a reply, laid out as on the request channel (`id`, `status`, body) |
//! | client → server | request | after the hello, every frame is a request, laid out as on the request channel |
//!
//! With no request server bound (it was closed), requests on a shared
//! connection are answered with status `2`, which the client reports as
//! [`TransportError::ConnectionRefused`](brine_transport_api::TransportError).
//! When a service attaches to or detaches from a shared listener, every
//! shared connection on it is closed, so clients reconnect and get what the
//! address now serves.
//!
//! # Queues
//!
//! The server writes a shared connection from the subscriber's publish
//! queue (`queue_depth` frames, filled without waiting; full drops the
//! connection with a warning) and the reply queue (`max_in_flight`), taking
//! from both in turn, so neither kind holds up the other for ever. The
//! client hands published frames to the subscriber through a queue of
//! `queue_depth` frames without waiting: a subscriber that stops reading
//! gets its connection dropped with a warning rather than holding up
//! replies.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{error::Error, publish::MAX_IDENTITY};

/// The first frame of a shared connection.
pub(crate) const KIND_SHARED_HELLO: u8 = 0x04;
/// A reply on a shared connection.
pub(crate) const KIND_REPLY: u8 = 0x05;
/// The answer to a shared hello when no publish server is bound.
pub(crate) const KIND_REQUESTS_ONLY: u8 = 0x06;

/// The largest hello frame (publish or shared) a server accepts.
pub(crate) const MAX_HELLO: usize = 1 + MAX_IDENTITY;

/// Encodes the hello of kind `kind` for `identity`.
pub(crate) fn encode_hello(kind: u8, identity: &str) -> Result<Bytes, Error> {
    if identity.len() > MAX_IDENTITY {
        return Err(Error::IdentityTooLong {
            len: identity.len(),
            max: MAX_IDENTITY,
        });
    }
    let mut out = BytesMut::with_capacity(1 + identity.len());
    out.put_u8(kind);
    out.put_slice(identity.as_bytes());
    Ok(out.freeze())
}

/// The identity in a hello of kind `kind`, or why the frame is not one.
pub(crate) fn decode_hello(kind: u8, frame: &[u8]) -> Result<&str, &'static str> {
    match frame.split_first() {
        Some((&first, identity)) if first == kind => {
            std::str::from_utf8(identity).map_err(|_| "identity is not UTF-8")
        }
        Some(_) => Err("first frame is not a hello"),
        None => Err("empty hello"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_refusals() {
        let hello = encode_hello(KIND_SHARED_HELLO, "web-01").unwrap();
        assert_eq!(hello[0], KIND_SHARED_HELLO);
        assert_eq!(decode_hello(KIND_SHARED_HELLO, &hello), Ok("web-01"));
        assert!(decode_hello(0x01, &hello).is_err());
        assert!(decode_hello(KIND_SHARED_HELLO, b"").is_err());
        assert!(decode_hello(KIND_SHARED_HELLO, &[KIND_SHARED_HELLO, 0xff]).is_err());
        assert!(encode_hello(KIND_SHARED_HELLO, &"x".repeat(MAX_IDENTITY + 1)).is_err());
        assert_eq!(
            encode_hello(KIND_SHARED_HELLO, &"x".repeat(MAX_IDENTITY))
                .unwrap()
                .len(),
            MAX_HELLO
        );
    }
}
