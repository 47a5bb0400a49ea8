//! Criterion benchmark of the comparison alone: keep-alive HTTP sessions (both sides' requests
//! and responses cut into 1448-byte segments) reassembled, parsed, summarized and compared, in
//! response bytes per second (both sides counted); and the digest alone, XXH3-128 against
//! SHA-256, to show what the choice of hash costs. `cargo xtask bench` runs it; `cargo bench -p
//! tcpcopy-compare` too.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, Throughput};
use sha2::Digest as _;
use tcpcopy_compare::{Config, Direction, Outcome, Segment, Seq, Session, Time, Which};

const MSS: usize = 1448;

/// A keep-alive session of `requests` GETs answered with `body` bytes of HTML-like text.
struct Trace {
    requests: Vec<u8>,
    online: Vec<u8>,
    test: Vec<u8>,
    count: usize,
}

fn trace(requests: usize, body: usize) -> Trace {
    let text: Vec<u8> = b"<p>The quick brown fox jumps over the lazy dog, again and again.</p>\n"
        .iter()
        .copied()
        .cycle()
        .take(body)
        .collect();
    let mut t = Trace {
        requests: Vec::new(),
        online: Vec::new(),
        test: Vec::new(),
        count: requests,
    };
    for i in 0..requests {
        t.requests.extend_from_slice(
            format!(
                "GET /page/{i}.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench\r\n\
                 Accept: text/html\r\nAccept-Encoding: gzip\r\n\r\n"
            )
            .as_bytes(),
        );
        for (side, server, date) in [
            (&mut t.online, "nginx/1.22.1", "10:00:00"),
            (&mut t.test, "nginx/1.26.0", "10:00:07"),
        ] {
            side.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nServer: {server}\r\nDate: Tue, 01 Dec 2026 {date} GMT\r\n\
                     Content-Type: text/html; charset=utf-8\r\nContent-Length: {body}\r\n\
                     Connection: keep-alive\r\nCache-Control: max-age=60\r\nVary: Accept-Encoding\r\n\r\n"
                )
                .as_bytes(),
            );
            side.extend_from_slice(&text);
        }
    }
    t
}

fn feed(s: &mut Session, which: Which, dir: Direction, isn: u32, stream: &[u8], t: u64) {
    let mut seq = Seq::new(isn) + 1;
    for seg in stream.chunks(MSS) {
        s.handle_segment(Time::from_micros(t), which, dir, Segment::data(seq, seg));
        seq = seq + u32::try_from(seg.len()).unwrap();
    }
}

/// One session through the comparison; returns the verdicts that were the same.
fn run(config: &Arc<Config>, t: &Trace) -> usize {
    let mut s = Session::new(Arc::clone(config));
    for (which, isn, answers, at) in [
        (Which::Online, 1000, &t.online, 0),
        (Which::Test, 9_000_000, &t.test, 5000),
    ] {
        for dir in [Direction::Request, Direction::Response] {
            s.handle_segment(
                Time::from_micros(at),
                which,
                dir,
                Segment::syn(Seq::new(isn)),
            );
        }
        feed(&mut s, which, Direction::Request, isn, &t.requests, at + 1);
        feed(&mut s, which, Direction::Response, isn, answers, at + 2);
    }
    s.finish();
    let mut same = 0;
    while let Some(v) = s.poll_verdict() {
        same += usize::from(v.outcome == Outcome::Same);
    }
    same
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let config = Arc::new(Config::default());
    for (requests, body) in [
        (200usize, 48usize),
        (100, 1024),
        (20, 16 * 1024),
        (4, 256 * 1024),
    ] {
        let t = trace(requests, body);
        assert_eq!(run(&config, &t), t.count, "every answer the same");
        let mut g = c.benchmark_group("compare");
        g.throughput(Throughput::Bytes((t.online.len() + t.test.len()) as u64));
        let size = if body < 1024 {
            format!("{body}b")
        } else {
            format!("{}k", body / 1024)
        };
        g.bench_function(format!("http_{requests}x{size}"), |b| {
            b.iter(|| black_box(run(&config, &t)));
        });
        g.finish();
    }
    let data = vec![0x5au8; 64 * 1024];
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("xxh3_128_64k", |b| {
        b.iter(|| black_box(xxhash_rust::xxh3::xxh3_128(black_box(&data))));
    });
    g.bench_function("sha256_64k", |b| {
        b.iter(|| black_box(sha2::Sha256::digest(black_box(&data))));
    });
    g.finish();
    c.final_summary();
}
