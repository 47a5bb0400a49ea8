//! A session compared end to end: both sides' segments in, verdicts out.

use std::{sync::Arc, time::Duration};

use proptest::prelude::*;
use tcpcopy_compare::{
    Config, Difference, Direction, Offset, Outcome, Protocol, Reason, Segment, Seq, Session, Time,
    Verdict, Which,
};

fn us(t: u64) -> Time {
    Time::from_micros(t)
}

/// One side's connection: where each direction's next byte goes.
struct Conn {
    which: Which,
    client: Seq,
    server: Seq,
}

impl Conn {
    fn open(s: &mut Session, which: Which, client_isn: u32, server_isn: u32) -> Conn {
        let (c, v) = (Seq::new(client_isn), Seq::new(server_isn));
        s.handle_segment(us(0), which, Direction::Request, Segment::syn(c));
        s.handle_segment(us(0), which, Direction::Response, Segment::syn(v));
        Conn {
            which,
            client: c + 1,
            server: v + 1,
        }
    }

    fn request(&mut self, s: &mut Session, t: u64, bytes: &[u8]) {
        s.handle_segment(
            us(t),
            self.which,
            Direction::Request,
            Segment::data(self.client, bytes),
        );
        self.client = self.client + u32::try_from(bytes.len()).unwrap();
    }

    fn response(&mut self, s: &mut Session, t: u64, bytes: &[u8]) {
        s.handle_segment(
            us(t),
            self.which,
            Direction::Response,
            Segment::data(self.server, bytes),
        );
        self.server = self.server + u32::try_from(bytes.len()).unwrap();
    }

    fn close(&mut self, s: &mut Session, t: u64) {
        s.handle_segment(
            us(t),
            self.which,
            Direction::Request,
            Segment::data(self.client, &[]).with_fin(),
        );
        s.handle_segment(
            us(t),
            self.which,
            Direction::Response,
            Segment::data(self.server, &[]).with_fin(),
        );
    }
}

fn session(cfg: Config) -> (Session, Conn, Conn) {
    let mut s = Session::new(Arc::new(cfg));
    let online = Conn::open(&mut s, Which::Online, 1000, 5000);
    let test = Conn::open(&mut s, Which::Test, 1000, 900_000);
    (s, online, test)
}

fn verdicts(s: &mut Session) -> Vec<Verdict> {
    std::iter::from_fn(|| s.poll_verdict()).collect()
}

const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n";

fn ok(extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One GET answered `online` by production and `test` by the test server.
fn one(cfg: Config, online: &[u8], test: &[u8]) -> Verdict {
    let (mut s, mut a, mut b) = session(cfg);
    a.request(&mut s, 1000, GET);
    a.response(&mut s, 3000, online);
    b.request(&mut s, 10_000, GET);
    b.response(&mut s, 15_000, test);
    let mut v = verdicts(&mut s);
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

fn record(v: &Verdict) -> &tcpcopy_compare::Record {
    match &v.outcome {
        Outcome::Differ(r) => r,
        other => panic!("not a difference: {other:?}"),
    }
}

#[test]
fn same_answer_with_latencies() {
    let v = one(
        Config::default(),
        &ok(
            "Date: Mon, 01 Dec 2026 10:00:00 GMT\r\nServer: nginx/1.22\r\n",
            "hello",
        ),
        &ok(
            "Date: Mon, 01 Dec 2026 10:00:09 GMT\r\nServer: nginx/1.26\r\n",
            "hello",
        ),
    );
    assert_eq!(v.outcome, Outcome::Same);
    assert_eq!(v.index, 0);
    assert_eq!(v.online_latency, Some(Duration::from_millis(2)));
    assert_eq!(v.test_latency, Some(Duration::from_millis(5)));
}

#[test]
fn status_differs() {
    let v = one(
        Config::default(),
        &ok("", "hello"),
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!",
    );
    let r = record(&v);
    assert_eq!(
        r.difference,
        Difference::Status {
            online: 200,
            test: 404
        }
    );
    assert_eq!(r.request, "GET /index.html HTTP/1.1");
    assert_eq!((r.online.status, r.test.status), (Some(200), Some(404)));
    assert_eq!(r.online.latency_us, Some(2000));
    assert_eq!(r.test.latency_us, Some(5000));
}

#[test]
fn a_header_differs_and_ignored_ones_do_not() {
    let v = one(
        Config::default(),
        &ok("X-Cache: HIT\r\nETag: \"1-2\"\r\n", "hello"),
        &ok("X-Cache: MISS\r\nETag: \"3-4\"\r\n", "hello"),
    );
    let Difference::Header { name, online, test } = &record(&v).difference else {
        panic!("{v:?}");
    };
    assert_eq!(name, "x-cache");
    assert_eq!(online.as_ref().unwrap().to_string(), "HIT");
    assert_eq!(test.as_ref().unwrap().to_string(), "MISS");

    // A header only one side sends.
    let v = one(Config::default(), &ok("X-New: 1\r\n", "hi"), &ok("", "hi"));
    assert!(matches!(
        &record(&v).difference,
        Difference::Header { name, test: None, .. } if name == "x-new"
    ));

    // Ignored by the caller's list (names without regard to case).
    let online = ok("X-Request-Id: 17\r\n", "hello");
    let test = ok("x-request-id: 99\r\n", "hello");
    assert!(matches!(
        one(Config::default(), &online, &test).outcome,
        Outcome::Differ(_)
    ));
    let mut cfg = Config::default();
    cfg.ignore.add("X-Request-ID");
    assert_eq!(one(cfg, &online, &test).outcome, Outcome::Same);
}

#[test]
fn body_differs_with_the_same_length() {
    let v = one(
        Config::default(),
        &ok("", "hello world"),
        &ok("", "hello WORLD"),
    );
    let r = record(&v);
    assert_eq!(
        r.difference,
        Difference::Body {
            at: Offset {
                offset: 6,
                exact: true
            }
        }
    );
    assert_eq!((r.online.length, r.test.length), (11, 11));
    assert_ne!(r.online.digest, r.test.digest);
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["difference"]["what"], "body");
    assert_eq!(json["difference"]["at"]["offset"], 6);
    assert_eq!(json["online"]["status"], 200);
    assert_eq!(json["request"], "GET /index.html HTTP/1.1");
    assert_eq!(json["online"]["digest"].as_str().unwrap().len(), 32);
}

#[test]
fn body_length_differs() {
    let v = one(Config::default(), &ok("", "hello"), &ok("", "hello!"));
    assert!(matches!(
        record(&v).difference,
        Difference::BodyLength {
            online: 5,
            test: 6,
            ..
        }
    ));
}

#[test]
fn chunked_and_content_length_bodies_compare_equal() {
    let chunked =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\nTrailer: x\r\n\r\n";
    assert_eq!(
        one(Config::default(), &ok("", "hello"), chunked).outcome,
        Outcome::Same
    );
}

#[test]
fn pipelined_requests_with_head_and_interim_answers() {
    let (mut s, mut a, mut b) = session(Config::default());
    let reqs = b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nPOST /3 HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody";
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n";
    let post = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    let mut all = ok("", "one");
    all.extend_from_slice(head);
    all.extend_from_slice(post);
    // Online: everything at once. Test: the answers one at a time, the requests in pieces.
    a.request(&mut s, 100, reqs);
    a.response(&mut s, 200, &all);
    for piece in reqs.chunks(5) {
        b.request(&mut s, 1000, piece);
    }
    b.response(&mut s, 2000, &ok("", "one"));
    b.response(&mut s, 2100, head);
    b.response(&mut s, 2200, post);
    let v = verdicts(&mut s);
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v.iter().all(|v| v.outcome == Outcome::Same), "{v:?}");
    // The POST's latency runs from the HEAD's answer (2100), not from when it was sent (1000).
    assert_eq!(v[2].test_latency, Some(Duration::from_micros(100)));
    assert_eq!(s.stats().same, 3);
}

#[test]
fn a_request_sent_ahead_of_the_previous_answer_is_timed_from_its_end() {
    let (mut s, mut a, mut b) = session(Config::default());
    let (one, two) = (b"GET /1 HTTP/1.1\r\n\r\n", b"GET /2 HTTP/1.1\r\n\r\n");
    // Online: the second request after the first answer.
    a.request(&mut s, 100, one);
    a.response(&mut s, 300, &ok("", "one"));
    a.request(&mut s, 400, two);
    a.response(&mut s, 700, &ok("", "two"));
    // Test: the second sent ahead (at 1100, while the first is answered until 5000), answered
    // 250 us after the first answer ended.
    b.request(&mut s, 1000, one);
    b.request(&mut s, 1100, two);
    b.response(&mut s, 5000, &ok("", "one"));
    b.response(&mut s, 5250, &ok("", "two"));
    let v = verdicts(&mut s);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|v| v.outcome == Outcome::Same), "{v:?}");
    assert_eq!(v[0].test_latency, Some(Duration::from_millis(4)));
    assert_eq!(
        v[1].test_latency,
        Some(Duration::from_micros(250)),
        "not 4150"
    );
    assert_eq!(v[1].online_latency, Some(Duration::from_micros(300)));
}

#[test]
fn answer_before_its_request_is_reassembled_waits_for_it() {
    let (mut s, mut a, mut b) = session(Config::default());
    a.request(&mut s, 100, GET);
    a.response(&mut s, 200, &ok("", "x"));
    // The test side's request segment comes late (e.g. reordered capture of what was sent).
    let first = b.client;
    b.client = b.client + u32::try_from(GET.len()).unwrap();
    b.response(&mut s, 300, &ok("", "x"));
    assert!(verdicts(&mut s).is_empty());
    s.handle_segment(
        us(250),
        Which::Test,
        Direction::Request,
        Segment::data(first, GET),
    );
    assert_eq!(verdicts(&mut s)[0].outcome, Outcome::Same);
}

#[test]
fn ended_before_the_answer_is_incomplete() {
    let (mut s, mut a, mut b) = session(Config::default());
    a.request(&mut s, 100, GET);
    a.response(&mut s, 200, &ok("", "hello"));
    b.request(&mut s, 300, GET);
    b.response(&mut s, 400, &ok("", "hello")[..30]);
    b.close(&mut s, 500);
    let v = verdicts(&mut s);
    assert_eq!(v[0].outcome, Outcome::NotCompared(Reason::Incomplete));
    assert_eq!(v[0].online_latency, Some(Duration::from_micros(100)));
    // A test session that never answered at all.
    let (mut s, mut a, _b) = session(Config::default());
    a.request(&mut s, 100, GET);
    a.response(&mut s, 200, &ok("", "hello"));
    a.request(&mut s, 300, GET);
    s.finish();
    let v = verdicts(&mut s);
    assert_eq!(v.len(), 2);
    assert!(
        v.iter()
            .all(|v| v.outcome == Outcome::NotCompared(Reason::Incomplete))
    );
    assert_eq!(s.stats().not_compared_for(Reason::Incomplete), 2);
}

#[test]
fn close_delimited_bodies() {
    let (mut s, mut a, mut b) = session(Config::default());
    a.request(&mut s, 100, GET);
    a.response(&mut s, 200, b"HTTP/1.0 200 OK\r\n\r\nuntil the end");
    a.close(&mut s, 900);
    b.request(&mut s, 1000, GET);
    b.response(&mut s, 1100, b"HTTP/1.0 200 OK\r\n\r\nuntil the END");
    b.close(&mut s, 1500);
    let v = verdicts(&mut s);
    assert!(matches!(
        record(&v[0]).difference,
        Difference::Body {
            at: Offset { offset: 10, .. }
        }
    ));
    // The answer's last byte, not the FIN, ends its time.
    assert_eq!(v[0].online_latency, Some(Duration::from_micros(100)));
}

#[test]
fn a_gap_that_never_fills_is_given_up() {
    let (mut s, mut a, mut b) = session(Config::default());
    a.request(&mut s, 100, GET);
    a.response(&mut s, 200, &ok("", "hello"));
    b.request(&mut s, 1000, GET);
    let answer = ok("", "hello");
    // The first 10 bytes never come.
    s.handle_segment(
        us(1100),
        Which::Test,
        Direction::Response,
        Segment::data(b.server + 10, &answer[10..]),
    );
    let deadline = s.poll_timeout().unwrap();
    // The test server sends missing bytes again: its side waits `test_gap_timeout`.
    assert_eq!(deadline, us(1100) + Config::default().test_gap_timeout);
    s.handle_timeout(deadline - Duration::from_micros(1));
    assert!(verdicts(&mut s).is_empty());
    s.handle_timeout(deadline);
    assert_eq!(
        verdicts(&mut s)[0].outcome,
        Outcome::NotCompared(Reason::Gap)
    );
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.stats().not_compared_for(Reason::Gap), 1);
}

/// Production's side waits only `gap_timeout`: a frame the capture missed never comes back.
#[test]
fn a_gap_in_productions_answer_is_given_up_sooner() {
    let cfg = Config::default();
    assert!(cfg.gap_timeout < cfg.test_gap_timeout);
    let (mut s, mut a, mut b) = session(cfg.clone());
    a.request(&mut s, 100, GET);
    let answer = ok("", "hello");
    // The first 10 bytes of production's answer were not captured.
    s.handle_segment(
        us(200),
        Which::Online,
        Direction::Response,
        Segment::data(a.server + 10, &answer[10..]),
    );
    assert_eq!(s.poll_timeout(), Some(us(200) + cfg.gap_timeout));
    b.request(&mut s, 1000, GET);
    b.response(&mut s, 1100, &answer);
    s.handle_timeout(us(200) + cfg.gap_timeout - Duration::from_micros(1));
    assert!(verdicts(&mut s).is_empty());
    s.handle_timeout(us(200) + cfg.gap_timeout);
    assert_eq!(
        verdicts(&mut s)[0].outcome,
        Outcome::NotCompared(Reason::Gap)
    );
}

#[test]
fn over_the_cap_is_not_compared_and_frees_everything() {
    let cfg = Config {
        session_cap: 16 * 1024,
        ..Config::default()
    };
    let (mut s, mut a, _b) = session(cfg);
    // Online answers 1000 requests; the test side never does: online's summaries pile up.
    for i in 0..1000 {
        a.request(&mut s, i * 10, GET);
        a.response(&mut s, i * 10 + 5, &ok("X-N: 1\r\n", "some body"));
        assert!(s.held() <= 16 * 1024 || s.is_over_cap());
    }
    assert!(s.is_over_cap());
    assert_eq!(s.held(), 0);
    let v = verdicts(&mut s);
    assert!(!v.is_empty());
    assert!(
        v.iter()
            .all(|v| v.outcome == Outcome::NotCompared(Reason::OverCap))
    );
    assert_eq!(s.stats().sessions_over_cap, 1);
    s.finish();
    assert!(verdicts(&mut s).is_empty());
}

#[test]
fn parse_error_on_one_side() {
    let v = one(
        Config::default(),
        &ok("", "hi"),
        b"garbage, not HTTP\r\n\r\n",
    );
    assert_eq!(v.outcome, Outcome::NotCompared(Reason::ParseError));
}

#[test]
fn upgrade_ends_the_comparison() {
    let (mut s, mut a, mut b) = session(Config::default());
    let up = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi";
    for c in [&mut a, &mut b] {
        c.request(&mut s, 10, up);
        c.response(&mut s, 20, answer);
        c.request(&mut s, 30, b"\x81\x82abcd");
    }
    s.finish();
    let v = verdicts(&mut s);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].outcome, Outcome::Same);
}

#[test]
fn other_protocols_compare_bytes_between_requests() {
    let (mut s, mut a, mut b) = session(Config::default());
    let query = b"\x00\x00\x00\x05query";
    let mut answer: Vec<u8> = (0..200u8).collect();
    a.request(&mut s, 10, query);
    a.response(&mut s, 20, &answer[..100]);
    a.response(&mut s, 25, &answer[100..]);
    a.request(&mut s, 30, query);
    a.response(&mut s, 45, b"second");
    a.close(&mut s, 50);
    b.request(&mut s, 100, query);
    answer[150] ^= 1;
    b.response(&mut s, 130, &answer);
    b.request(&mut s, 140, query);
    b.response(&mut s, 150, b"second");
    b.close(&mut s, 160);
    let got = verdicts(&mut s);
    assert_eq!(got.len(), 2, "{got:?}");
    let r = record(&got[0]);
    assert_eq!(
        r.difference,
        Difference::Bytes {
            online: 200,
            test: 200,
            at: Offset {
                offset: 0,
                exact: false
            }
        }
    );
    assert_eq!(r.request, "\\x00\\x00\\x00\\x05query");
    assert_eq!((r.online.status, r.online.latency_us), (None, Some(15)));
    assert_eq!(r.test.latency_us, Some(30));
    assert_eq!(got[1].outcome, Outcome::Same);
    assert_eq!(got[1].test_latency, Some(Duration::from_micros(10)));
}

#[test]
fn bytes_differ_at_an_exact_offset() {
    let cfg = Config {
        protocol: Protocol::Bytes,
        ..Config::default()
    };
    let (mut s, mut a, mut b) = session(cfg);
    a.request(&mut s, 10, b"PING");
    a.response(&mut s, 20, b"+PONG from the online server");
    b.request(&mut s, 30, b"PING");
    b.response(&mut s, 40, b"+PONG from the test server");
    s.finish();
    let v = verdicts(&mut s);
    assert!(matches!(
        record(&v[0]).difference,
        Difference::Bytes {
            online: 28,
            test: 26,
            at: Offset {
                offset: 15,
                exact: true
            }
        }
    ));
}

#[test]
fn a_greeting_and_caller_marked_requests() {
    let (mut s, mut a, mut b) = session(Config::default());
    for (c, t) in [(&mut a, 0), (&mut b, 1000)] {
        c.response(&mut s, t + 1, b"220 ready\r\n");
        c.request(&mut s, t + 2, b"A\r\n");
        // The caller knows a second request starts although nothing was answered.
        s.handle_request_start(c.which);
        c.request(&mut s, t + 3, b"B\r\n");
        c.response(&mut s, t + 4, b"ok\r\n");
        c.close(&mut s, t + 5);
    }
    let v = verdicts(&mut s);
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v.iter().all(|v| v.outcome == Outcome::Same));
    // The greeting has no request: no latency.
    assert_eq!(v[0].online_latency, None);
    assert_eq!(v[2].online_latency, Some(Duration::from_micros(1)));
}

#[test]
fn stats_line() {
    let v = one(Config::default(), &ok("", "a"), &ok("", "b"));
    let mut stats = tcpcopy_compare::Stats::default();
    stats.count(&v);
    stats.count(&v);
    assert_eq!(
        stats.to_string(),
        "same=0 differ=2 not_compared=0 over_cap=0 gap=0 incomplete=0 parse_error=0 upgraded=0 sessions_over_cap=0"
    );
}

/// Segments of `stream` from `base`, cut at `cuts`, shuffled by `order`, with duplicates.
fn segments(stream: &[u8], cuts: &[usize], order: &[u16]) -> Vec<(usize, usize)> {
    let mut segs = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = cuts[i % cuts.len()].min(stream.len() - pos);
        segs.push((pos, n));
        pos += n;
        i += 1;
    }
    for &o in order.iter().take(5) {
        let s = usize::from(o) % stream.len();
        segs.push((s, (usize::from(o) % 300 + 1).min(stream.len() - s)));
    }
    for (k, &o) in order.iter().enumerate() {
        let a = k % segs.len();
        let b = usize::from(o) % segs.len();
        segs.swap(a, b);
    }
    segs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However the test side's streams are cut, reordered and duplicated (sequence numbers
    /// wrapping), the verdicts are those of the same bytes sent whole.
    #[test]
    fn any_segmentation_gives_the_same_verdicts(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1500), 1..4),
        chunked in any::<bool>(),
        flip in any::<Option<(usize, u8)>>(),
        cuts in proptest::collection::vec(1usize..700, 1..10),
        order in proptest::collection::vec(any::<u16>(), 0..40),
        isn in any::<u32>(),
    ) {
        let mut requests = Vec::new();
        let mut online = Vec::new();
        let mut test = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            requests.extend_from_slice(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
            online.extend_from_slice(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
            online.extend_from_slice(body);
            let mut body = body.clone();
            if let Some((at, x)) = flip && !body.is_empty() && x != 0 {
                let at = at % body.len();
                body[at] ^= x;
            }
            if chunked {
                test.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                for c in body.chunks(333) {
                    test.extend_from_slice(format!("{:x};e=1\r\n", c.len()).as_bytes());
                    test.extend_from_slice(c);
                    test.extend_from_slice(b"\r\n");
                }
                test.extend_from_slice(b"0\r\n\r\n");
            } else {
                test.extend_from_slice(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
                test.extend_from_slice(&body);
            }
        }
        let run = |segmented: bool| -> Vec<Outcome> {
            let mut s = Session::new(Arc::new(Config::default()));
            let mut a = Conn::open(&mut s, Which::Online, 7, 7);
            a.request(&mut s, 1, &requests);
            a.response(&mut s, 2, &online);
            let mut b = Conn::open(&mut s, Which::Test, isn, isn ^ 0x8000_0000);
            if segmented {
                for (st, n) in segments(&requests, &cuts, &order) {
                    s.handle_segment(us(3), Which::Test, Direction::Request,
                        Segment::data(b.client + u32::try_from(st).unwrap(), &requests[st..st + n]));
                }
                for (st, n) in segments(&test, &cuts, &order) {
                    s.handle_segment(us(4), Which::Test, Direction::Response,
                        Segment::data(b.server + u32::try_from(st).unwrap(), &test[st..st + n]));
                }
            } else {
                b.request(&mut s, 3, &requests);
                b.response(&mut s, 4, &test);
            }
            s.finish();
            std::iter::from_fn(|| s.poll_verdict()).map(|v| v.outcome).collect()
        };
        let whole = run(false);
        prop_assert_eq!(whole.len(), bodies.len());
        let changed = flip.is_some_and(|(_, x)| x != 0) && bodies.iter().any(|b| !b.is_empty());
        prop_assert_eq!(whole.iter().any(|o| matches!(o, Outcome::Differ(_))), changed);
        prop_assert_eq!(run(true), whole);
    }
}

/// A replay behind production: production's exchanges wait for the test side's, each held as
/// its summary only (about 312 bytes for a small nginx answer, counted once), so a session
/// lagging by 3000 requests stays under the 1 MiB default cap of the crate.
#[test]
fn a_waiting_request_holds_its_summary_only() {
    let (mut s, mut online, _test) = session(Config::default());
    let resp = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 16:00:00 GMT\r\nContent-Type: application/octet-stream\r\nContent-Length: 20\r\nConnection: keep-alive\r\n\r\nsame /same/onk/x\n\n\n\n";
    let req = b"GET /same/onk/x HTTP/1.1\r\nHost: 198.51.100.20\r\n\r\n";
    let base = s.held();
    for i in 0..3000u64 {
        online.request(&mut s, i * 10, req);
        online.response(&mut s, i * 10 + 5, resp);
    }
    let per = (s.held() - base) / 3000;
    assert!(
        (200..=400).contains(&per),
        "{per} bytes per waiting request"
    );
    assert!(!s.is_over_cap());
    assert!(verdicts(&mut s).is_empty());
}

/// A reply whose payload never reached tcpcopy (intercept could not send it; the engine
/// acknowledged it, so it never comes again): its bytes are a gap on the test side, its FIN
/// (in the same segment) taken all the same, and the request `gap`, not `incomplete`; the one
/// before it compares. And when the lost bytes are the test side's first (its SYN-ACK not
/// seen), what follows them is not taken for the answer's start: `gap`, not `parse_error`.
#[test]
fn a_reply_without_its_payload_is_a_gap() {
    let answer = ok("", "hello");
    let len = u32::try_from(answer.len()).unwrap();
    let (mut s, mut a, mut b) = session(Config::default());
    for t in [100, 400] {
        a.request(&mut s, t, GET);
        a.response(&mut s, t + 50, &answer);
        b.request(&mut s, t + 100, GET);
    }
    b.response(&mut s, 250, &answer);
    s.handle_lost(
        us(600),
        Which::Test,
        Direction::Response,
        b.server,
        answer.len(),
    );
    s.handle_segment(
        us(600),
        Which::Test,
        Direction::Response,
        Segment::data(b.server + len, &[]).with_fin(),
    );
    a.close(&mut s, 700);
    s.finish();
    let v: Vec<_> = verdicts(&mut s).into_iter().map(|v| v.outcome).collect();
    assert_eq!(v, [Outcome::Same, Outcome::NotCompared(Reason::Gap)]);

    let mut s = Session::new(Arc::new(Config::default()));
    let mut a = Conn::open(&mut s, Which::Online, 1000, 5000);
    // The test side's SYN-ACK never came; its answer's first 10 bytes came without payload.
    s.handle_segment(
        us(0),
        Which::Test,
        Direction::Request,
        Segment::syn(Seq::new(1000)),
    );
    let mut b = Conn {
        which: Which::Test,
        client: Seq::new(1001),
        server: Seq::new(900_001),
    };
    a.request(&mut s, 100, GET);
    a.response(&mut s, 150, &answer);
    b.request(&mut s, 200, GET);
    s.handle_lost(us(250), Which::Test, Direction::Response, b.server, 10);
    b.server = b.server + 10;
    b.response(&mut s, 250, &answer[10..]);
    assert!(verdicts(&mut s).is_empty(), "waits for the gap");
    s.finish();
    let v: Vec<_> = verdicts(&mut s).into_iter().map(|v| v.outcome).collect();
    assert_eq!(v, [Outcome::NotCompared(Reason::Gap)]);
}

/// A reset ends a side only when it lies in its stream: one before the stream started (the
/// engine's final RST of an earlier replay on the same addresses, sent after this connection's
/// comparison began) or far outside it (an older connection's) leaves the side as it was.
#[test]
fn a_reset_of_another_connection_does_not_end_the_side() {
    let mut s = Session::new(Arc::new(Config::default()));
    let mut a = Conn::open(&mut s, Which::Online, 1000, 5000);
    let rst = |seq: u32| Segment {
        rst: true,
        ..Segment::data(Seq::new(seq), &[])
    };
    // Before the test side's SYN: an earlier connection's reset.
    s.handle_segment(us(1), Which::Test, Direction::Request, rst(77_777));
    let mut b = Conn::open(&mut s, Which::Test, 1000, 900_000);
    // Far outside the stream.
    s.handle_segment(
        us(2),
        Which::Test,
        Direction::Request,
        rst(1000 + (1 << 31)),
    );
    assert!(!s.progress(Which::Test).ended);
    a.request(&mut s, 100, GET);
    a.response(&mut s, 150, &ok("", "x"));
    b.request(&mut s, 200, GET);
    b.response(&mut s, 250, &ok("", "x"));
    let v: Vec<_> = verdicts(&mut s).into_iter().map(|v| v.outcome).collect();
    assert_eq!(v, [Outcome::Same]);
    // A reset in the stream ends the side.
    s.handle_segment(us(300), Which::Test, Direction::Request, rst(1000 + 1 + 41));
    assert!(s.progress(Which::Test).ended);
}

/// The test server's stream starts afresh at its SYN-ACK when an older connection's late
/// segment on the same addresses came first and set its start (the engine hands a replayed
/// tuple out again; the test server's last packets of the connection before it may still be on
/// their way): before, the new connection's SYN-ACK and answer, far from that start, were
/// ignored (`incomplete`) or parked (`gap`).
#[test]
fn an_older_connections_late_segment_does_not_start_the_stream() {
    let mut s = Session::new(Arc::new(Config::default()));
    let mut a = Conn::open(&mut s, Which::Online, 1000, 5000);
    s.handle_segment(
        us(0),
        Which::Test,
        Direction::Request,
        Segment::syn(Seq::new(1000)),
    );
    // The old connection's last ACK (and FIN), and a retransmission of its answer's end, from
    // far away in sequence space.
    s.handle_segment(
        us(1),
        Which::Test,
        Direction::Response,
        Segment::data(Seq::new(3_000_000_000), &[]).with_fin(),
    );
    s.handle_segment(
        us(1),
        Which::Test,
        Direction::Response,
        Segment::data(Seq::new(2_999_999_990), b"</html>\r\n\r\n"),
    );
    s.handle_segment(
        us(2),
        Which::Test,
        Direction::Response,
        Segment::syn(Seq::new(900_000)),
    );
    let mut b = Conn {
        which: Which::Test,
        client: Seq::new(1001),
        server: Seq::new(900_001),
    };
    a.request(&mut s, 100, GET);
    a.response(&mut s, 150, &ok("", "x"));
    b.request(&mut s, 200, GET);
    b.response(&mut s, 250, &ok("", "x"));
    let v: Vec<_> = verdicts(&mut s).into_iter().map(|v| v.outcome).collect();
    assert_eq!(v, [Outcome::Same]);
}

/// The engine connects a replay again mid-session (the test server closed or reset the
/// connection with requests still to come): the client's bytes keep their sequence numbers
/// (the new SYN is one before the first byte it sends again), the test server's answers come
/// in the new connection's: they go on the test side's server stream where it was. Before,
/// they were taken for the old connection's, far off: the later requests were `incomplete`.
#[test]
fn answers_on_a_new_connection_of_the_replay_go_on() {
    let (mut s, mut a, mut b) = session(Config::default());
    let answer = ok("", "x");
    for t in [100, 400] {
        a.request(&mut s, t, GET);
        a.response(&mut s, t + 50, &answer);
    }
    b.request(&mut s, 200, GET);
    b.response(&mut s, 250, &answer);
    // The test server closes; the engine connects again from the second request.
    s.handle_segment(
        us(260),
        Which::Test,
        Direction::Response,
        Segment::data(b.server, &[]).with_fin(),
    );
    s.handle_segment(
        us(500),
        Which::Test,
        Direction::Request,
        Segment::syn(b.client - 1),
    );
    s.handle_segment(
        us(501),
        Which::Test,
        Direction::Response,
        Segment::syn(Seq::new(2_000_000_000)),
    );
    b.server = Seq::new(2_000_000_001);
    b.request(&mut s, 502, GET);
    b.response(&mut s, 550, &answer);
    let v: Vec<_> = verdicts(&mut s).into_iter().map(|v| v.outcome).collect();
    assert_eq!(v, [Outcome::Same, Outcome::Same]);
}
