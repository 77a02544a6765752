//! ZMTP 3.0 wire pieces (RFC 23), without sockets, for the publisher this
//! crate serves itself ([`crate::publish_server`]).
//!
//! A connection opens with a 64-byte greeting each way (signature, version
//! 3.0, mechanism `NULL`), then a READY command each way carrying the
//! socket type, then frames: a flags byte (`0x01` more, `0x02` long,
//! `0x04` command), a 1-byte or 8-byte big-endian length, the body. We
//! greet as 3.0, as the `zeromq` crate does, so libzmq peers use 3.0
//! framing (subscriptions as `\x01prefix` / `\x00prefix` messages).

use bytes::{BufMut, Bytes, BytesMut};

use crate::guard::{self, Violation};

/// Bytes in a greeting.
pub(crate) const GREETING_LEN: usize = 64;

pub(crate) const FLAG_MORE: u8 = 0x01;
pub(crate) const FLAG_LONG: u8 = 0x02;
pub(crate) const FLAG_COMMAND: u8 = 0x04;

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    /// Not a ZMTP 3 greeting.
    BadGreeting,
    /// A security mechanism other than `NULL`.
    Mechanism,
    /// No READY command, or a malformed one.
    BadReady,
    /// A socket type that cannot talk to ours.
    SocketType(String),
}

impl HandshakeError {
    /// A few words for logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::BadGreeting => "not a zmtp 3 greeting".to_owned(),
            Self::Mechanism => "security mechanism other than NULL".to_owned(),
            Self::BadReady => "missing or malformed READY".to_owned(),
            Self::SocketType(kind) => format!("incompatible socket type {kind:?}"),
        }
    }
}

/// Our greeting: ZMTP 3.0, mechanism `NULL`, not a server.
pub(crate) fn greeting() -> [u8; GREETING_LEN] {
    let mut greeting = [0u8; GREETING_LEN];
    greeting[0] = 0xFF;
    greeting[9] = 0x7F;
    greeting[10] = 3;
    greeting[12..16].copy_from_slice(b"NULL");
    greeting
}

/// Checks a peer's greeting: the signature, a major version of at least 3
/// and the `NULL` mechanism.
///
/// # Errors
/// [`HandshakeError::BadGreeting`] or [`HandshakeError::Mechanism`].
pub(crate) fn check_greeting(greeting: &[u8; GREETING_LEN]) -> Result<(), HandshakeError> {
    if greeting[0] != 0xFF || greeting[9] & 0x01 == 0 || greeting[10] < 3 {
        return Err(HandshakeError::BadGreeting);
    }
    let mechanism = &greeting[12..32];
    let name_len = mechanism.iter().position(|&b| b == 0).unwrap_or(20);
    if &mechanism[..name_len] != b"NULL" {
        return Err(HandshakeError::Mechanism);
    }
    Ok(())
}

/// Our READY command frame for `socket_type`.
pub(crate) fn ready(socket_type: &str) -> Bytes {
    let mut body = Vec::with_capacity(32);
    body.push(5);
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&u32::try_from(socket_type.len()).unwrap_or(0).to_be_bytes());
    body.extend_from_slice(socket_type.as_bytes());
    let mut frame = BytesMut::with_capacity(body.len() + 9);
    put_header(&mut frame, FLAG_COMMAND, body.len());
    frame.extend_from_slice(&body);
    frame.freeze()
}

/// What a peer's READY says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ready {
    /// `Socket-Type`.
    pub(crate) socket_type: String,
    /// `Identity`, if announced.
    pub(crate) identity: Option<Bytes>,
}

/// Parses a READY command body.
///
/// # Errors
/// [`HandshakeError::BadReady`] when it is not a well-formed READY with a
/// socket type.
pub(crate) fn parse_ready(body: &[u8]) -> Result<Ready, HandshakeError> {
    let bad = || HandshakeError::BadReady;
    let (&name_len, rest) = body.split_first().ok_or_else(bad)?;
    let (name, mut properties) = rest
        .split_at_checked(usize::from(name_len))
        .ok_or_else(bad)?;
    if name != b"READY" {
        return Err(bad());
    }
    let mut socket_type = None;
    let mut identity = None;
    while let Some((&key_len, rest)) = properties.split_first() {
        let (key, rest) = rest
            .split_at_checked(usize::from(key_len))
            .ok_or_else(bad)?;
        let (value_len, rest) = rest.split_at_checked(4).ok_or_else(bad)?;
        let value_len = u32::from_be_bytes(value_len.try_into().map_err(|_| bad())?);
        let value_len = usize::try_from(value_len).map_err(|_| bad())?;
        let (value, rest) = rest.split_at_checked(value_len).ok_or_else(bad)?;
        properties = rest;
        if key.eq_ignore_ascii_case(b"Socket-Type") {
            socket_type = Some(String::from_utf8_lossy(value).into_owned());
        } else if key.eq_ignore_ascii_case(b"Identity") && !value.is_empty() {
            identity = Some(Bytes::copy_from_slice(value));
        }
    }
    Ok(Ready {
        socket_type: socket_type.ok_or_else(bad)?,
        identity,
    })
}

fn put_header(out: &mut BytesMut, flags: u8, len: usize) {
    match u8::try_from(len) {
        Ok(short) => out.extend_from_slice(&[flags, short]),
        Err(_) => {
            out.put_u8(flags | FLAG_LONG);
            out.put_u64(u64::try_from(len).unwrap_or(u64::MAX));
        }
    }
}

/// A published message on the wire, in two parts so the body is shared,
/// never copied, across subscribers: `head` holds every frame header and
/// the topic frame, `body` the last frame's bytes.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub(crate) head: Bytes,
    pub(crate) body: Bytes,
}

impl Unit {
    /// `[body]`, or `[topic, body]` when a topic is given.
    pub(crate) fn message(topic: Option<&[u8]>, body: Bytes) -> Self {
        let mut head = BytesMut::with_capacity(topic.map_or(0, <[u8]>::len) + 18);
        if let Some(topic) = topic {
            put_header(&mut head, FLAG_MORE, topic.len());
            head.extend_from_slice(topic);
        }
        put_header(&mut head, 0, body.len());
        Self {
            head: head.freeze(),
            body,
        }
    }

    /// Bytes on the wire.
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
}

/// One whole frame from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) flags: u8,
    pub(crate) body: Bytes,
}

impl Frame {
    pub(crate) fn is_command(&self) -> bool {
        self.flags & FLAG_COMMAND != 0
    }

    pub(crate) fn has_more(&self) -> bool {
        self.flags & FLAG_MORE != 0
    }
}

/// Decodes whole frames, refusing a length over its limit before any
/// buffer of that size exists.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    buf: BytesMut,
    max_message_frame: u64,
}

impl FrameDecoder {
    /// A decoder allowing message frames of `max_message_frame` bytes and
    /// commands of [`guard::MAX_COMMAND`].
    pub(crate) fn new(max_message_frame: u64) -> Self {
        Self {
            buf: BytesMut::new(),
            max_message_frame,
        }
    }

    /// Appends received bytes (callers read in small chunks).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// [`Violation::FrameTooLarge`] / [`Violation::CommandTooLarge`] as soon
    /// as a header announces too much.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, Violation> {
        let Some(&flags) = self.buf.first() else {
            return Ok(None);
        };
        let header_len = if flags & FLAG_LONG != 0 { 9 } else { 2 };
        let Some(header) = self.buf.get(..header_len) else {
            return Ok(None);
        };
        let len = match header {
            [_, short] => u64::from(*short),
            [_, long @ ..] => u64::from_be_bytes(long.try_into().unwrap_or([0xFF; 8])),
            [] => return Ok(None),
        };
        if flags & FLAG_COMMAND != 0 {
            if len > guard::MAX_COMMAND {
                return Err(Violation::CommandTooLarge(len));
            }
        } else if len > self.max_message_frame {
            return Err(Violation::FrameTooLarge {
                len,
                max: self.max_message_frame,
            });
        }
        // Bounded by the checks above.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if self.buf.len() - header_len < len {
            return Ok(None);
        }
        let _ = self.buf.split_to(header_len);
        let body = self.buf.split_to(len).freeze();
        Ok(Some(Frame { flags, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_greeting_and_ready_pass_our_own_checks() {
        check_greeting(&greeting()).unwrap();
        let mut decoder = FrameDecoder::new(10);
        decoder.push(&ready("PUB"));
        let frame = decoder.next_frame().unwrap().unwrap();
        assert!(frame.is_command());
        let ready = parse_ready(&frame.body).unwrap();
        assert_eq!(ready.socket_type, "PUB");
        assert_eq!(ready.identity, None);
    }

    #[test]
    fn greetings_are_checked() {
        let mut bad = greeting();
        bad[0] = 0;
        assert_eq!(check_greeting(&bad), Err(HandshakeError::BadGreeting));
        let mut old = greeting();
        old[10] = 2;
        assert_eq!(check_greeting(&old), Err(HandshakeError::BadGreeting));
        let mut curve = greeting();
        curve[12..17].copy_from_slice(b"CURVE");
        assert_eq!(check_greeting(&curve), Err(HandshakeError::Mechanism));
        let mut newer = greeting();
        newer[11] = 1; // ZMTP 3.1 is fine
        check_greeting(&newer).unwrap();
    }

    #[test]
    fn ready_properties_are_read_leniently() {
        let body = b"\x05READY\x0bsocket-type\0\0\0\x03SUB\x08Identity\0\0\0\x08minion-1";
        let ready = parse_ready(body).unwrap();
        assert_eq!(ready.socket_type, "SUB");
        assert_eq!(ready.identity.as_deref(), Some(&b"minion-1"[..]));
        assert_eq!(parse_ready(b"\x05READY"), Err(HandshakeError::BadReady));
        assert_eq!(parse_ready(b"\x04PING"), Err(HandshakeError::BadReady));
        assert_eq!(
            parse_ready(b"\x05READY\x0bSocket-Type\0\0\0\x09SUB"),
            Err(HandshakeError::BadReady)
        );
    }

    #[test]
    fn units_share_the_body_and_frame_it() {
        let body = Bytes::from(vec![1u8; 300]);
        let unit = Unit::message(Some(b"broadcast"), body.clone());
        assert_eq!(unit.body.as_ptr(), body.as_ptr(), "not copied");
        let mut wire = unit.head.to_vec();
        wire.extend_from_slice(&unit.body);
        assert_eq!(unit.len(), wire.len());
        let mut decoder = FrameDecoder::new(1000);
        decoder.push(&wire);
        let topic = decoder.next_frame().unwrap().unwrap();
        assert_eq!(
            (topic.has_more(), &topic.body[..]),
            (true, &b"broadcast"[..])
        );
        let last = decoder.next_frame().unwrap().unwrap();
        assert_eq!((last.has_more(), last.body), (false, body));
        assert_eq!(decoder.next_frame().unwrap(), None);
        let single = Unit::message(None, Bytes::from_static(b"x"));
        assert_eq!(&single.head[..], &[0, 1]);
    }

    #[test]
    fn the_decoder_waits_for_bytes_and_refuses_big_announcements() {
        let mut decoder = FrameDecoder::new(4);
        decoder.push(&[0x00]);
        assert_eq!(decoder.next_frame().unwrap(), None);
        decoder.push(&[0x03, b'a', b'b']);
        assert_eq!(decoder.next_frame().unwrap(), None);
        decoder.push(b"c");
        assert_eq!(&decoder.next_frame().unwrap().unwrap().body[..], b"abc");
        decoder.push(&[0x02, 0x40, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            decoder.next_frame(),
            Err(Violation::FrameTooLarge { max: 4, .. })
        ));
        let mut decoder = FrameDecoder::new(4);
        decoder.push(&[0x06, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            decoder.next_frame(),
            Err(Violation::CommandTooLarge(_))
        ));
    }
}
