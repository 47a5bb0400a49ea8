//! A streaming HTTP/1.x message parser that keeps only summaries.
//!
//! Bytes go in in pieces of any size ([`Parser::feed`]); requests come out as their first line and
//! method, responses as status, kept headers and a body summary ([`ByteSummary`]). Bodies are
//! framed by `Content-Length`, `Transfer-Encoding: chunked` (extensions and trailers skipped), or
//! the end of the connection; 1xx interim responses are skipped (101 ends HTTP on the
//! connection), and the answers to HEAD, 204 and 304 have no body. Nothing is buffered but the
//! current line (at most [`MAX_LINE`] bytes): body bytes go straight into the digest.

use core::fmt;

use xxhash_rust::xxh3::xxh3_64;

use crate::{
    config::Ignore,
    digest::{ByteSummary, SummaryBuilder},
};

/// The longest start, header, chunk-size or trailer line accepted.
pub const MAX_LINE: usize = 16 * 1024;
/// The most header (or trailer) lines in one message.
pub const MAX_HEADERS: usize = 256;
/// Header values up to this long are kept as they are; longer ones as a digest.
pub const MAX_KEPT_VALUE: usize = 64;
/// How much of a request line is kept for the log.
pub const MAX_REQUEST_LINE: usize = 256;

/// Why a stream is not HTTP/1.x as this parser reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line longer than [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// The first line is no HTTP/1.x request or status line.
    #[error("malformed start line")]
    StartLine,
    /// A header line without a name and a colon.
    #[error("malformed header line")]
    Header,
    /// More than [`MAX_HEADERS`] header lines.
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    /// A Content-Length that is no number, or two that disagree.
    #[error("malformed or conflicting Content-Length")]
    ContentLength,
    /// A request Transfer-Encoding that does not end in chunked.
    #[error("request Transfer-Encoding not ending in chunked")]
    TransferEncoding,
    /// A chunk size that is no hex number, or chunk data not followed by CRLF.
    #[error("malformed chunk")]
    Chunk,
}

/// A header value as kept: the text when short, else its digest.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum HeaderValue {
    Text(String),
    Digest(u64),
}

impl HeaderValue {
    fn of(value: &[u8]) -> Self {
        if value.len() <= MAX_KEPT_VALUE {
            HeaderValue::Text(String::from_utf8_lossy(value).into_owned())
        } else {
            HeaderValue::Digest(xxh3_64(value))
        }
    }

    fn held(&self) -> usize {
        match self {
            HeaderValue::Text(s) => s.capacity(),
            HeaderValue::Digest(_) => 0,
        }
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderValue::Text(s) => f.write_str(s),
            HeaderValue::Digest(d) => write!(f, "xxh3:{d:016x}"),
        }
    }
}

impl serde::Serialize for HeaderValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A kept header: its name in lower case and its value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Header {
    pub name: String,
    pub value: HeaderValue,
}

/// A request as kept: enough to frame its answer and to name it in the log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RequestHead {
    /// The request line, at most [`MAX_REQUEST_LINE`] bytes, invalid UTF-8 replaced.
    pub line: String,
    /// HEAD: the answer has no body.
    pub head: bool,
    /// CONNECT: a 2xx answer turns the connection into a tunnel.
    pub connect: bool,
}

/// A final response as kept.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Kept headers (the ignored ones left out), sorted by name, repeated names in their order.
    pub headers: Vec<Header>,
    /// The body as sent after the transfer coding is removed (chunks joined).
    pub body: ByteSummary,
    /// 1xx interim responses that came before it.
    pub interim: u32,
}

impl HttpResponse {
    /// The bytes it holds outside itself.
    pub fn heap(&self) -> usize {
        self.body.heap() + headers_heap(&self.headers)
    }
}

/// The bytes kept headers hold on the heap: their slots, names and values.
fn headers_heap(headers: &[Header]) -> usize {
    headers
        .iter()
        .map(|h| core::mem::size_of::<Header>() + h.name.capacity() + h.value.held())
        .sum()
}

/// What a piece of input completed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A request's head is complete; `done` when it has no body (its last byte came too).
    Request { head: RequestHead, done: bool },
    /// The last byte of the current request's body.
    RequestDone,
    /// A final response is complete; `upgraded` when HTTP ends on the connection after it (101,
    /// or a 2xx to CONNECT).
    Response {
        response: HttpResponse,
        upgraded: bool,
    },
}

/// Which side of the exchange a parser reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Headers,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    UntilClose,
    /// No more HTTP on this stream (a tunnel, or after an error): input is consumed and dropped.
    Done,
}

/// One direction's parser.
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts of the message under way"
)]
pub struct Parser {
    kind: Kind,
    state: State,
    line: Vec<u8>,
    // The message being parsed.
    head: Option<RequestHead>,
    status: u16,
    interim: u32,
    lines: usize,
    content_length: Option<u64>,
    chunked: bool,
    encoded: bool,
    headers: Vec<Header>,
    body: Option<SummaryBuilder>,
    /// For a response: whether its request was HEAD, and CONNECT.
    request_head: bool,
    request_connect: bool,
}

impl Parser {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            state: State::Start,
            line: Vec::new(),
            head: None,
            status: 0,
            interim: 0,
            lines: 0,
            content_length: None,
            chunked: false,
            encoded: false,
            headers: Vec::new(),
            body: None,
            request_head: false,
            request_connect: false,
        }
    }

    /// Whether no message is under way (the next byte starts one).
    pub fn at_start(&self) -> bool {
        self.state == State::Start && self.line.is_empty() && self.interim == 0
    }

    /// Whether the stream left HTTP (a tunnel, an error).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// For a response parser: the request the next response answers.
    pub fn expect(&mut self, head: bool, connect: bool) {
        self.request_head = head;
        self.request_connect = connect;
    }

    /// Bytes held: the partial line, the headers and body digest of the message under way.
    pub fn held(&self) -> usize {
        self.line.capacity()
            + headers_heap(&self.headers)
            + self.body.as_ref().map_or(0, SummaryBuilder::held)
    }

    /// Parses from `input` up to the first event; returns the bytes consumed and the event.
    /// Consumes all of `input` when no event came. After an error the parser is done.
    pub fn feed(
        &mut self,
        input: &[u8],
        ignore: &Ignore,
    ) -> Result<(usize, Option<Event>), ParseError> {
        let r = self.feed_inner(input, ignore);
        if r.is_err() {
            self.state = State::Done;
            self.line = Vec::new();
            self.headers = Vec::new();
            self.body = None;
        }
        r
    }

    fn feed_inner(
        &mut self,
        input: &[u8],
        ignore: &Ignore,
    ) -> Result<(usize, Option<Event>), ParseError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            match self.state {
                State::Done => return Ok((input.len(), None)),
                State::UntilClose => {
                    self.body_bytes(rest);
                    return Ok((input.len(), None));
                }
                State::Length(left) | State::ChunkData(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    self.body_bytes(&rest[..n]);
                    pos += n;
                    let left = left - n as u64;
                    if let State::ChunkData(_) = self.state {
                        self.state = if left == 0 {
                            State::ChunkEnd
                        } else {
                            State::ChunkData(left)
                        };
                    } else if left == 0 {
                        return Ok((pos, Some(self.complete())));
                    } else {
                        self.state = State::Length(left);
                    }
                }
                State::Start
                | State::Headers
                | State::ChunkSize
                | State::ChunkEnd
                | State::Trailers => {
                    let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                        if self.line.len() + rest.len() > MAX_LINE {
                            return Err(ParseError::LineTooLong);
                        }
                        self.line.extend_from_slice(rest);
                        return Ok((input.len(), None));
                    };
                    pos += i + 1;
                    let event = if self.line.is_empty() {
                        if i > MAX_LINE {
                            return Err(ParseError::LineTooLong);
                        }
                        self.on_line(&rest[..i], ignore)?
                    } else {
                        if self.line.len() + i > MAX_LINE {
                            return Err(ParseError::LineTooLong);
                        }
                        let mut line = core::mem::take(&mut self.line);
                        line.extend_from_slice(&rest[..i]);
                        let event = self.on_line(&line, ignore);
                        line.clear();
                        if line.capacity() <= 256 {
                            self.line = line;
                        }
                        event?
                    };
                    if event.is_some() {
                        return Ok((pos, event));
                    }
                }
            }
        }
        Ok((pos, None))
    }

    /// The connection's end (this direction's FIN): completes a body that runs until close.
    pub fn close(&mut self) -> Option<Event> {
        if self.state == State::UntilClose {
            Some(self.complete())
        } else {
            None
        }
    }

    fn body_bytes(&mut self, bytes: &[u8]) {
        if let Some(b) = &mut self.body {
            b.update(bytes);
        }
    }

    fn on_line(&mut self, line: &[u8], ignore: &Ignore) -> Result<Option<Event>, ParseError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.state {
            State::Start => {
                self.start_line(line)?;
                Ok(None)
            }
            State::Headers if line.is_empty() => self.headers_done(),
            State::Headers => {
                self.header(line, ignore)?;
                Ok(None)
            }
            State::ChunkSize => {
                let digits = line
                    .iter()
                    .position(|b| !b.is_ascii_hexdigit())
                    .unwrap_or(line.len());
                let (hex, ext) = line.split_at(digits);
                let ext = ext.trim_ascii_start();
                if hex.is_empty() || hex.len() > 15 || !(ext.is_empty() || ext[0] == b';') {
                    return Err(ParseError::Chunk);
                }
                let size = hex.iter().fold(0u64, |n, &d| {
                    n << 4 | u64::from(char::from(d).to_digit(16).unwrap_or(0))
                });
                self.state = if size == 0 {
                    self.lines = 0;
                    State::Trailers
                } else {
                    State::ChunkData(size)
                };
                Ok(None)
            }
            State::ChunkEnd => {
                if !line.is_empty() {
                    return Err(ParseError::Chunk);
                }
                self.state = State::ChunkSize;
                Ok(None)
            }
            State::Trailers if line.is_empty() => Ok(Some(self.complete())),
            State::Trailers => {
                self.lines += 1;
                if self.lines > MAX_HEADERS {
                    return Err(ParseError::TooManyHeaders);
                }
                Ok(None)
            }
            State::Length(_) | State::ChunkData(_) | State::UntilClose | State::Done => Ok(None),
        }
    }

    fn start_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        self.lines = 0;
        self.content_length = None;
        self.chunked = false;
        self.encoded = false;
        match self.kind {
            Kind::Request => {
                if line.is_empty() {
                    // Tolerated before a request line (RFC 9112 section 2.2).
                    return Ok(());
                }
                let mut words = line.split(|&b| b == b' ');
                let method = words.next().unwrap_or_default();
                let valid = !method.is_empty()
                    && method.iter().all(|b| b.is_ascii_alphabetic() || *b == b'-')
                    && words.next().is_some_and(|t| !t.is_empty())
                    && words.next().is_some_and(|v| v.starts_with(b"HTTP/1."));
                if !valid {
                    return Err(ParseError::StartLine);
                }
                let kept = &line[..line.len().min(MAX_REQUEST_LINE)];
                self.head = Some(RequestHead {
                    line: String::from_utf8_lossy(kept).into_owned(),
                    head: method == b"HEAD",
                    connect: method == b"CONNECT",
                });
            }
            Kind::Response => {
                let status = line
                    .strip_prefix(b"HTTP/1.")
                    .filter(|r| r.len() >= 5 && r[0].is_ascii_digit() && r[1] == b' ')
                    .map(|r| &r[2..5])
                    .filter(|s| s.iter().all(u8::is_ascii_digit))
                    .filter(|_| line.len() == 12 || line[12] == b' ')
                    .ok_or(ParseError::StartLine)?;
                self.status = status
                    .iter()
                    .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
                self.headers.clear();
            }
        }
        self.state = State::Headers;
        Ok(())
    }

    fn header(&mut self, line: &[u8], ignore: &Ignore) -> Result<(), ParseError> {
        self.lines += 1;
        if self.lines > MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // An obsolete folded continuation: not framing, and rare; left out.
            return Ok(());
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ParseError::Header)?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || name.iter().any(u8::is_ascii_whitespace) {
            return Err(ParseError::Header);
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            for part in value.split(|&b| b == b',') {
                let n = parse_decimal(part.trim_ascii()).ok_or(ParseError::ContentLength)?;
                if self.content_length.is_some_and(|c| c != n) {
                    return Err(ParseError::ContentLength);
                }
                self.content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.encoded = true;
            self.chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
        if self.kind == Kind::Response && !ignore.contains(name) {
            self.headers.push(Header {
                name: String::from_utf8_lossy(name).to_ascii_lowercase(),
                value: HeaderValue::of(value),
            });
        }
        Ok(())
    }

    fn headers_done(&mut self) -> Result<Option<Event>, ParseError> {
        match self.kind {
            Kind::Request => {
                let head = self.head.take().ok_or(ParseError::StartLine)?;
                let connect = head.connect;
                let body = if self.encoded {
                    if !self.chunked {
                        return Err(ParseError::TransferEncoding);
                    }
                    Some(State::ChunkSize)
                } else {
                    self.content_length.filter(|&n| n > 0).map(State::Length)
                };
                let done = body.is_none();
                self.state = match body {
                    Some(s) => s,
                    None if connect => State::Done,
                    None => State::Start,
                };
                Ok(Some(Event::Request { head, done }))
            }
            Kind::Response => {
                let status = self.status;
                if (100..200).contains(&status) && status != 101 {
                    self.interim += 1;
                    self.headers.clear();
                    self.state = State::Start;
                    return Ok(None);
                }
                self.body = Some(SummaryBuilder::new());
                let upgraded = status == 101 || (self.request_connect && status / 100 == 2);
                if upgraded || self.request_head || status == 204 || status == 304 {
                    return Ok(Some(self.complete()));
                }
                self.state = if self.encoded {
                    if self.chunked {
                        State::ChunkSize
                    } else {
                        State::UntilClose
                    }
                } else {
                    match self.content_length {
                        Some(0) => return Ok(Some(self.complete())),
                        Some(n) => State::Length(n),
                        None => State::UntilClose,
                    }
                };
                Ok(None)
            }
        }
    }

    /// The message under way is complete.
    fn complete(&mut self) -> Event {
        self.lines = 0;
        match self.kind {
            Kind::Request => {
                self.state = State::Start;
                Event::RequestDone
            }
            Kind::Response => {
                let upgraded =
                    self.status == 101 || (self.request_connect && self.status / 100 == 2);
                self.state = if upgraded { State::Done } else { State::Start };
                let mut headers = core::mem::take(&mut self.headers);
                headers.sort_by(|a, b| a.name.cmp(&b.name));
                headers.shrink_to_fit();
                let response = HttpResponse {
                    status: self.status,
                    headers,
                    body: self.body.take().unwrap_or_default().finish(),
                    interim: core::mem::take(&mut self.interim),
                };
                self.request_head = false;
                self.request_connect = false;
                Event::Response { response, upgraded }
            }
        }
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::summarize;

    fn ignore() -> Ignore {
        Ignore::default()
    }

    /// Every event of `input` fed whole, then fed byte by byte: both the same.
    fn events(kind: Kind, input: &[u8], head: bool) -> Result<Vec<Event>, ParseError> {
        let run = |step: usize| -> Result<Vec<Event>, ParseError> {
            let mut p = Parser::new(kind);
            p.expect(head, false);
            let mut out = Vec::new();
            for piece in input.chunks(step) {
                let mut rest = piece;
                while !rest.is_empty() {
                    let (n, e) = p.feed(rest, &ignore())?;
                    rest = &rest[n..];
                    if let Some(e) = e {
                        out.push(e);
                        p.expect(head, false);
                    }
                }
            }
            out.extend(p.close());
            Ok(out)
        };
        let whole = run(input.len().max(1));
        assert_eq!(whole, run(1), "byte by byte");
        assert_eq!(whole, run(7), "7 at a time");
        whole
    }

    fn response(input: &[u8]) -> HttpResponse {
        match events(Kind::Response, input, false).unwrap().as_slice() {
            [Event::Response { response, .. }] => response.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_length_body() {
        let r = response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, summarize(b"hello"));
        // Content-Length is framing, ignored by default; X-A kept.
        assert_eq!(
            r.headers,
            vec![Header {
                name: "x-a".into(),
                value: HeaderValue::Text("b".into())
            }]
        );
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let r = response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
              5;name=value\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        );
        assert_eq!(r.body, summarize(b"hello world"));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let r = response(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
              HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        );
        assert_eq!((r.status, r.interim), (201, 2));
        assert_eq!(r.body.len, 2);
        assert!(r.headers.is_empty());
    }

    #[test]
    fn head_204_304_have_no_body() {
        let e = events(
            Kind::Response,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            true,
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        for input in [
            &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
        ] {
            assert_eq!(response(input).body.len, 0);
        }
    }

    #[test]
    fn close_delimited_body_ends_with_the_connection() {
        let r = response(b"HTTP/1.0 200 OK\r\n\r\nall of it");
        assert_eq!(r.body, summarize(b"all of it"));
    }

    #[test]
    fn pipelined_requests_and_bodies() {
        let e = events(
            Kind::Request,
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
              POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
              PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n\
              HEAD /d HTTP/1.0\r\n\r\n",
            false,
        )
        .unwrap();
        let lines: Vec<_> = e
            .iter()
            .map(|e| match e {
                Event::Request { head, done } => format!("{} {done} {}", head.line, head.head),
                Event::RequestDone => "done".into(),
                Event::Response { .. } => panic!(),
            })
            .collect();
        assert_eq!(
            lines,
            [
                "GET /a HTTP/1.1 true false",
                "POST /b HTTP/1.1 false false",
                "done",
                "PUT /c HTTP/1.1 false false",
                "done",
                "HEAD /d HTTP/1.0 true true"
            ]
        );
    }

    #[test]
    fn upgrade_ends_http() {
        let e = events(
            Kind::Response,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
            false,
        )
        .unwrap();
        assert!(matches!(
            e.as_slice(),
            [Event::Response { upgraded: true, .. }]
        ));
    }

    #[test]
    fn malformed_input_is_an_error() {
        for (input, err) in [
            (&b"SSH-2.0-OpenSSH\r\n"[..], ParseError::StartLine),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseError::ContentLength,
            ),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", ParseError::Header),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                ParseError::Chunk,
            ),
        ] {
            assert_eq!(events(Kind::Response, input, false), Err(err), "{input:?}");
        }
        let long = vec![b'a'; MAX_LINE + 10];
        assert_eq!(
            events(Kind::Response, &long, false),
            Err(ParseError::LineTooLong)
        );
    }
}
