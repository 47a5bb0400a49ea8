//! Arbitrary segments of both sides and both directions, request marks, clock steps and the end
//! into a comparison session: nothing panics, every call returns, the session never holds more
//! than its cap, and every verdict is counted once, in request order.
#![no_main]

use std::sync::Arc;

use tcpcopy_compare::{Config, Direction, Protocol, Segment, Seq, Session, Time, Which};

const CAP: usize = 64 * 1024;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut cfg = Config {
        protocol: [Protocol::Auto, Protocol::Http, Protocol::Bytes][usize::from(mode % 3)],
        session_cap: CAP,
        ..Config::default()
    };
    cfg.ignore.add("x-ignored");
    // No timer is ever set further ahead than the longer of the two gap timeouts.
    let horizon = u64::try_from(cfg.gap_timeout.max(cfg.test_gap_timeout).as_micros())
        .unwrap_or(u64::MAX);
    let mut s = Session::new(Arc::new(cfg));
    let mut now = 0u64;
    let mut given = 0u64;
    // Each step: an op byte, a sequence offset byte, a length byte, that many bytes. The
    // payload is repeated to reach sizes past the parser's and the cap's limits now and then.
    while let [op, off, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        let which = if op & 1 == 0 {
            Which::Online
        } else {
            Which::Test
        };
        let dir = if op & 2 == 0 {
            Direction::Request
        } else {
            Direction::Response
        };
        let payload: Vec<u8> = if op & 0x80 != 0 {
            bytes.iter().copied().cycle().take(n * 64).collect()
        } else {
            bytes.to_vec()
        };
        match (op >> 2) & 0x7 {
            0 => s.handle_request_start(which),
            1 => {
                now += u64::from(*off) * 50_000;
                s.handle_timeout(Time::from_micros(now));
            }
            flags => {
                let seg = Segment {
                    seq: Seq::new(u32::from(*off) * 97)
                        + if op & 0x40 != 0 { 0xffff_ff00 } else { 0 },
                    syn: flags == 2,
                    fin: flags == 3,
                    rst: flags == 4 && op & 0x20 != 0,
                    payload: &payload,
                };
                s.handle_segment(Time::from_micros(now), which, dir, seg);
            }
        }
        assert!(s.held() <= CAP, "held {} past the cap", s.held());
        while let Some(v) = s.poll_verdict() {
            assert_eq!(v.index, given);
            given += 1;
        }
        if let Some(t) = s.poll_timeout() {
            assert!(t.as_micros() <= now.saturating_add(horizon));
        }
        now += 1;
    }
    s.finish();
    while let Some(v) = s.poll_verdict() {
        assert_eq!(v.index, given);
        given += 1;
    }
    let st = s.stats();
    assert_eq!(st.same + st.differ + st.not_compared(), given);
});
