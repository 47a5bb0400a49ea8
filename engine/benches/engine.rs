//! Criterion benchmark of the engine alone: packets per second on a realistic mix (many
//! concurrent keep-alive sessions: handshake, requests, the test server's answers, close), and the
//! heap bytes one idle session costs. `cargo xtask bench` runs it; `cargo bench -p tcpcopy-engine`
//! too.

use std::{alloc::System, hint::black_box, time::Duration};

use criterion::{Criterion, Throughput};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tcpcopy_engine::{
    Config, Engine, Mapping, Time,
    wire::{TcpFlags, TcpOptions, build::Packet},
};

/// Counts heap bytes (stats_alloc), to measure what a session costs.
#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const TARGET: &str = "198.51.100.30:80";
const ONLINE: &str = "198.51.100.20:80";
const REQUEST: usize = 300;
const RESPONSE: u32 = 1200;

struct Input {
    captured: bool,
    bytes: Vec<u8>,
}

#[allow(clippy::too_many_arguments, reason = "a packet's fields")]
fn packet(
    src: &str,
    dst: &str,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
    opts: TcpOptions,
    claimed: u32,
) -> Vec<u8> {
    // With `claimed`, a reply header as intercept reports it: the IP total length counts the
    // payload left out.
    Packet::tcp(src, dst)
        .seq(seq)
        .ack(ack)
        .flags(flags)
        .payload(payload)
        .options(opts)
        .claiming(claimed)
        .ip()
}

/// `sessions` keep-alive sessions of `requests` requests each, interleaved round robin.
fn trace(sessions: u16, requests: u32) -> Vec<Input> {
    let syn_opts = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: None,
    };
    let none = TcpOptions::default();
    let body = vec![b'q'; REQUEST];
    let req = u32::try_from(REQUEST).unwrap();
    let per_session: Vec<Vec<Input>> = (0..sessions)
        .map(|i| {
            let client = format!("198.51.100.{}:{}", 10 + i / 10_000, 20_000 + i % 10_000);
            let (c0, o0, t0) = (1_000u32, 50_000u32, 90_000u32);
            let cap = |seq, ack, flags, payload: &[u8], opts| Input {
                captured: true,
                bytes: packet(&client, ONLINE, seq, ack, flags, payload, opts, 0),
            };
            let resp = |seq, ack, flags, opts, claimed| Input {
                captured: false,
                bytes: packet(TARGET, &client, seq, ack, flags, &[], opts, claimed),
            };
            let mut v = vec![
                cap(c0, 0, TcpFlags::SYN, &[], syn_opts),
                resp(t0, c0 + 1, TcpFlags::SYN | TcpFlags::ACK, syn_opts, 0),
                cap(c0 + 1, o0 + 1, TcpFlags::ACK, &[], none),
            ];
            for r in 0..requests {
                let seq = c0 + 1 + r * req;
                v.push(cap(
                    seq,
                    o0 + 1 + r * RESPONSE,
                    TcpFlags::ACK | TcpFlags::PSH,
                    &body,
                    none,
                ));
                v.push(resp(
                    t0 + 1 + r * RESPONSE,
                    seq + req,
                    TcpFlags::ACK | TcpFlags::PSH,
                    none,
                    RESPONSE,
                ));
            }
            let fin = c0 + 1 + requests * req;
            v.push(cap(
                fin,
                o0 + 1 + requests * RESPONSE,
                TcpFlags::ACK | TcpFlags::FIN,
                &[],
                none,
            ));
            v.push(resp(
                t0 + 1 + requests * RESPONSE,
                fin + 1,
                TcpFlags::ACK | TcpFlags::FIN,
                none,
                0,
            ));
            v
        })
        .collect();
    let longest = per_session.iter().map(Vec::len).max().unwrap_or(0);
    let mut iters: Vec<_> = per_session.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    for _ in 0..longest {
        for it in &mut iters {
            out.extend(it.next());
        }
    }
    out
}

fn config() -> Config {
    Config::new(vec![Mapping::parse(&format!("80-{TARGET}")).unwrap()])
}

/// Feeds the trace to `e` (which runs on from `clock`); returns packets written.
fn replay(e: &mut Engine, clock: &mut u64, inputs: &[Input], buf: &mut [u8], sessions: u16) -> u64 {
    let mut sent = 0;
    let completed = e.stats().sessions_completed;
    for input in inputs {
        *clock += 1;
        let now = Time::from_micros(*clock);
        if input.captured {
            e.handle_captured(now, &input.bytes);
        } else {
            e.handle_response(now, &input.bytes);
        }
        while let Some(t) = e.poll_transmit(now, buf) {
            black_box(&buf[..t.size]);
            sent += 1;
        }
        while e.poll_event().is_some() {}
    }
    // Every session of the trace completed, in this pass too.
    assert_eq!(e.session_count(), 0, "{}", e.stats());
    assert_eq!(
        e.stats().sessions_completed - completed,
        u64::from(sessions),
        "{}",
        e.stats()
    );
    sent
}

/// Heap bytes per idle established session (handshake done, one request answered).
fn bytes_per_idle_session(n: u16) -> usize {
    let inputs: Vec<Input> = trace(n, 1).into_iter().collect();
    // Stop before the FINs: the last 2 inputs of every session, interleaved at the end.
    let keep = inputs.len() - 2 * usize::from(n);
    let mut buf = vec![0; 2048];
    let region = Region::new(ALLOC);
    let mut e = Engine::new(config()).unwrap();
    for (i, input) in inputs[..keep].iter().enumerate() {
        let now = Time::from_micros(i as u64);
        if input.captured {
            e.handle_captured(now, &input.bytes);
        } else {
            e.handle_response(now, &input.bytes);
        }
        while e.poll_transmit(now, &mut buf).is_some() {}
        while e.poll_event().is_some() {}
    }
    assert_eq!(e.session_count(), usize::from(n));
    let change = region.change();
    let used = (change.bytes_allocated - change.bytes_deallocated)
        .saturating_add_signed(change.bytes_reallocated);
    drop(e);
    used / usize::from(n)
}

fn main() {
    let idle = bytes_per_idle_session(10_000);
    println!("engine/idle_session_bytes: {idle} bytes per idle session (10000 sessions)");

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5))
        .sample_size(20);
    let mut buf = vec![0; 2048];
    // The same mix twice: 100 concurrent sessions (the trace, 700 KB, stays in the CPU's caches:
    // the engine's own cost) and 1000 (16 MB: every captured payload comes from memory, as packets
    // fresh from a NIC do).
    for sessions in [100u16, 1000] {
        let inputs = trace(sessions, 20);
        let mut g = c.benchmark_group("engine");
        g.throughput(Throughput::Elements(inputs.len() as u64));
        // One engine throughout, as a worker keeps its own: its tables stay grown (steady state).
        let mut e = Engine::new(config()).unwrap();
        let mut clock = 0;
        g.bench_function(format!("keepalive_mix_{sessions}x20"), |b| {
            b.iter(|| replay(&mut e, &mut clock, &inputs, &mut buf, sessions));
        });
        g.finish();
    }
    c.final_summary();
}
