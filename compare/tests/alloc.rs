//! Allocations per request: the comparison runs on the online host beside production, once per
//! request and side, so its steady state must not allocate per header or per digest. Counted
//! with a counting global allocator (crate `stats_alloc`); alone in this test binary, so no other
//! test's allocations are counted.

use std::{alloc::System, sync::Arc};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tcpcopy_compare::{Config, Direction, Outcome, Segment, Seq, Session, Time, Which};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const EXCHANGES: u64 = 2000;

/// A keep-alive session's `n` requests on both sides, each side's request and response as one
/// segment, production answering first and the test server after it (the replay behind by one
/// request); returns the verdicts that were the same.
fn run(s: &mut Session, from: u64, n: u64, seqs: &mut [Seq; 4]) -> u64 {
    let request = b"GET /api/items/42?fields=name,price HTTP/1.1\r\nHost: shop.example\r\n\
        User-Agent: wrk\r\nAccept: application/json\r\n\r\n";
    let body = "{\"id\":42,\"name\":\"a small thing\",\"price\":1999}\n";
    let response = |date: &str, server: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nServer: {server}\r\nDate: Thu, 03 Dec 2026 {date} GMT\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\
             Cache-Control: max-age=60\r\nVary: Accept-Encoding\r\nX-Frame-Options: DENY\r\n\r\n\
             {body}",
            body.len()
        )
        .into_bytes()
    };
    let (online, test) = (
        response("08:00:00", "nginx/1.22.1"),
        response("08:00:07", "nginx/1.26.0"),
    );
    let mut same = 0;
    for i in from..from + n {
        let t = Time::from_micros(i * 100);
        for (k, which, answer) in [(0, Which::Online, &online), (2, Which::Test, &test)] {
            for (j, dir, bytes) in [
                (k, Direction::Request, &request[..]),
                (k + 1, Direction::Response, &answer[..]),
            ] {
                s.handle_segment(t, which, dir, Segment::data(seqs[j], bytes));
                seqs[j] = seqs[j] + u32::try_from(bytes.len()).unwrap();
            }
        }
        while let Some(v) = s.poll_verdict() {
            same += u64::from(v.outcome == Outcome::Same);
        }
    }
    same
}

#[test]
fn a_compared_exchange_allocates_little() {
    let mut s = Session::new(Arc::new(Config::default()));
    let isns = [1000u32, 5000, 70_000, 900_000];
    let mut seqs = isns.map(|i| Seq::new(i) + 1);
    for (which, dir, isn) in [
        (Which::Online, Direction::Request, isns[0]),
        (Which::Online, Direction::Response, isns[1]),
        (Which::Test, Direction::Request, isns[2]),
        (Which::Test, Direction::Response, isns[3]),
    ] {
        s.handle_segment(Time::ZERO, which, dir, Segment::syn(Seq::new(isn)));
    }
    // Buffers and queues grown once.
    assert_eq!(run(&mut s, 0, 100, &mut seqs), 100);
    let region = Region::new(GLOBAL);
    let same = run(&mut s, 100, EXCHANGES, &mut seqs);
    let change = region.change();
    assert_eq!(same, EXCHANGES, "every request compared the same");
    let allocations = change.allocations + change.reallocations;
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let per = allocations as f64 / EXCHANGES as f64;
    println!(
        "{allocations} allocations ({} new, {} grown) in {EXCHANGES} exchanges: {per:.2} per exchange (both sides)",
        change.allocations, change.reallocations
    );
    assert!(
        per <= 4.0,
        "{per:.2} allocations per compared exchange (both sides)"
    );
}
