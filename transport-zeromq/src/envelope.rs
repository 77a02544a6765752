//! The request channel's multipart framing, without sockets (sans-IO).
//!
//! What a ROUTER receives is `[identity, envelope..., b"", body]`: every frame
//! up to and including the first empty delimiter is the routing envelope and
//! goes back unchanged in front of the reply. A stock Salt `REQ` sends
//! `[b"", body]`, so the ROUTER sees `[identity, b"", body]` and replies
//! `[identity, b"", reply]`.
//!
//! Brine's own client is a `DEALER` that sends `[request-id, b"", body]`. The
//! request id is 8 bytes: a marker byte ([`ID_MARKER`]) and a 56-bit counter,
//! so it cannot be mistaken for a libzmq-generated identity (5 bytes, first
//! byte 0) nor for a printable custom identity. Any ROUTER chain (ours, or
//! Salt's ROUTER → DEALER device → REP workers) keeps the envelope and so
//! returns `[request-id, b"", reply]`, which lets one socket carry many
//! requests at once.
//!
//! Refusals: when a request cannot be served (over the size limit, several
//! body frames, no body) and its envelope is intact, the reply body is
//! [`BAD_LOAD`] — the msgpack string `"bad load"`, which is what a Salt master
//! answers to a load it cannot use — so a stock client gets its one reply and
//! fails cleanly. Only when the envelope carries a Brine request id does the
//! reply gain one extra trailing frame after the body, an [`ErrorTrailer`]
//! the Brine client turns into a typed error (`FrameTooLarge`, `Malformed`).
//! A stock `REQ` client never sees that frame.

use bytes::Bytes;

/// First byte of every Brine request id.
pub(crate) const ID_MARKER: u8 = 0xB5;

/// Bytes in a request id frame.
pub(crate) const ID_LEN: usize = 8;

/// The ids' counter bits (56).
pub(crate) const COUNTER_MASK: u64 = 0x00FF_FFFF_FFFF_FFFF;

/// The reply body of a refused request: msgpack `"bad load"` (fixstr of 8).
pub(crate) const BAD_LOAD: &[u8] = b"\xa8bad load";

/// Frames allowed in a routing envelope (identity and delimiter included).
pub(crate) const MAX_ENVELOPE_FRAMES: usize = 32;

/// Bytes allowed in a routing envelope; routing hops add a few bytes each.
pub(crate) const MAX_ENVELOPE_BYTES: usize = 4096;

/// Prefix of an error trailer frame.
const TRAILER_PREFIX: &str = "brine-error/1 ";

/// Stands in for a body frame the relay refused to buffer
/// ([`crate::guard`]): a random per-server prefix and the refused length.
/// Only the relay can put one in front of the ROUTER; a client forging one
/// only gets its own request refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker([u8; 16]);

impl Marker {
    /// A marker with a fresh random prefix.
    pub(crate) fn random() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut prefix = [0u8; 16];
        for (salt, half) in prefix.chunks_mut(8).enumerate() {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(salt);
            hasher.write_u32(std::process::id());
            if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
                hasher.write_u128(now.as_nanos());
            }
            half.copy_from_slice(&hasher.finish().to_be_bytes());
        }
        Self(prefix)
    }

    /// The marker frame standing for a refused frame of `len` bytes.
    pub(crate) fn frame(&self, len: u64) -> Bytes {
        let mut frame = Vec::with_capacity(24);
        frame.extend_from_slice(&self.0);
        frame.extend_from_slice(&len.to_be_bytes());
        Bytes::from(frame)
    }

    /// The refused length, if `frame` is this marker.
    pub(crate) fn parse(&self, frame: &[u8]) -> Option<u64> {
        let len = frame.strip_prefix(&self.0[..])?;
        let len: [u8; 8] = len.try_into().ok()?;
        Some(u64::from_be_bytes(len))
    }
}

/// The request-id frame for counter value `counter`.
pub(crate) fn encode_id(counter: u64) -> Bytes {
    let id = (u64::from(ID_MARKER) << 56) | (counter & COUNTER_MASK);
    Bytes::copy_from_slice(&id.to_be_bytes())
}

/// The counter value of a Brine request-id frame, if `frame` is one.
pub(crate) fn decode_id(frame: &[u8]) -> Option<u64> {
    let bytes: [u8; ID_LEN] = frame.try_into().ok()?;
    let id = u64::from_be_bytes(bytes);
    (bytes[0] == ID_MARKER).then_some(id & COUNTER_MASK)
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No empty delimiter frame: there is no envelope to reply to.
    NoDelimiter,
    /// The envelope has too many frames or bytes.
    EnvelopeTooLarge,
    /// Nothing after the delimiter.
    NoBody,
    /// More than one frame after the delimiter.
    ExtraFrames(usize),
    /// The body is over the size limit.
    TooLarge { len: u64, max: usize },
}

impl Refusal {
    /// A few words for logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::NoDelimiter => "no empty delimiter frame".to_owned(),
            Self::EnvelopeTooLarge => "routing envelope too large".to_owned(),
            Self::NoBody => "no body frame after the delimiter".to_owned(),
            Self::ExtraFrames(n) => format!("{n} body frames instead of one"),
            Self::TooLarge { len, max } => format!("{len}-byte body over the {max}-byte limit"),
        }
    }

    /// The trailer telling a Brine client why.
    pub(crate) fn trailer(&self) -> ErrorTrailer {
        match self {
            Self::TooLarge { len, max } => ErrorTrailer::FrameTooLarge {
                len: *len,
                max: *max,
            },
            other => ErrorTrailer::Malformed(other.describe()),
        }
    }
}

/// A request as the ROUTER received it, split into envelope and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inbound {
    /// Identity, routing frames and the delimiter, to go back unchanged.
    pub(crate) envelope: Vec<Bytes>,
    /// Whether the envelope carries a Brine request id (the client
    /// understands an error trailer).
    pub(crate) is_brine: bool,
}

/// Splits a ROUTER message (`frames[0]` is the peer identity) into envelope
/// and body.
///
/// # Errors
/// The refusal, with the envelope when one was found (so the refusal can be
/// answered).
pub(crate) fn split_request(
    mut frames: Vec<Bytes>,
    max_body: usize,
    marker: &Marker,
) -> Result<(Inbound, Bytes), (Option<Inbound>, Refusal)> {
    // The identity frame is never the delimiter, even if empty.
    let delimiter = frames
        .iter()
        .skip(1)
        .position(|frame| frame.is_empty())
        .map(|pos| pos + 1)
        .ok_or((None, Refusal::NoDelimiter))?;
    let body_frames = frames.split_off(delimiter + 1);
    let envelope = frames;
    let envelope_bytes: usize = envelope.iter().map(Bytes::len).sum();
    if envelope.len() > MAX_ENVELOPE_FRAMES
        || envelope_bytes > MAX_ENVELOPE_BYTES
        || envelope.iter().any(|frame| marker.parse(frame).is_some())
    {
        return Err((None, Refusal::EnvelopeTooLarge));
    }
    // A Brine DEALER's envelope is exactly [identity, request-id, b""].
    let is_brine = envelope.len() == 3 && envelope.get(1).is_some_and(|f| decode_id(f).is_some());
    let inbound = Inbound { envelope, is_brine };
    let body = match <[Bytes; 1]>::try_from(body_frames) {
        Ok([body]) => body,
        Err(rest) if rest.is_empty() => return Err((Some(inbound), Refusal::NoBody)),
        Err(rest) => return Err((Some(inbound), Refusal::ExtraFrames(rest.len()))),
    };
    if let Some(len) = marker.parse(&body) {
        let refusal = Refusal::TooLarge { len, max: max_body };
        return Err((Some(inbound), refusal));
    }
    if body.len() > max_body {
        let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
        return Err((Some(inbound), Refusal::TooLarge { len, max: max_body }));
    }
    Ok((inbound, body))
}

/// The reply message for `inbound`: envelope, body and, for a Brine client,
/// an optional error trailer.
pub(crate) fn reply_frames(
    inbound: Inbound,
    body: Bytes,
    trailer: Option<&ErrorTrailer>,
) -> Vec<Bytes> {
    let mut frames = inbound.envelope;
    frames.push(body);
    if let (true, Some(trailer)) = (inbound.is_brine, trailer) {
        frames.push(trailer.encode());
    }
    frames
}

/// An error a Brine server reports in-band, in a frame after the reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ErrorTrailer {
    /// The request (or the reply) was over the limit.
    FrameTooLarge { len: u64, max: usize },
    /// The request was malformed, or the handler failed.
    Malformed(String),
}

impl ErrorTrailer {
    /// `brine-error/1 frame-too-large <len> <max>` or
    /// `brine-error/1 malformed <reason>`.
    pub(crate) fn encode(&self) -> Bytes {
        let text = match self {
            Self::FrameTooLarge { len, max } => {
                format!("{TRAILER_PREFIX}frame-too-large {len} {max}")
            }
            Self::Malformed(reason) => format!("{TRAILER_PREFIX}malformed {reason}"),
        };
        Bytes::from(text)
    }

    /// Parses a trailer frame; `None` if it is not one.
    pub(crate) fn decode(frame: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(frame).ok()?;
        let rest = text.strip_prefix(TRAILER_PREFIX)?;
        if let Some(args) = rest.strip_prefix("frame-too-large ") {
            let (len, max) = args.split_once(' ')?;
            return Some(Self::FrameTooLarge {
                len: len.parse().ok()?,
                max: max.parse().ok()?,
            });
        }
        rest.strip_prefix("malformed ")
            .map(|reason| Self::Malformed(reason.to_owned()))
    }
}

/// A reply as the Brine DEALER received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The request's counter value.
    pub(crate) id: u64,
    /// The reply body.
    pub(crate) body: Bytes,
    /// The server's error report, if any.
    pub(crate) trailer: Option<ErrorTrailer>,
}

/// Why a DEALER message is not a usable reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadReply {
    /// The first frame is not a Brine request id: nothing to correlate with.
    NoId,
    /// The id is there but the rest does not follow the framing.
    Malformed { id: u64, reason: &'static str },
}

/// Parses `[request-id, b"", body, (trailer)]`.
///
/// # Errors
/// [`BadReply`] saying whether the message can still be tied to a request.
pub(crate) fn parse_reply(frames: Vec<Bytes>) -> Result<Reply, BadReply> {
    let mut frames = frames.into_iter();
    let id = frames
        .next()
        .and_then(|frame| decode_id(&frame))
        .ok_or(BadReply::NoId)?;
    let malformed = |reason| BadReply::Malformed { id, reason };
    match frames.next() {
        Some(delimiter) if delimiter.is_empty() => {}
        _ => return Err(malformed("no empty delimiter after the request id")),
    }
    let body = frames.next().ok_or(malformed("no reply body"))?;
    let trailer = match frames.next() {
        None => None,
        Some(frame) => {
            Some(ErrorTrailer::decode(&frame).ok_or(malformed("unknown trailing frame"))?)
        }
    };
    if frames.next().is_some() {
        return Err(malformed("too many frames"));
    }
    Ok(Reply { id, body, trailer })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&[u8]]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
    }

    #[test]
    fn request_ids_round_trip_and_are_distinctive() {
        let id = encode_id(42);
        assert_eq!(id.len(), ID_LEN);
        assert_eq!(id[0], ID_MARKER);
        assert_eq!(decode_id(&id), Some(42));
        assert_eq!(decode_id(&encode_id(COUNTER_MASK + 5)), Some(4));
        assert_eq!(decode_id(b"minion01"), None); // a printable identity
        assert_eq!(decode_id(&[0, 1, 2, 3, 4]), None); // a libzmq identity
        assert_eq!(decode_id(&[ID_MARKER; 9]), None);
    }

    #[test]
    fn stock_req_envelope_is_identity_and_delimiter() {
        let marker = Marker::random();
        let (inbound, body) =
            split_request(frames(&[b"peer", b"", b"load"]), 100, &marker).unwrap();
        assert_eq!(inbound.envelope, frames(&[b"peer", b""]));
        assert!(!inbound.is_brine);
        assert_eq!(&body[..], b"load");
        let error = ErrorTrailer::Malformed("x".to_owned());
        // A stock client never gets the trailer.
        let reply = reply_frames(inbound, Bytes::from_static(b"ok"), Some(&error));
        assert_eq!(reply, frames(&[b"peer", b"", b"ok"]));
    }

    #[test]
    fn routed_and_brine_envelopes_go_back_unchanged() {
        let marker = Marker::random();
        let id = encode_id(7);
        let (inbound, _) = split_request(
            vec![
                Bytes::from_static(b"p"),
                id.clone(),
                Bytes::new(),
                Bytes::from_static(b"b"),
            ],
            100,
            &marker,
        )
        .unwrap();
        assert!(inbound.is_brine);
        let trailer = ErrorTrailer::FrameTooLarge { len: 5, max: 4 };
        let reply = reply_frames(inbound, Bytes::from_static(BAD_LOAD), Some(&trailer));
        assert_eq!(reply.len(), 5);
        assert_eq!(reply[1], id);
        assert_eq!(ErrorTrailer::decode(&reply[4]), Some(trailer));

        let (inbound, _) =
            split_request(frames(&[b"p", b"hop1", b"hop2", b"", b"b"]), 100, &marker).unwrap();
        assert!(!inbound.is_brine);
        assert_eq!(inbound.envelope.len(), 4);
    }

    #[test]
    fn malformed_requests_are_refused_with_or_without_envelope() {
        let marker = Marker::random();
        let refuse = |parts: &[&[u8]]| split_request(frames(parts), 4, &marker).unwrap_err();
        assert_eq!(refuse(&[b"p", b"body"]), (None, Refusal::NoDelimiter));
        // The identity frame is never taken for the delimiter.
        assert_eq!(refuse(&[b"", b"body"]), (None, Refusal::NoDelimiter));
        assert_eq!(refuse(&[b"p", b""]).1, Refusal::NoBody);
        assert!(refuse(&[b"p", b""]).0.is_some());
        assert_eq!(refuse(&[b"p", b"", b"a", b"b"]).1, Refusal::ExtraFrames(2));
        assert_eq!(
            refuse(&[b"p", b"", b"12345"]).1,
            Refusal::TooLarge { len: 5, max: 4 }
        );
        let long_envelope: Vec<&[u8]> = std::iter::repeat_n(&b"hop"[..], MAX_ENVELOPE_FRAMES)
            .chain([&b""[..], &b"b"[..]])
            .collect();
        assert_eq!(refuse(&long_envelope), (None, Refusal::EnvelopeTooLarge));
    }

    #[test]
    fn the_relays_marker_becomes_a_too_large_refusal() {
        let marker = Marker::random();
        assert_ne!(marker, Marker::random());
        let stand_in = marker.frame(1 << 40);
        assert_eq!(marker.parse(&stand_in), Some(1 << 40));
        assert_eq!(Marker::random().parse(&stand_in), None);
        let parts = vec![Bytes::from_static(b"p"), Bytes::new(), stand_in.clone()];
        let (inbound, refusal) = split_request(parts, 100, &marker).unwrap_err();
        assert!(inbound.is_some());
        assert_eq!(
            refusal,
            Refusal::TooLarge {
                len: 1 << 40,
                max: 100
            }
        );
        // In the envelope it is refused without a reply.
        let parts = vec![
            Bytes::from_static(b"p"),
            stand_in,
            Bytes::new(),
            Bytes::new(),
        ];
        assert_eq!(
            split_request(parts, 100, &marker).unwrap_err(),
            (None, Refusal::EnvelopeTooLarge)
        );
    }

    #[test]
    fn trailers_round_trip_and_reject_other_frames() {
        for trailer in [
            ErrorTrailer::FrameTooLarge {
                len: u64::MAX,
                max: 3,
            },
            ErrorTrailer::Malformed("no body frame after the delimiter".to_owned()),
        ] {
            assert_eq!(ErrorTrailer::decode(&trailer.encode()), Some(trailer));
        }
        assert_eq!(
            ErrorTrailer::decode(b"brine-error/1 frame-too-large x 3"),
            None
        );
        assert_eq!(ErrorTrailer::decode(b"\xff\xfe"), None);
        assert_eq!(ErrorTrailer::decode(b"anything"), None);
    }

    #[test]
    fn replies_are_parsed_and_tied_to_their_request() {
        let id = encode_id(9);
        let ok = parse_reply(vec![id.clone(), Bytes::new(), Bytes::from_static(b"r")]).unwrap();
        assert_eq!((ok.id, &ok.body[..], ok.trailer), (9, &b"r"[..], None));
        let trailer = ErrorTrailer::Malformed("x".to_owned());
        let err = parse_reply(vec![
            id.clone(),
            Bytes::new(),
            Bytes::new(),
            trailer.encode(),
        ]);
        assert_eq!(err.unwrap().trailer, Some(trailer));
        assert_eq!(parse_reply(frames(&[b"", b"r"])), Err(BadReply::NoId));
        assert_eq!(parse_reply(vec![]), Err(BadReply::NoId));
        for bad in [
            vec![id.clone()],
            vec![id.clone(), Bytes::from_static(b"x"), Bytes::new()],
            vec![id.clone(), Bytes::new()],
            vec![
                id.clone(),
                Bytes::new(),
                Bytes::new(),
                Bytes::from_static(b"junk"),
            ],
        ] {
            assert!(matches!(
                parse_reply(bad),
                Err(BadReply::Malformed { id: 9, .. })
            ));
        }
    }
}
