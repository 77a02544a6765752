//! Sans-IO decoders for the request stream (layout in [`wire`]): bytes go
//! in as quinn hands them over, in chunks that ignore frame boundaries;
//! whole requests (server side) or replies (client side) come out.
//!
//! Neither allocates from an announced length: a payload's buffer grows
//! only as its bytes arrive, and a frame over the limit is reported as
//! soon as its head is complete, then skipped in constant memory.

use bytes::{Buf, Bytes, BytesMut};

use crate::wire::{self, Answer, ID_LEN, REPLY_HEAD_MAX, REQUEST_HEAD_LEN};

/// A fixed-size head that may arrive split across chunks.
#[derive(Debug)]
struct Head<const N: usize> {
    buf: [u8; N],
    have: usize,
}

impl<const N: usize> Head<N> {
    const fn new() -> Self {
        Self {
            buf: [0; N],
            have: 0,
        }
    }

    /// Takes bytes from `input` until `want` (at most `N`) are held; true
    /// once they are.
    fn fill(&mut self, input: &mut Bytes, want: usize) -> bool {
        let want = want.min(N);
        let take = want.saturating_sub(self.have).min(input.len());
        if let Some(dst) = self.buf.get_mut(self.have..self.have + take) {
            input.copy_to_slice(dst);
            self.have += take;
        }
        self.have >= want
    }

    fn u64_at(&self, at: usize) -> u64 {
        self.buf
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    }

    fn u32_at(&self, at: usize) -> u32 {
        self.buf
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes)
    }

    fn byte_at(&self, at: usize) -> u8 {
        self.buf.get(at).copied().unwrap_or(0)
    }
}

/// A payload arriving: its buffer grows with what has come.
#[derive(Debug)]
struct Body {
    id: u64,
    len: usize,
    buf: BytesMut,
}

impl Body {
    fn new(id: u64, len: usize) -> Self {
        Self {
            id,
            len,
            buf: BytesMut::with_capacity(len.min(wire::READ_CHUNK)),
        }
    }

    /// Takes what `input` has of the payload; the whole payload once it is in.
    fn fill(&mut self, input: &mut Bytes) -> Option<Bytes> {
        let take = (self.len - self.buf.len()).min(input.len());
        if let Some(part) = input.get(..take) {
            self.buf.extend_from_slice(part);
        }
        input.advance(take);
        (self.buf.len() == self.len).then(|| std::mem::take(&mut self.buf).freeze())
    }
}

/// Drops up to `left` bytes of `input`; true once all are gone.
fn skip(left: &mut u64, input: &mut Bytes) -> bool {
    let take = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
    input.advance(take);
    *left -= wire::len64(take);
    *left == 0
}

/// A request as the server decodes it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// A whole request.
    Frame { id: u64, body: Bytes },
    /// A request of `len` bytes, over the limit; its bytes are being skipped.
    TooLarge { id: u64, len: u64 },
}

#[derive(Debug)]
enum RequestState {
    Head(Head<REQUEST_HEAD_LEN>),
    Body(Body),
    Skip(u64),
}

/// The server's decoder of request frames.
#[derive(Debug)]
pub(crate) struct RequestDecoder {
    max: usize,
    state: RequestState,
}

impl RequestDecoder {
    /// A decoder refusing payloads over `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            state: RequestState::Head(Head::new()),
        }
    }

    /// Whether no frame is partly read (a clean end of stream is fine here,
    /// and the client may well stay quiet for long).
    pub(crate) fn is_between_frames(&self) -> bool {
        matches!(&self.state, RequestState::Head(head) if head.have == 0)
    }

    /// The next request `input` completes, taking the bytes it uses;
    /// `None` once `input` is used up.
    pub(crate) fn decode(&mut self, input: &mut Bytes) -> Option<Request> {
        while !input.is_empty() {
            match &mut self.state {
                RequestState::Head(head) => {
                    if !head.fill(input, REQUEST_HEAD_LEN) {
                        continue;
                    }
                    let id = head.u64_at(0);
                    let len = head.u32_at(ID_LEN);
                    match usize::try_from(len) {
                        Ok(0) => {
                            self.state = RequestState::Head(Head::new());
                            return Some(Request::Frame {
                                id,
                                body: Bytes::new(),
                            });
                        }
                        Ok(len) if len <= self.max => {
                            self.state = RequestState::Body(Body::new(id, len));
                        }
                        _ => {
                            let len = u64::from(len);
                            self.state = RequestState::Skip(len);
                            return Some(Request::TooLarge { id, len });
                        }
                    }
                }
                RequestState::Body(body) => {
                    if let Some(payload) = body.fill(input) {
                        let id = body.id;
                        self.state = RequestState::Head(Head::new());
                        return Some(Request::Frame { id, body: payload });
                    }
                }
                RequestState::Skip(left) => {
                    if skip(left, input) {
                        self.state = RequestState::Head(Head::new());
                    }
                }
            }
        }
        None
    }
}

/// A reply that does not follow the layout; the stream cannot be read on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

#[derive(Debug)]
enum ReplyState {
    Head(Head<REPLY_HEAD_MAX>),
    Body(Body),
    Skip(u64),
}

/// The client's decoder of replies.
#[derive(Debug)]
pub(crate) struct ReplyDecoder {
    max: usize,
    state: ReplyState,
}

/// How many head bytes a reply with `status` has; `None` if unknown.
fn reply_head_len(status: u8) -> Option<usize> {
    match status {
        wire::STATUS_OK => Some(ID_LEN + 1 + 4),
        wire::STATUS_TOO_LARGE | wire::STATUS_REPLY_TOO_LARGE => Some(ID_LEN + 1 + 16),
        wire::STATUS_NO_SERVICE => Some(ID_LEN + 1),
        _ => None,
    }
}

impl ReplyDecoder {
    /// A decoder refusing reply payloads over `max` bytes (those come out
    /// as [`Answer::ReplyTooLarge`] with `max`, and are skipped).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            state: ReplyState::Head(Head::new()),
        }
    }

    /// The next reply `input` completes, with its request id, taking the
    /// bytes it uses; `Ok(None)` once `input` is used up.
    ///
    /// # Errors
    /// [`Malformed`] on an unknown status.
    pub(crate) fn decode(&mut self, input: &mut Bytes) -> Result<Option<(u64, Answer)>, Malformed> {
        while !input.is_empty() {
            match &mut self.state {
                ReplyState::Head(head) => {
                    if !head.fill(input, ID_LEN + 1) {
                        continue;
                    }
                    let status = head.byte_at(ID_LEN);
                    let want = reply_head_len(status).ok_or(Malformed("unknown reply status"))?;
                    if !head.fill(input, want) {
                        continue;
                    }
                    let id = head.u64_at(0);
                    let reply = match status {
                        wire::STATUS_OK => {
                            let len = head.u32_at(ID_LEN + 1);
                            match usize::try_from(len) {
                                Ok(0) => Answer::Reply(Bytes::new()),
                                Ok(len) if len <= self.max => {
                                    self.state = ReplyState::Body(Body::new(id, len));
                                    continue;
                                }
                                _ => {
                                    let len = u64::from(len);
                                    self.state = ReplyState::Skip(len);
                                    return Ok(Some((
                                        id,
                                        Answer::ReplyTooLarge {
                                            len,
                                            max: wire::len64(self.max),
                                        },
                                    )));
                                }
                            }
                        }
                        wire::STATUS_TOO_LARGE => Answer::TooLarge {
                            len: head.u64_at(ID_LEN + 1),
                            max: head.u64_at(ID_LEN + 9),
                        },
                        wire::STATUS_REPLY_TOO_LARGE => Answer::ReplyTooLarge {
                            len: head.u64_at(ID_LEN + 1),
                            max: head.u64_at(ID_LEN + 9),
                        },
                        _ => Answer::NoService,
                    };
                    self.state = ReplyState::Head(Head::new());
                    return Ok(Some((id, reply)));
                }
                ReplyState::Body(body) => {
                    if let Some(payload) = body.fill(input) {
                        let id = body.id;
                        self.state = ReplyState::Head(Head::new());
                        return Ok(Some((id, Answer::Reply(payload))));
                    }
                }
                ReplyState::Skip(left) => {
                    if skip(left, input) {
                        self.state = ReplyState::Head(Head::new());
                    }
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::wire::{put_reply, request_head};

    fn request(id: u64, body: &[u8]) -> Vec<u8> {
        let mut out = request_head(id, body.len(), usize::MAX, "p")
            .unwrap()
            .to_vec();
        out.extend_from_slice(body);
        out
    }

    /// Feeds `wire` in pieces of `step` bytes, collecting what comes out.
    fn requests(decoder: &mut RequestDecoder, wire: &[u8], step: usize) -> Vec<Request> {
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            let mut input = Bytes::copy_from_slice(piece);
            while let Some(request) = decoder.decode(&mut input) {
                out.push(request);
            }
            assert!(input.is_empty());
        }
        out
    }

    #[test]
    fn requests_come_out_whole_however_the_bytes_are_cut() {
        let mut wire = request(1, b"first");
        wire.extend(request(2, b""));
        wire.extend(request(u64::MAX, &[9; 300]));
        for step in [1, 2, 7, 12, 13, 1000] {
            let mut decoder = RequestDecoder::new(300);
            let got = requests(&mut decoder, &wire, step);
            assert_eq!(
                got,
                vec![
                    Request::Frame {
                        id: 1,
                        body: Bytes::from_static(b"first")
                    },
                    Request::Frame {
                        id: 2,
                        body: Bytes::new()
                    },
                    Request::Frame {
                        id: u64::MAX,
                        body: Bytes::from(vec![9; 300])
                    },
                ],
                "step {step}"
            );
            assert!(decoder.is_between_frames());
        }
    }

    #[test]
    fn an_oversized_request_is_reported_at_once_and_skipped() {
        let mut wire = request(5, &[1; 100]);
        wire.extend(request(6, b"ok"));
        for step in [1, 3, 50, 1000] {
            let mut decoder = RequestDecoder::new(10);
            let head = &wire[..REQUEST_HEAD_LEN];
            assert_eq!(
                requests(&mut decoder, head, step),
                vec![Request::TooLarge { id: 5, len: 100 }],
                "reported from the head alone"
            );
            assert!(!decoder.is_between_frames());
            let got = requests(&mut decoder, &wire[REQUEST_HEAD_LEN..], step);
            assert_eq!(
                got,
                vec![Request::Frame {
                    id: 6,
                    body: Bytes::from_static(b"ok")
                }]
            );
        }
    }

    #[test]
    fn a_partial_head_is_not_between_frames() {
        let mut decoder = RequestDecoder::new(10);
        assert!(decoder.is_between_frames());
        assert_eq!(requests(&mut decoder, &[0, 0, 0], 3), vec![]);
        assert!(!decoder.is_between_frames());
    }

    fn replies(decoder: &mut ReplyDecoder, wire: &[u8], step: usize) -> Vec<(u64, Answer)> {
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            let mut input = Bytes::copy_from_slice(piece);
            while let Some(reply) = decoder.decode(&mut input).unwrap() {
                out.push(reply);
            }
        }
        out
    }

    fn encode(replies: &[(u64, Answer)]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for (id, reply) in replies {
            if let Some(body) = put_reply(&mut out, *id, reply.clone()) {
                out.extend_from_slice(&body);
            }
        }
        out.to_vec()
    }

    #[test]
    fn replies_round_trip_however_the_bytes_are_cut() {
        let sent = vec![
            (3, Answer::Reply(Bytes::from_static(b"pong"))),
            (1, Answer::TooLarge { len: 5, max: 4 }),
            (2, Answer::ReplyTooLarge { len: 7, max: 6 }),
            (9, Answer::Reply(Bytes::new())),
            (4, Answer::NoService),
            (8, Answer::Reply(Bytes::from(vec![7; 100]))),
        ];
        let wire = encode(&sent);
        for step in [1, 2, 9, 13, 25, 1000] {
            let mut decoder = ReplyDecoder::new(100);
            assert_eq!(replies(&mut decoder, &wire, step), sent, "step {step}");
        }
    }

    #[test]
    fn a_reply_over_the_clients_limit_is_refused_and_skipped() {
        let wire = encode(&[
            (1, Answer::Reply(Bytes::from(vec![0; 50]))),
            (2, Answer::Reply(Bytes::from_static(b"ok"))),
        ]);
        for step in [1, 4, 1000] {
            let mut decoder = ReplyDecoder::new(10);
            assert_eq!(
                replies(&mut decoder, &wire, step),
                vec![
                    (1, Answer::ReplyTooLarge { len: 50, max: 10 }),
                    (2, Answer::Reply(Bytes::from_static(b"ok"))),
                ]
            );
        }
    }

    #[test]
    fn an_unknown_status_is_malformed() {
        let mut decoder = ReplyDecoder::new(10);
        let mut input = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0, 0]);
        assert_eq!(
            decoder.decode(&mut input),
            Err(Malformed("unknown reply status"))
        );
    }
}
