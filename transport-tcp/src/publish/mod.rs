//! The publish channel (Salt's port 4505): one server fans frames out to
//! many subscribers, each behind its own bounded queue.
//!
//! # Wire layout
//!
//! Every message is a [framing](brine_transport_api::framing) frame
//! (`u32` big-endian length, then that many bytes) whose first byte says
//! what it is:
//!
//! | direction | bytes | meaning |
//! | --- | --- | --- |
//! | subscriber → server, once | `0x01` + identity (UTF-8, at most [`MAX_IDENTITY`] bytes) | hello: who this subscriber is (the minion id) |
//! | server → subscriber, once | `0x02` | welcome: the subscription is registered; every frame published from now on will be sent |
//! | server → subscriber | `0x03` + payload | a published frame |
//!
//! The server registers the subscriber *before* it writes the welcome, and
//! the client reports [`Received::Connected`](brine_transport_api::Received)
//! only after reading it, so a frame published after `Connected` is never
//! missed. Nothing else travels from subscriber to server: any byte after
//! the hello ends the subscription. On a listener shared with a request
//! server the same frames carry a minion's subscription inside its shared
//! connection (`shared.rs`).

pub(crate) mod client;
pub(crate) mod server;

use bytes::Bytes;

use crate::{error::Error, shared};

/// Hello: the first frame a subscriber sends.
pub(crate) const KIND_HELLO: u8 = 0x01;
/// Welcome: the server's answer to the hello.
pub(crate) const KIND_WELCOME: u8 = 0x02;
/// A published frame.
pub(crate) const KIND_FRAME: u8 = 0x03;

/// The longest identity a subscriber may announce, in bytes.
pub const MAX_IDENTITY: usize = 1024;

pub(crate) use shared::MAX_HELLO;

/// Encodes the hello for `identity`.
pub(crate) fn encode_hello(identity: &str) -> Result<Bytes, Error> {
    shared::encode_hello(KIND_HELLO, identity)
}

/// The identity in a hello, or why the frame is not one.
fn decode_hello(frame: &[u8]) -> Result<&str, &'static str> {
    shared::decode_hello(KIND_HELLO, frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_refusals() {
        let hello = encode_hello("web-01").unwrap();
        assert_eq!(decode_hello(&hello), Ok("web-01"));
        assert_eq!(decode_hello(&encode_hello("").unwrap()), Ok(""));
        assert!(decode_hello(b"").is_err());
        assert!(decode_hello(&[KIND_FRAME, b'a']).is_err());
        assert!(decode_hello(&[KIND_HELLO, 0xff, 0xfe]).is_err());
        assert!(encode_hello(&"x".repeat(MAX_IDENTITY + 1)).is_err());
        assert_eq!(
            encode_hello(&"x".repeat(MAX_IDENTITY)).unwrap().len(),
            MAX_HELLO
        );
    }
}
