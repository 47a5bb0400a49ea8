//! What a comparison is told: the protocol, the headers to ignore, the limits.

use std::time::Duration;

/// Response headers ignored by default: those two servers answering with the same content still
/// send differently, every time.
///
/// - `Date`: each server's clock at the moment of the answer.
/// - `Server`: the software and version, which a test deployment is there to change.
/// - `Expires`: computed from the answer's time (`Date` + max-age) by most servers.
/// - `Last-Modified`, `ETag`: taken from the file's modification time (and size, inode) on the
///   disk of each host (nginx, Apache), so two deployments of the same files differ.
/// - `Age`: how long a cache in front held the answer.
/// - `Connection`, `Keep-Alive`: the connection's management (timeouts, limits), not the answer.
/// - `Content-Length`, `Transfer-Encoding`: framing; the body is compared after it is removed
///   (chunks joined), by length and digest, so the same body sent chunked by one server and with
///   a length by the other is the same answer.
pub const DEFAULT_IGNORED_HEADERS: [&str; 10] = [
    "date",
    "server",
    "expires",
    "last-modified",
    "etag",
    "age",
    "connection",
    "keep-alive",
    "content-length",
    "transfer-encoding",
];

/// Header names left out of the comparison, matched without regard to case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignore {
    names: Vec<Vec<u8>>,
}

impl Default for Ignore {
    /// [`DEFAULT_IGNORED_HEADERS`].
    fn default() -> Self {
        Self {
            names: DEFAULT_IGNORED_HEADERS
                .iter()
                .map(|n| n.as_bytes().to_vec())
                .collect(),
        }
    }
}

impl Ignore {
    /// No header ignored.
    pub fn none() -> Self {
        Self { names: Vec::new() }
    }

    /// Ignores `name` as well (`--compare-ignore-header NAME`).
    pub fn add(&mut self, name: &str) {
        let name = name.trim().to_ascii_lowercase().into_bytes();
        if !name.is_empty() && !self.names.contains(&name) {
            self.names.push(name);
        }
    }

    /// Whether the header `name` is ignored.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// How responses are told apart from each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x if the connection's first bytes from the client are an HTTP method and a space,
    /// otherwise [`Protocol::Bytes`].
    #[default]
    Auto,
    /// HTTP/1.x requests and responses.
    Http,
    /// Any other protocol: a response is what the server sent between one request and the next.
    Bytes,
}

/// The comparison's settings, shared by the sessions (behind an `Arc`).
#[derive(Clone, Debug)]
pub struct Config {
    pub protocol: Protocol,
    pub ignore: Ignore,
    /// Bytes one session may hold (both sides: out-of-order segments, bytes waiting for their
    /// request, partial lines, summaries waiting for the other side); past it the session is
    /// not compared (`over_cap`).
    pub session_cap: usize,
    /// How long bytes may be missing from a stream of the online side before the rest of that
    /// side is given up (`gap`): a frame the capture lost never comes again.
    pub gap_timeout: Duration,
    /// The same for the test side, whose missing bytes the test server sends again (tcpcopy
    /// acknowledges its answers only in order with `--compare`): a hole there is a loss being
    /// repaired, waited for longer (retransmission timeouts back off).
    pub test_gap_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            protocol: Protocol::Auto,
            ignore: Ignore::default(),
            session_cap: 1 << 20,
            gap_timeout: Duration::from_secs(2),
            test_gap_timeout: Duration::from_secs(20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_is_case_insensitive_and_extendable() {
        let mut i = Ignore::default();
        assert!(i.contains(b"DATE") && i.contains(b"Server") && !i.contains(b"x-id"));
        i.add("X-Request-Id");
        assert!(i.contains(b"x-request-id"));
        assert!(!Ignore::none().contains(b"date"));
    }
}
