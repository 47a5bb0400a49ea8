//! The verdict on one request: the online and the test response compared, the latencies, the
//! record of a difference, and the counters.

use core::{fmt, ops::AddAssign, time::Duration};

use crate::{
    digest::{ByteSummary, Digest, Offset},
    http::{HeaderValue, Headers, HttpResponse},
    side::{Exchange, Response},
};

/// Why a request was not compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The session held more than its cap.
    OverCap,
    /// Bytes of a stream never came (a gap that did not fill within the gap timeout, or at the
    /// end).
    Gap,
    /// A response (or its request) did not come to its end on one side.
    Incomplete,
    /// A stream that is not HTTP/1.x as far as the parser reads it, or two sides that framed
    /// differently.
    ParseError,
    /// HTTP ended on the connection (101 Switching Protocols, a tunnel after CONNECT).
    Upgraded,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::OverCap,
        Reason::Gap,
        Reason::Incomplete,
        Reason::ParseError,
        Reason::Upgraded,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Reason::OverCap => "over_cap",
            Reason::Gap => "gap",
            Reason::Incomplete => "incomplete",
            Reason::ParseError => "parse_error",
            Reason::Upgraded => "upgraded",
        }
    }
}

/// What differs first, in the order compared: status, headers, body length, body bytes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Difference {
    Status {
        online: u16,
        test: u16,
    },
    /// The first header (by name) whose values differ or that one side lacks.
    Header {
        name: String,
        online: Option<HeaderValue>,
        test: Option<HeaderValue>,
    },
    BodyLength {
        online: u64,
        test: u64,
        at: Offset,
    },
    /// Bodies of the same length, different bytes.
    Body {
        at: Offset,
    },
    /// A non-HTTP response: lengths and where the bytes first differ.
    Bytes {
        online: u64,
        test: u64,
        at: Offset,
    },
}

/// One side's response in a record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResponseFacts {
    /// HTTP status (none for other protocols).
    pub status: Option<u16>,
    /// Body length (HTTP) or response length.
    pub length: u64,
    pub digest: Digest,
    /// From the request's last byte to the response's, in microseconds.
    pub latency_us: Option<u64>,
}

/// Everything the `--compare-log` line of a differing request says (the caller adds the
/// session's addresses).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    /// The request's number in its session, from 0.
    pub index: u64,
    /// The request line, or the request's first bytes (escaped).
    pub request: String,
    pub online: ResponseFacts,
    pub test: ResponseFacts,
    pub difference: Difference,
}

/// The verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Same,
    Differ(Box<Record>),
    NotCompared(Reason),
}

/// One request's verdict and latencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The request's number in its session, from 0.
    pub index: u64,
    pub outcome: Outcome,
    /// Production's response time (request's last byte to response's last byte).
    pub online_latency: Option<Duration>,
    /// The test server's.
    pub test_latency: Option<Duration>,
}

fn body(r: &Response) -> &ByteSummary {
    match r {
        Response::Http(h) => &h.body,
        Response::Bytes(b) => b,
    }
}

fn facts(e: &Exchange) -> ResponseFacts {
    let b = body(&e.response);
    ResponseFacts {
        status: match &e.response {
            Response::Http(h) => Some(h.status),
            Response::Bytes(_) => None,
        },
        length: b.len,
        digest: b.digest,
        latency_us: e
            .latency()
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
    }
}

/// The first header that differs, walking both sorted lists (none when their encodings, which
/// are canonical, are the same).
fn header_difference(online: &Headers, test: &Headers) -> Option<Difference> {
    if online == test {
        return None;
    }
    let (mut a, mut b) = (online.iter().peekable(), test.iter().peekable());
    loop {
        let d = match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(x), Some(y)) if x.0 == y.0 => {
                if x.1 == y.1 {
                    a.next();
                    b.next();
                    continue;
                }
                Difference::Header {
                    name: x.0.to_owned(),
                    online: Some(x.1.to_value()),
                    test: Some(y.1.to_value()),
                }
            }
            (Some(x), y) if y.is_none_or(|y| x.0 < y.0) => Difference::Header {
                name: x.0.to_owned(),
                online: Some(x.1.to_value()),
                test: None,
            },
            (_, Some(y)) => Difference::Header {
                name: y.0.to_owned(),
                online: None,
                test: Some(y.1.to_value()),
            },
            (Some(_), None) => unreachable!("matched above"),
        };
        return Some(d);
    }
}

fn http_difference(a: &HttpResponse, b: &HttpResponse) -> Option<Difference> {
    if a.status != b.status {
        return Some(Difference::Status {
            online: a.status,
            test: b.status,
        });
    }
    if let Some(d) = header_difference(&a.headers, &b.headers) {
        return Some(d);
    }
    let at = a.body.first_difference(&b.body)?;
    Some(if a.body.len == b.body.len {
        Difference::Body { at }
    } else {
        Difference::BodyLength {
            online: a.body.len,
            test: b.body.len,
            at,
        }
    })
}

/// Compares the `index`-th exchange of online with the test's.
pub fn compare(index: u64, online: &Exchange, test: &Exchange) -> Verdict {
    let difference = match (&online.response, &test.response) {
        (Response::Http(a), Response::Http(b)) => Ok(http_difference(a, b)),
        (Response::Bytes(a), Response::Bytes(b)) => {
            Ok(a.first_difference(b).map(|at| Difference::Bytes {
                online: a.len,
                test: b.len,
                at,
            }))
        }
        _ => Err(Reason::ParseError),
    };
    let outcome = match difference {
        Err(reason) => Outcome::NotCompared(reason),
        Ok(None) => Outcome::Same,
        Ok(Some(difference)) => Outcome::Differ(Box::new(Record {
            index,
            request: online.request.clone(),
            online: facts(online),
            test: facts(test),
            difference,
        })),
    };
    Verdict {
        index,
        outcome,
        online_latency: online.latency(),
        test_latency: test.latency(),
    }
}

/// The comparison's counters: requests by verdict, sessions over the cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub same: u64,
    pub differ: u64,
    /// Requests not compared, by [`Reason`] (indexed as [`Reason::ALL`]).
    pub not_compared_by: [u64; 5],
    /// Sessions that went over their cap (their requests from then on are not counted).
    pub sessions_over_cap: u64,
}

impl Stats {
    /// Requests not compared, all reasons.
    pub fn not_compared(&self) -> u64 {
        self.not_compared_by.iter().sum()
    }

    /// Requests not compared for `reason`.
    pub fn not_compared_for(&self, reason: Reason) -> u64 {
        self.not_compared_by[reason as usize]
    }

    /// Counts a verdict.
    pub fn count(&mut self, v: &Verdict) {
        match &v.outcome {
            Outcome::Same => self.same += 1,
            Outcome::Differ(_) => self.differ += 1,
            Outcome::NotCompared(r) => self.not_compared_by[*r as usize] += 1,
        }
    }
}

impl AddAssign<&Stats> for Stats {
    fn add_assign(&mut self, rhs: &Stats) {
        self.same += rhs.same;
        self.differ += rhs.differ;
        for (a, b) in self.not_compared_by.iter_mut().zip(rhs.not_compared_by) {
            *a += b;
        }
        self.sessions_over_cap += rhs.sessions_over_cap;
    }
}

impl fmt::Display for Stats {
    /// `same=.. differ=.. not_compared=.. (over_cap=.. gap=.. ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "same={} differ={} not_compared={}",
            self.same,
            self.differ,
            self.not_compared()
        )?;
        for r in Reason::ALL {
            write!(f, " {}={}", r.name(), self.not_compared_for(r))?;
        }
        write!(f, " sessions_over_cap={}", self.sessions_over_cap)
    }
}
