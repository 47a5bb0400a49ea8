//! Arbitrary sequences of captured packets, reply headers and clock steps into the engine: every
//! `poll_*` call returns (no loop), nothing panics, and every written packet parses back.
#![no_main]

use tcpcopy_engine::{
    Config, Engine, Mapping, Time,
    wire::{Payload, parse},
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut cfg = Config::new(vec![Mapping::parse("80-198.51.100.30:80").unwrap()]);
    cfg.copies = 2;
    let mut e = Engine::new(cfg).unwrap();
    let mut now = 0u64;
    let mut buf = vec![0u8; 2048];
    let mut rest = data;
    // Each step: an op byte, a length byte, that many bytes.
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        match op % 3 {
            0 => e.handle_captured(Time::from_micros(now), bytes),
            1 => e.handle_response(Time::from_micros(now), bytes),
            _ => {
                now += u64::from(*len) * 10_000;
                e.handle_timeout(Time::from_micros(now));
            }
        }
        let t = Time::from_micros(now);
        while e.poll_event().is_some() {}
        while let Some(tx) = e.poll_transmit(t, &mut buf) {
            assert!(parse(&buf[..tx.size], Payload::Whole).is_ok());
        }
        let _ = e.poll_timeout();
    }
});
