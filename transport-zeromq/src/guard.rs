//! A sans-IO scanner of the ZMTP 3 byte stream, for the relay in front of
//! the request server's ROUTER ([`crate::relay`]).
//!
//! The `zeromq` crate reserves a frame's announced length before its bytes
//! arrive, so a peer announcing 2^50 bytes aborts the process on allocation
//! failure. The scanner sees every frame header first: it passes frames
//! within the limits through unchanged, turns an over-limit message frame
//! into a small marker frame (discarding its bytes as they arrive, never
//! buffering them), and reports a [`Violation`] that ends the connection
//! for an oversized command, an oversized or endless multipart message, or
//! a command inside a message. In
//! the other direction it only finds the boundaries of whole units
//! (greeting, command, message) so the relay can queue and count them.
//!
//! It also gives every connection its own ZMTP identity: the `Identity`
//! property of the client's READY command is replaced with one the relay
//! chooses. The crate keys peers by identity, so two connections announcing
//! the same one (a Salt minion sets its id; a reconnect races the old
//! connection's teardown) would otherwise evict each other, and the old
//! connection's late cleanup could unregister the new one.
//!
//! ZMTP 3 framing: a 64-byte greeting, then frames of a flags byte
//! (`0x01` more, `0x02` long, `0x04` command), a 1-byte or 8-byte big-endian
//! length, and the body.

use bytes::{Bytes, BytesMut};

use crate::envelope::Marker;

const GREETING_LEN: usize = 64;
const FLAG_MORE: u8 = 0x01;
const FLAG_LONG: u8 = 0x02;
const FLAG_COMMAND: u8 = 0x04;

/// Largest command accepted (READY carries a few short properties).
pub(crate) const MAX_COMMAND: u64 = 64 * 1024;

/// Limits on what a client may send to a server socket.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Largest message frame; a larger one is forwarded as this marker's
    /// frame for its length, its bytes discarded as they arrive.
    pub(crate) max_frame: u64,
    /// Stands in for an oversized frame.
    pub(crate) marker: Marker,
    /// Frames in one message.
    pub(crate) max_frames: usize,
    /// Bytes in one message (after any replacement).
    pub(crate) max_message: u64,
}

/// Why a connection is ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A command over [`MAX_COMMAND`].
    CommandTooLarge(u64),
    /// A command between the frames of a message.
    CommandInMessage,
    /// A message frame over the limit.
    FrameTooLarge { len: u64, max: u64 },
    /// A message of too many frames.
    TooManyFrames(usize),
    /// A message of too many bytes.
    MessageTooLarge(u64),
}

impl Violation {
    /// A few words for logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::CommandTooLarge(len) => format!("{len}-byte zmtp command"),
            Self::CommandInMessage => "zmtp command inside a multipart message".to_owned(),
            Self::FrameTooLarge { len, max } => {
                format!("{len}-byte frame over the {max}-byte limit")
            }
            Self::TooManyFrames(n) => format!("message of more than {n} frames"),
            Self::MessageTooLarge(len) => format!("message of more than {len} bytes"),
        }
    }
}

/// What one [`Scanner::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Input bytes used.
    pub(crate) consumed: usize,
    /// A whole unit (greeting, command or message) ended with them.
    pub(crate) unit_done: bool,
}

#[derive(Debug)]
enum State {
    Greeting {
        remaining: usize,
    },
    Header {
        buf: [u8; 9],
        have: usize,
    },
    Body {
        remaining: u64,
        discard: bool,
        ends_unit: bool,
    },
    /// A command being collected (at most [`MAX_COMMAND`]) to rewrite.
    Command {
        buf: BytesMut,
        remaining: u64,
    },
}

/// Scans one direction of one connection.
#[derive(Debug)]
pub(crate) struct Scanner {
    limits: Option<Limits>,
    /// The identity to put into the client's READY, until it is seen.
    identity: Option<Bytes>,
    state: State,
    frames: usize,
    message_bytes: u64,
}

impl Scanner {
    /// A scanner enforcing `limits` (client → server) and announcing
    /// `identity` for the client.
    pub(crate) fn inbound(limits: Limits, identity: Bytes) -> Self {
        Self::new(Some(limits), Some(identity))
    }

    /// A scanner that only finds unit boundaries (server → client).
    pub(crate) fn outbound() -> Self {
        Self::new(None, None)
    }

    fn new(limits: Option<Limits>, identity: Option<Bytes>) -> Self {
        Self {
            limits,
            identity,
            state: State::Greeting {
                remaining: GREETING_LEN,
            },
            frames: 0,
            message_bytes: 0,
        }
    }

    /// Scans a prefix of `input`, appending the bytes to forward to `out`;
    /// stops after a unit ends so the caller can cut `out` there.
    ///
    /// # Errors
    /// The [`Violation`] that must end the connection.
    pub(crate) fn step(&mut self, input: &[u8], out: &mut BytesMut) -> Result<Step, Violation> {
        match &mut self.state {
            State::Greeting { remaining } => {
                let n = (*remaining).min(input.len());
                out.extend_from_slice(input.get(..n).unwrap_or_default());
                *remaining -= n;
                let unit_done = *remaining == 0;
                if unit_done {
                    self.state = header();
                }
                Ok(Step {
                    consumed: n,
                    unit_done,
                })
            }
            State::Header { buf, have } => {
                let mut consumed = 0;
                for &byte in input {
                    let need = match *have {
                        0 => 1,
                        _ if buf[0] & FLAG_LONG != 0 => 9,
                        _ => 2,
                    };
                    if *have == need {
                        break;
                    }
                    if let Some(slot) = buf.get_mut(*have) {
                        *slot = byte;
                    }
                    *have += 1;
                    consumed += 1;
                }
                let need = if buf[0] & FLAG_LONG != 0 { 9 } else { 2 };
                if *have < need {
                    return Ok(Step {
                        consumed,
                        unit_done: false,
                    });
                }
                let header = *buf;
                let unit_done = self.on_header(&header, out)?;
                Ok(Step {
                    consumed,
                    unit_done,
                })
            }
            State::Body {
                remaining,
                discard,
                ends_unit,
            } => {
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                if !*discard {
                    out.extend_from_slice(input.get(..n).unwrap_or_default());
                }
                *remaining -= u64::try_from(n).unwrap_or(u64::MAX);
                let unit_done = *remaining == 0 && *ends_unit;
                if *remaining == 0 {
                    self.end_frame(unit_done);
                }
                Ok(Step {
                    consumed: n,
                    unit_done,
                })
            }
            State::Command { buf, remaining } => {
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                buf.extend_from_slice(input.get(..n).unwrap_or_default());
                *remaining -= u64::try_from(n).unwrap_or(u64::MAX);
                if *remaining > 0 {
                    return Ok(Step {
                        consumed: n,
                        unit_done: false,
                    });
                }
                let body = std::mem::take(buf);
                let identity = self.identity.take().unwrap_or_default();
                match rewrite_ready(&body, &identity) {
                    Some(rewritten) => emit_command(&rewritten, out),
                    None => emit_command(&body, out),
                }
                self.end_frame(true);
                Ok(Step {
                    consumed: n,
                    unit_done: true,
                })
            }
        }
    }

    /// Checks a complete frame header and emits it (or its replacement);
    /// returns whether the unit already ended (empty last frame).
    fn on_header(&mut self, header: &[u8; 9], out: &mut BytesMut) -> Result<bool, Violation> {
        let flags = header[0];
        let (len, header_len) = if flags & FLAG_LONG != 0 {
            let mut len = [0u8; 8];
            len.copy_from_slice(&header[1..9]);
            (u64::from_be_bytes(len), 9)
        } else {
            (u64::from(header[1]), 2)
        };
        let is_command = flags & FLAG_COMMAND != 0;
        let ends_unit = is_command || flags & FLAG_MORE == 0;
        let mut discard = false;
        match (&self.limits, is_command) {
            (None, _) => out.extend_from_slice(&header[..header_len]),
            (Some(_), true) if self.frames > 0 => return Err(Violation::CommandInMessage),
            (Some(_), true) if len > MAX_COMMAND => return Err(Violation::CommandTooLarge(len)),
            (Some(_), true) if self.identity.is_some() && len > 0 => {
                // Collected in full (at most MAX_COMMAND) and re-emitted.
                let capacity = usize::try_from(len).unwrap_or(0);
                self.state = State::Command {
                    buf: BytesMut::with_capacity(capacity),
                    remaining: len,
                };
                return Ok(false);
            }
            (Some(_), true) => out.extend_from_slice(&header[..header_len]),
            (Some(limits), false) => {
                self.frames += 1;
                if self.frames > limits.max_frames {
                    return Err(Violation::TooManyFrames(limits.max_frames));
                }
                let forwarded = if len <= limits.max_frame {
                    out.extend_from_slice(&header[..header_len]);
                    len
                } else {
                    let marker = limits.marker.frame(len);
                    let marker_len = u8::try_from(marker.len()).unwrap_or(u8::MAX);
                    out.extend_from_slice(&[flags & FLAG_MORE, marker_len]);
                    out.extend_from_slice(&marker);
                    discard = true;
                    u64::from(marker_len)
                };
                self.message_bytes = self.message_bytes.saturating_add(forwarded);
                if self.message_bytes > limits.max_message {
                    return Err(Violation::MessageTooLarge(limits.max_message));
                }
            }
        }
        self.state = State::Body {
            remaining: len,
            discard,
            ends_unit,
        };
        if len == 0 {
            self.end_frame(ends_unit);
            return Ok(ends_unit);
        }
        Ok(false)
    }

    fn end_frame(&mut self, unit_done: bool) {
        self.state = header();
        if unit_done {
            self.frames = 0;
            self.message_bytes = 0;
        }
    }
}

/// Appends a command frame with `body`.
fn emit_command(body: &[u8], out: &mut BytesMut) {
    match u8::try_from(body.len()) {
        Ok(len) => out.extend_from_slice(&[FLAG_COMMAND, len]),
        Err(_) => {
            out.extend_from_slice(&[FLAG_COMMAND | FLAG_LONG]);
            out.extend_from_slice(&u64::try_from(body.len()).unwrap_or(u64::MAX).to_be_bytes());
        }
    }
    out.extend_from_slice(body);
}

/// A READY command body with its `Identity` property replaced by
/// `identity`; `None` (leave it as it is) for any other or a malformed
/// command, which the socket refuses on its own.
pub(crate) fn rewrite_ready(body: &[u8], identity: &[u8]) -> Option<Vec<u8>> {
    let (&name_len, rest) = body.split_first()?;
    let (name, mut properties) = rest.split_at_checked(usize::from(name_len))?;
    if name != b"READY" {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + identity.len() + 16);
    out.push(name_len);
    out.extend_from_slice(name);
    while let Some((&key_len, rest)) = properties.split_first() {
        let (key, rest) = rest.split_at_checked(usize::from(key_len))?;
        let (value_len, rest) = rest.split_at_checked(4)?;
        let value_len = u32::from_be_bytes(value_len.try_into().ok()?);
        let (value, rest) = rest.split_at_checked(usize::try_from(value_len).ok()?)?;
        properties = rest;
        if key.eq_ignore_ascii_case(b"Identity") {
            continue;
        }
        out.push(key_len);
        out.extend_from_slice(key);
        out.extend_from_slice(&value_len.to_be_bytes());
        out.extend_from_slice(value);
    }
    let identity_len = u32::try_from(identity.len()).ok()?;
    out.push(8);
    out.extend_from_slice(b"Identity");
    out.extend_from_slice(&identity_len.to_be_bytes());
    out.extend_from_slice(identity);
    Some(out)
}

fn header() -> State {
    State::Header {
        buf: [0; 9],
        have: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match u8::try_from(body.len()) {
            Ok(len) => out.extend_from_slice(&[flags, len]),
            Err(_) => {
                out.push(flags | FLAG_LONG);
                out.extend_from_slice(&(body.len() as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(body);
        out
    }

    const READY: &[u8] = b"\x05READY\x0bSocket-Type\0\0\0\x03SUB\x08identity\0\0\0\x02me";

    fn handshake() -> Vec<u8> {
        let mut out = vec![0xFF; GREETING_LEN];
        out.extend(frame(FLAG_COMMAND, READY));
        out
    }

    /// The handshake as the relay forwards it: the client's identity
    /// replaced by the relay's.
    fn forwarded_handshake() -> Vec<u8> {
        let mut out = vec![0xFF; GREETING_LEN];
        let ready = b"\x05READY\x0bSocket-Type\0\0\0\x03SUB\x08Identity\0\0\0\x03new";
        out.extend(frame(FLAG_COMMAND, ready));
        out
    }

    fn inbound(limits: Limits) -> Scanner {
        Scanner::inbound(limits, Bytes::from_static(b"new"))
    }

    fn limits(max_frame: u64, marker: Marker) -> Limits {
        Limits {
            max_frame,
            marker,
            max_frames: 4,
            max_message: 300,
        }
    }

    /// Feeds `input` in chunks of `chunk` bytes; returns the output and the
    /// number of units seen, or the violation.
    fn scan(
        scanner: &mut Scanner,
        input: &[u8],
        chunk: usize,
    ) -> Result<(Vec<u8>, usize), Violation> {
        let mut out = BytesMut::new();
        let mut units = 0;
        for mut piece in input.chunks(chunk) {
            while !piece.is_empty() {
                let step = scanner.step(piece, &mut out)?;
                assert!(step.consumed > 0, "no progress");
                piece = &piece[step.consumed..];
                units += usize::from(step.unit_done);
            }
        }
        Ok((out.to_vec(), units))
    }

    #[test]
    fn frames_within_limits_pass_unchanged_in_any_chunking() {
        let mut input = handshake();
        input.extend(frame(FLAG_MORE, b""));
        input.extend(frame(0, &[7; 300]));
        input.extend(frame(0, b""));
        let mut expected = forwarded_handshake();
        expected.extend_from_slice(&input[handshake().len()..]);
        for chunk in [1, 2, 7, 64, 1000] {
            let mut scanner = inbound(limits(300, Marker::random()));
            let (out, units) = scan(&mut scanner, &input, chunk).unwrap();
            assert_eq!(out, expected, "chunk {chunk}");
            assert_eq!(units, 4, "greeting, READY and two messages");
        }
    }

    #[test]
    fn an_oversized_frame_becomes_the_marker_without_buffering() {
        let marker = Marker::random();
        let mut input = handshake();
        input.extend(frame(FLAG_MORE, b""));
        let mut huge = vec![FLAG_LONG];
        huge.extend_from_slice(&(1u64 << 50).to_be_bytes());
        input.extend(&huge);
        input.extend(vec![1u8; 5000]); // the first of its bytes
        let mut scanner = inbound(limits(100, marker));
        let (out, units) = scan(&mut scanner, &input, 3).unwrap();
        let mut expected = forwarded_handshake();
        expected.extend(frame(FLAG_MORE, b""));
        expected.extend(frame(0, &marker.frame(1 << 50)));
        assert_eq!(out, expected);
        assert_eq!(units, 2, "the message is not over until its bytes are");
    }

    #[test]
    fn a_replaced_frame_ends_its_message_when_its_bytes_are_skipped() {
        let marker = Marker::random();
        let mut input = handshake();
        input.extend(frame(0, &[9; 200]));
        input.extend(frame(0, b"next"));
        let mut scanner = inbound(limits(100, marker));
        let (out, units) = scan(&mut scanner, &input, 50).unwrap();
        let mut expected = forwarded_handshake();
        expected.extend(frame(0, &marker.frame(200)));
        expected.extend(frame(0, b"next"));
        assert_eq!(out, expected);
        assert_eq!(units, 4);
    }

    #[test]
    fn violations_end_the_connection() {
        let cases: Vec<(Vec<u8>, Violation)> = vec![
            (
                [frame(FLAG_MORE, b"a"), frame(FLAG_COMMAND, b"x")].concat(),
                Violation::CommandInMessage,
            ),
            (
                {
                    let mut long = vec![FLAG_COMMAND | FLAG_LONG];
                    long.extend_from_slice(&(MAX_COMMAND + 1).to_be_bytes());
                    long
                },
                Violation::CommandTooLarge(MAX_COMMAND + 1),
            ),
            (
                std::iter::repeat_n(frame(FLAG_MORE, b"a"), 5)
                    .flatten()
                    .collect(),
                Violation::TooManyFrames(4),
            ),
            (
                std::iter::repeat_n(frame(FLAG_MORE, &[0; 100]), 4)
                    .flatten()
                    .collect(),
                Violation::MessageTooLarge(300),
            ),
        ];
        for (body, violation) in cases {
            let mut input = handshake();
            input.extend(body);
            let mut scanner = inbound(limits(100, Marker::random()));
            assert_eq!(scan(&mut scanner, &input, 1000), Err(violation));
        }
    }

    #[test]
    fn ready_rewriting_keeps_other_properties_and_leaves_the_rest_alone() {
        let rewritten = rewrite_ready(READY, b"x").unwrap();
        assert_eq!(
            rewritten,
            b"\x05READY\x0bSocket-Type\0\0\0\x03SUB\x08Identity\0\0\0\x01x"
        );
        assert_eq!(rewrite_ready(b"\x04PING", b"x"), None);
        assert_eq!(rewrite_ready(b"\x05READY\x0bSocket-Type\0\0", b"x"), None);
        assert_eq!(rewrite_ready(b"", b"x"), None);
        // Only the first command is rewritten; later ones pass unchanged.
        let mut input = handshake();
        input.extend(frame(FLAG_COMMAND, READY));
        let mut scanner = inbound(limits(300, Marker::random()));
        let (out, units) = scan(&mut scanner, &input, 5).unwrap();
        let mut expected = forwarded_handshake();
        expected.extend(frame(FLAG_COMMAND, READY));
        assert_eq!((out, units), (expected, 3));
    }

    #[test]
    fn outbound_finds_unit_boundaries_and_has_no_limits() {
        let mut input = handshake();
        input.extend(frame(FLAG_MORE, b"topic"));
        input.extend(frame(0, &vec![3; 70_000]));
        let mut scanner = Scanner::outbound();
        let mut out = BytesMut::new();
        let mut units = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let step = scanner.step(rest, &mut out).unwrap();
            rest = &rest[step.consumed..];
            if step.unit_done {
                units.push(out.split().len());
            }
        }
        assert_eq!(units, vec![GREETING_LEN, 2 + READY.len(), 7 + 9 + 70_000]);
    }
}
