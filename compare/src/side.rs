//! One side of a comparison (online, or test): the client's and the server's streams of one
//! connection, reassembled and split into exchanges (a request and its response), summarized.

use std::collections::VecDeque;

use tcpcopy_engine::{Seq, Time};

use crate::{
    config::{Config, Protocol},
    digest::{ByteSummary, SummaryBuilder},
    http::{Event, HttpResponse, Kind, Parser, RequestHead},
    reassembly::Reassembler,
    verdict::Reason,
};

/// A TCP segment of one direction, as far as the comparison needs it.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub seq: Seq,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: &'a [u8],
}

impl<'a> Segment<'a> {
    /// A segment carrying `payload` at `seq`, no flags.
    pub fn data(seq: Seq, payload: &'a [u8]) -> Self {
        Self {
            seq,
            syn: false,
            fin: false,
            rst: false,
            payload,
        }
    }

    /// The connection's first segment in this direction (its `seq` is the ISN).
    pub fn syn(seq: Seq) -> Segment<'static> {
        Segment {
            seq,
            syn: true,
            fin: false,
            rst: false,
            payload: &[],
        }
    }

    /// With the FIN flag.
    #[must_use]
    pub fn with_fin(mut self) -> Self {
        self.fin = true;
        self
    }
}

/// Which stream of the connection: the client's (requests) or the server's (responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Request,
    Response,
}

/// A response as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Http(HttpResponse),
    /// A non-HTTP response: the bytes the server sent between one request and the next.
    Bytes(ByteSummary),
}

impl Response {
    /// The bytes it holds outside itself.
    fn heap(&self) -> usize {
        match self {
            Response::Http(r) => r.heap(),
            Response::Bytes(b) => b.heap(),
        }
    }
}

/// A request and its response, summarized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The request line (HTTP) or the request's first bytes, escaped.
    pub request: String,
    /// When the request's last byte was captured (online) or sent (test), or when the answer
    /// before it ended if that was later (HTTP): a request pipelined behind another, or sent
    /// ahead of the previous answer by the replay (`--send-ahead`), cannot be answered before
    /// that, and its latency counts from then.
    pub request_end: Option<Time>,
    pub response: Response,
    /// When the response's last byte arrived.
    pub response_end: Option<Time>,
}

impl Exchange {
    fn held(&self) -> usize {
        core::mem::size_of::<Self>() + self.request.capacity() + self.response.heap()
    }

    /// From the request's last byte to the response's.
    pub fn latency(&self) -> Option<core::time::Duration> {
        Some(self.response_end?.saturating_since(self.request_end?))
    }
}

/// What the framers hand back.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub done: VecDeque<Exchange>,
    pub done_held: usize,
    /// Exchanges begun (requests seen, or greetings).
    pub started: u64,
    /// Why nothing more will come from this side, if it broke.
    pub broken: Option<Reason>,
}

impl Out {
    fn push(&mut self, e: Exchange) {
        self.done_held += e.held();
        self.done.push_back(e);
    }

    fn pop(&mut self) -> Option<Exchange> {
        let e = self.done.pop_front()?;
        self.done_held -= e.held();
        Some(e)
    }

    fn fail(&mut self, reason: Reason) {
        self.broken.get_or_insert(reason);
    }
}

/// Bytes of a non-HTTP request kept for the log.
const FIRST_BYTES: usize = 64;

struct BytesExchange {
    first: Vec<u8>,
    request_end: Option<Time>,
    response: SummaryBuilder,
    response_end: Option<Time>,
}

impl BytesExchange {
    fn new() -> Self {
        Self {
            first: Vec::new(),
            request_end: None,
            response: SummaryBuilder::new(),
            response_end: None,
        }
    }

    fn finish(self) -> Exchange {
        Exchange {
            request: self.first.escape_ascii().to_string(),
            request_end: self.request_end,
            response: Response::Bytes(self.response.finish()),
            response_end: self.response_end,
        }
    }
}

/// Non-HTTP framing: a request starts with client bytes that follow server bytes (or when the
/// caller says so); its response is every server byte until the next request.
#[derive(Default)]
struct BytesFramer {
    current: Option<BytesExchange>,
}

impl BytesFramer {
    fn start(&mut self, out: &mut Out) {
        if let Some(e) = self.current.take() {
            out.push(e.finish());
        }
        out.started += 1;
        self.current = Some(BytesExchange::new());
    }

    fn request_start(&mut self, out: &mut Out) {
        let begun = self.current.as_ref().is_some_and(|c| {
            !c.first.is_empty() || c.request_end.is_some() || c.response_end.is_some()
        });
        if self.current.is_none() || begun {
            self.start(out);
        }
    }

    fn client(&mut self, now: Time, bytes: &[u8], out: &mut Out) {
        if self
            .current
            .as_ref()
            .is_none_or(|c| c.response_end.is_some())
        {
            self.start(out);
        }
        let c = self.current.as_mut().expect("started above");
        if c.first.len() < FIRST_BYTES {
            let n = (FIRST_BYTES - c.first.len()).min(bytes.len());
            c.first.extend_from_slice(&bytes[..n]);
        }
        c.request_end = Some(now);
    }

    fn server(&mut self, now: Time, bytes: &[u8], out: &mut Out) {
        if self.current.is_none() {
            // A greeting: the answer before the first request.
            self.start(out);
        }
        let c = self.current.as_mut().expect("started above");
        c.response.update(bytes);
        c.response_end = Some(now);
    }

    fn close(&mut self, out: &mut Out) {
        if let Some(e) = self.current.take() {
            out.push(e.finish());
        }
    }

    fn held(&self) -> usize {
        self.current
            .as_ref()
            .map_or(0, |c| c.first.capacity() + c.response.held())
    }
}

/// Server bytes kept until they can be read (their request not parsed yet, or the protocol not
/// known yet), with when each piece came.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Each piece's end offset in `bytes` and its time.
    pieces: VecDeque<(usize, Time)>,
}

impl Pending {
    fn push(&mut self, now: Time, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.pieces.push_back((self.bytes.len(), now));
    }

    fn held(&self) -> usize {
        self.bytes.capacity() + self.pieces.len() * 16
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Hands every piece to `f`, in order, and empties the store.
    fn drain(&mut self, mut f: impl FnMut(Time, &[u8])) {
        let Pending { bytes, pieces } = core::mem::take(self);
        let mut from = 0;
        for (end, time) in pieces {
            f(time, &bytes[from..end]);
            from = end;
        }
    }
}

struct PendingRequest {
    id: u64,
    head: RequestHead,
    end: Option<Time>,
}

/// HTTP/1.x framing: requests parsed from the client's stream, answered in order.
struct HttpFramer {
    requests: Parser,
    responses: Parser,
    /// Requests whose final response has not come yet, oldest (being answered) first.
    unanswered: VecDeque<PendingRequest>,
    /// What `unanswered` holds (kept as they come and go: the cap is checked after every input).
    unanswered_held: usize,
    next_id: u64,
    /// The request whose body is being read.
    in_body: Option<u64>,
    /// Server bytes that came before the request they answer was parsed.
    pending: Pending,
    last_server_byte: Option<Time>,
    /// When the latest final answer ended.
    last_answer_end: Option<Time>,
}

impl HttpFramer {
    /// `keep_lines`: whether request lines are kept (only the online side's are ever logged).
    fn new(keep_lines: bool) -> Self {
        let requests = Parser::new(Kind::Request);
        Self {
            requests: if keep_lines {
                requests
            } else {
                requests.without_request_lines()
            },
            responses: Parser::new(Kind::Response),
            unanswered: VecDeque::new(),
            unanswered_held: 0,
            next_id: 0,
            in_body: None,
            pending: Pending::default(),
            last_server_byte: None,
            last_answer_end: None,
        }
    }

    fn held(&self) -> usize {
        self.requests.held() + self.responses.held() + self.pending.held() + self.unanswered_held
    }

    fn request_held(r: &PendingRequest) -> usize {
        core::mem::size_of::<PendingRequest>() + r.head.line.capacity()
    }

    fn client(&mut self, now: Time, mut bytes: &[u8], cfg: &Config, out: &mut Out) {
        while !bytes.is_empty() && out.broken.is_none() {
            match self.requests.feed(bytes, &cfg.ignore) {
                Err(_) => out.fail(Reason::ParseError),
                Ok((n, event)) => {
                    bytes = &bytes[n..];
                    match event {
                        Some(Event::Request { head, done }) => {
                            let id = self.next_id;
                            self.next_id += 1;
                            out.started += 1;
                            self.in_body = (!done).then_some(id);
                            let r = PendingRequest {
                                id,
                                head,
                                end: done.then_some(now),
                            };
                            self.unanswered_held += Self::request_held(&r);
                            self.unanswered.push_back(r);
                            if !self.pending.is_empty() && self.unanswered.len() == 1 {
                                self.drain_pending(cfg, out);
                            }
                        }
                        Some(Event::RequestDone) => {
                            if let Some(id) = self.in_body.take()
                                && let Some(r) = self.unanswered.iter_mut().find(|r| r.id == id)
                            {
                                r.end = Some(now);
                            }
                        }
                        Some(Event::Response { .. }) | None => {}
                    }
                }
            }
        }
    }

    fn drain_pending(&mut self, cfg: &Config, out: &mut Out) {
        let mut pending = core::mem::take(&mut self.pending);
        pending.drain(|time, bytes| self.server(time, bytes, cfg, out));
    }

    fn server(&mut self, now: Time, mut bytes: &[u8], cfg: &Config, out: &mut Out) {
        if !bytes.is_empty() {
            self.last_server_byte = Some(now);
        }
        while !bytes.is_empty() && out.broken.is_none() {
            if self.responses.at_start() {
                let Some(front) = self.unanswered.front() else {
                    // An answer to a request not parsed yet: kept until it is.
                    self.pending.push(now, bytes);
                    return;
                };
                self.responses.expect(front.head.head, front.head.connect);
            }
            match self.responses.feed(bytes, &cfg.ignore) {
                Err(_) => out.fail(Reason::ParseError),
                Ok((n, event)) => {
                    bytes = &bytes[n..];
                    if let Some(Event::Response { response, upgraded }) = event {
                        self.answered(response, now, out);
                        if upgraded {
                            out.fail(Reason::Upgraded);
                        }
                    }
                }
            }
        }
    }

    fn answered(&mut self, response: HttpResponse, now: Time, out: &mut Out) {
        let Some(request) = self.unanswered.pop_front() else {
            return;
        };
        self.unanswered_held -= Self::request_held(&request);
        if self.in_body == Some(request.id) {
            self.in_body = None;
        }
        // A request that came while the one before it was still being answered waited for that
        // answer: its latency runs from the answer's end.
        let request_end = match (request.end, self.last_answer_end) {
            (Some(sent), Some(before)) => Some(sent.max(before)),
            (sent, _) => sent,
        };
        self.last_answer_end = Some(now);
        out.push(Exchange {
            request: request.head.line,
            request_end,
            response: Response::Http(response),
            response_end: Some(now),
        });
    }

    fn server_closed(&mut self, out: &mut Out) {
        if out.broken.is_none()
            && let Some(Event::Response { response, .. }) = self.responses.close()
        {
            let at = self.last_server_byte.unwrap_or(Time::ZERO);
            self.answered(response, at, out);
        }
    }
}

enum Framer {
    /// Protocol `Auto` before the client's first bytes; server bytes wait (a greeting, or an
    /// answer whose request is still missing from the client's stream).
    Undecided(Pending),
    Http(Box<HttpFramer>),
    Bytes(BytesFramer),
}

fn decide(http: bool, keep_lines: bool) -> Framer {
    if http {
        Framer::Http(Box::new(HttpFramer::new(keep_lines)))
    } else {
        Framer::Bytes(BytesFramer::default())
    }
}

impl Framer {
    fn server(&mut self, now: Time, bytes: &[u8], cfg: &Config, out: &mut Out) {
        match self {
            Framer::Http(h) => h.server(now, bytes, cfg, out),
            Framer::Bytes(b) => b.server(now, bytes, out),
            Framer::Undecided(p) => p.push(now, bytes),
        }
    }
}

/// Whether `bytes` (a connection's first from the client) start like an HTTP/1.x request.
fn looks_like_http(bytes: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"HEAD ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"CONNECT ",
        b"OPTIONS ",
        b"TRACE ",
        b"PATCH ",
    ];
    METHODS.iter().any(|m| {
        let n = m.len().min(bytes.len());
        n > 0 && bytes[..n] == m[..n]
    })
}

/// One side: both streams, the framer, the exchanges waiting to be paired.
pub(crate) struct Side {
    client: Reassembler,
    server: Reassembler,
    framer: Framer,
    pub out: Out,
    /// Nothing more will come (both streams ended, or the session finished).
    pub ended: bool,
    /// Whether HTTP request lines are kept (the online side's, which records name).
    keep_lines: bool,
}

impl Side {
    /// `keep_lines`: whether HTTP request lines are kept (records name the online side's).
    pub fn new(cfg: &Config, keep_lines: bool) -> Self {
        Self {
            client: Reassembler::new(),
            // The engine connects a replay again mid-session (a test server that reset or
            // closed): its answers go on in the new connection's sequence numbers.
            server: Reassembler::new().continued_by_new_connections(),
            framer: match cfg.protocol {
                Protocol::Auto => Framer::Undecided(Pending::default()),
                Protocol::Http => Framer::Http(Box::new(HttpFramer::new(keep_lines))),
                Protocol::Bytes => Framer::Bytes(BytesFramer::default()),
            },
            out: Out::default(),
            ended: false,
            keep_lines,
        }
    }

    pub fn held(&self) -> usize {
        let framer = match &self.framer {
            Framer::Undecided(p) => p.held(),
            Framer::Http(h) => h.held(),
            Framer::Bytes(b) => b.held(),
        };
        self.client.held() + self.server.held() + framer + self.out.done_held
    }

    pub fn pop(&mut self) -> Option<Exchange> {
        self.out.pop()
    }

    /// How far this side has come (for the caller's diagnostics).
    pub fn progress(&self) -> crate::session::Progress {
        crate::session::Progress {
            requests: self.out.started,
            waiting: self.out.done.len(),
            client_bytes: self.client.delivered(),
            server_bytes: self.server.delivered(),
            client_gap: self.client.has_gap(),
            server_gap: self.server.has_gap(),
            ended: self.ended,
            broken: self.out.broken,
        }
    }

    /// Why this side will give no more exchanges, once that is so.
    pub fn terminal(&self) -> Option<Reason> {
        self.out.broken.or(self.ended.then_some(Reason::Incomplete))
    }

    pub fn handle_segment(&mut self, now: Time, dir: Direction, seg: Segment<'_>, cfg: &Config) {
        if self.ended || self.out.broken.is_some() {
            return;
        }
        let Self {
            client,
            server,
            framer,
            out,
            keep_lines,
            ..
        } = self;
        let stream = match dir {
            Direction::Request => client,
            Direction::Response => server,
        };
        if seg.rst && !stream.is_started() {
            // A reset before anything of this stream: an earlier connection's on the same
            // addresses (the engine's final RST of the replay before), not this one's.
            return;
        }
        let accepted = stream.handle_segment(
            now,
            seg.seq,
            seg.syn,
            seg.fin,
            seg.payload,
            &mut |bytes: &[u8]| {
                if let Framer::Undecided(pending) = framer {
                    if dir == Direction::Response {
                        pending.push(now, bytes);
                        return;
                    }
                    let mut pending = core::mem::take(pending);
                    *framer = decide(looks_like_http(bytes), *keep_lines);
                    pending.drain(|t, b| framer.server(t, b, cfg, out));
                }
                match (&mut *framer, dir) {
                    (Framer::Http(h), Direction::Request) => h.client(now, bytes, cfg, out),
                    (Framer::Http(h), Direction::Response) => h.server(now, bytes, cfg, out),
                    (Framer::Bytes(b), Direction::Request) => b.client(now, bytes, out),
                    (Framer::Bytes(b), Direction::Response) => b.server(now, bytes, out),
                    (Framer::Undecided(_), _) => {}
                }
            },
        );
        if dir == Direction::Response
            && self.server.is_finished()
            && let Framer::Http(h) = &mut self.framer
        {
            h.server_closed(&mut self.out);
        }
        // A reset ends the side only if it lies in the stream (not an older connection's).
        let reset = seg.rst && !accepted.ignored;
        if reset || (self.client.is_finished() && self.server.is_finished()) {
            self.end();
        }
    }

    /// `len` bytes at `seq` of `dir` that will never come (a segment seen without its payload).
    pub fn handle_lost(&mut self, now: Time, dir: Direction, seq: Seq, len: usize) {
        if self.ended || self.out.broken.is_some() {
            return;
        }
        match dir {
            Direction::Request => self.client.handle_lost(now, seq, len),
            Direction::Response => self.server.handle_lost(now, seq, len),
        }
    }

    /// The caller's request boundary (non-HTTP protocols): a new request starts now.
    pub fn request_start(&mut self) {
        if let Framer::Bytes(b) = &mut self.framer
            && !self.ended
            && self.out.broken.is_none()
        {
            b.request_start(&mut self.out);
        }
    }

    /// Gives up on a side whose stream has had bytes missing since `deadline` or before.
    pub fn check_gap(&mut self, now: Time, timeout: core::time::Duration) {
        let expired = |r: &Reassembler| r.gap_since().is_some_and(|t| t + timeout <= now);
        if !self.ended && (expired(&self.client) || expired(&self.server)) {
            self.out.fail(Reason::Gap);
            self.end();
        }
    }

    /// The earliest time a gap would be given up.
    pub fn deadline(&self, timeout: core::time::Duration) -> Option<Time> {
        if self.ended || self.out.broken.is_some() {
            return None;
        }
        [self.client.gap_since(), self.server.gap_since()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t + timeout)
    }

    /// Nothing more comes: what is open is closed (a body until close ends here).
    pub fn end(&mut self) {
        if self.ended {
            return;
        }
        if self.client.has_gap() || self.server.has_gap() {
            self.out.fail(Reason::Gap);
        }
        match &mut self.framer {
            Framer::Http(h) => h.server_closed(&mut self.out),
            Framer::Bytes(b) if self.out.broken.is_none() => b.close(&mut self.out),
            Framer::Bytes(_) => {}
            Framer::Undecided(pending) => {
                // Only the server spoke: a greeting.
                let mut pending = core::mem::take(pending);
                let mut bytes = BytesFramer::default();
                pending.drain(|t, b| bytes.server(t, b, &mut self.out));
                if self.out.broken.is_none() {
                    bytes.close(&mut self.out);
                }
            }
        }
        self.ended = true;
        // What was parked can no longer be delivered.
        self.client = Reassembler::new();
        self.server = Reassembler::new();
        self.framer = Framer::Undecided(Pending::default());
    }
}
