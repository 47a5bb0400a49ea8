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

/// A kept header's value as stored in [`Headers`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValueRef<'a> {
    Text(&'a str),
    Digest(u64),
}

impl ValueRef<'_> {
    /// As an owned [`HeaderValue`] (for a record).
    pub fn to_value(self) -> HeaderValue {
        match self {
            ValueRef::Text(s) => HeaderValue::Text(s.to_owned()),
            ValueRef::Digest(d) => HeaderValue::Digest(d),
        }
    }
}

/// Value tags in [`Headers`]' encoding.
const TEXT: u8 = 0;
const DIGEST: u8 = 1;

/// A response's kept headers, sorted by name (repeated names in their order), in one
/// allocation: each header as its name's length (2 bytes, little-endian), the name (lower case,
/// UTF-8), then either [`TEXT`], the value's length (1 byte, at most [`MAX_KEPT_VALUE`]) and the
/// value (UTF-8), or [`DIGEST`] and its XXH3-64 (8 bytes). The encoding is canonical, so two
/// lists are the same exactly when their bytes are.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Headers {
    buf: Box<[u8]>,
}

impl Headers {
    /// Whether no header was kept.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The headers' bytes on the heap.
    pub fn heap(&self) -> usize {
        self.buf.len()
    }

    /// The headers, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ValueRef<'_>)> {
        let mut rest = &self.buf[..];
        core::iter::from_fn(move || {
            let (n, r) = rest.split_first_chunk::<2>()?;
            let (name, r) = r.split_at(usize::from(u16::from_le_bytes(*n)));
            let (tag, r) = r.split_first()?;
            let (value, r) = if *tag == TEXT {
                let (len, r) = r.split_first()?;
                let (text, r) = r.split_at(usize::from(*len));
                (
                    ValueRef::Text(core::str::from_utf8(text).unwrap_or_default()),
                    r,
                )
            } else {
                let (d, r) = r.split_first_chunk::<8>()?;
                (ValueRef::Digest(u64::from_le_bytes(*d)), r)
            };
            rest = r;
            Some((core::str::from_utf8(name).unwrap_or_default(), value))
        })
    }

    /// As a list of owned [`Header`]s.
    pub fn to_vec(&self) -> Vec<Header> {
        self.iter()
            .map(|(name, value)| Header {
                name: name.to_owned(),
                value: value.to_value(),
            })
            .collect()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The headers of the message under way, encoded as [`Headers`] one after another in arrival
/// order; sorted into a [`Headers`] when the message is complete. Kept across messages, so a
/// parser allocates for headers only when a message has more than any before it.
#[derive(Default)]
struct HeaderScratch {
    buf: Vec<u8>,
    /// Each header's (start, name end, end) in `buf`.
    spans: Vec<(u32, u32, u32)>,
}

impl HeaderScratch {
    fn clear(&mut self) {
        self.buf.clear();
        self.spans.clear();
    }

    fn held(&self) -> usize {
        self.buf.len() + self.spans.len() * core::mem::size_of::<(u32, u32, u32)>()
    }

    /// Adds a header (`name` as read, `value` trimmed).
    fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.buf.len();
        let name = String::from_utf8_lossy(name);
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&name_len.to_le_bytes());
        self.buf
            .extend_from_slice(&name.as_bytes()[..usize::from(name_len)]);
        self.buf[start + 2..].make_ascii_lowercase();
        let name_end = self.buf.len();
        if value.len() <= MAX_KEPT_VALUE {
            let text = String::from_utf8_lossy(value);
            // A lossy value may have grown past the limit (3 bytes per invalid one).
            let text = &text.as_bytes()[..text.len().min(usize::from(u8::MAX))];
            #[expect(clippy::cast_possible_truncation, reason = "at most 255")]
            self.buf.extend_from_slice(&[TEXT, text.len() as u8]);
            self.buf.extend_from_slice(text);
        } else {
            self.buf.push(DIGEST);
            self.buf.extend_from_slice(&xxh3_64(value).to_le_bytes());
        }
        let pos = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.spans
            .push((pos(start), pos(name_end), pos(self.buf.len())));
    }

    /// The headers sorted by name (stable), in one allocation; the scratch emptied.
    fn take(&mut self) -> Headers {
        if self.spans.is_empty() {
            self.buf.clear();
            return Headers::default();
        }
        let buf = &self.buf;
        let name = |&(s, n, _): &(u32, u32, u32)| &buf[s as usize + 2..n as usize];
        self.spans.sort_by(|a, b| name(a).cmp(name(b)));
        let mut out = Vec::with_capacity(buf.len());
        for &(s, _, e) in &self.spans {
            out.extend_from_slice(&buf[s as usize..e as usize]);
        }
        self.clear();
        Headers {
            buf: out.into_boxed_slice(),
        }
    }
}

/// A request as kept: enough to frame its answer and to name it in the log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RequestHead {
    /// The request line, at most [`MAX_REQUEST_LINE`] bytes, invalid UTF-8 replaced (empty from
    /// a parser told not to keep it, [`Parser::without_request_lines`]).
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
    pub headers: Headers,
    /// The body as sent after the transfer coding is removed (chunks joined).
    pub body: ByteSummary,
    /// 1xx interim responses that came before it.
    pub interim: u32,
}

impl HttpResponse {
    /// The bytes it holds outside itself.
    pub fn heap(&self) -> usize {
        self.body.heap() + self.headers.heap()
    }
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
    headers: HeaderScratch,
    /// The body's summary, while a response's body is read (`summarizing`); kept across
    /// messages.
    body: SummaryBuilder,
    summarizing: bool,
    /// For a response: whether its request was HEAD, and CONNECT.
    request_head: bool,
    request_connect: bool,
    /// Whether request lines are kept (see [`Parser::without_request_lines`]).
    keep_lines: bool,
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
            headers: HeaderScratch::default(),
            body: SummaryBuilder::new(),
            summarizing: false,
            request_head: false,
            request_connect: false,
            keep_lines: true,
        }
    }

    /// A request parser that keeps no request line ([`RequestHead::line`] empty): for a side
    /// whose requests are never named in a record (the test side's), one allocation less per
    /// request.
    #[must_use]
    pub fn without_request_lines(mut self) -> Self {
        self.keep_lines = false;
        self
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
            + self.headers.held()
            + if self.summarizing {
                self.body.held()
            } else {
                0
            }
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
            self.headers = HeaderScratch::default();
            self.summarizing = false;
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
                    let Some(i) = memchr::memchr(b'\n', rest) else {
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
        if self.summarizing {
            self.body.update(bytes);
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
                    line: if self.keep_lines {
                        String::from_utf8_lossy(kept).into_owned()
                    } else {
                        String::new()
                    },
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
        let colon = memchr::memchr(b':', line).ok_or(ParseError::Header)?;
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
            self.headers.push(name, value);
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
                self.summarizing = true;
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
                // Fed only while summarizing: otherwise empty.
                let body = self.body.take();
                self.summarizing = false;
                let response = HttpResponse {
                    status: self.status,
                    headers: self.headers.take(),
                    body,
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
            r.headers.to_vec(),
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
