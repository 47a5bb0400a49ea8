//! `bpf-cost`: what the kernel programs cost per packet, measured with `BPF_PROG_TEST_RUN` and a
//! repeat count on fixed frames (no interface, no traffic), next to an empty program that only
//! returns its verdict, in the same run: nanoseconds per packet and the ratio to the empty one.
//! Cases: a frame no port matches (all of production that is not replayed), a request that is
//! matched and copied into the ring (tcpcopy) or a reply caught (intercept); frames of 64, 1500
//! and 9000 bytes of IP packet; and a request of a session tcpcopy does not replay (`-r 1`), a
//! client's pure ACK it does not copy. Then the ring layouts compared with several producers at
//! once: one ring written by every CPU (tcpcopy's layout) against one ring per CPU, each thread
//! pinned to its own CPU running test runs on its own connection at the same time. Prints
//! Markdown tables (`cargo xtask bench` keeps them in `target/bench/kernel.md`). Needs root (or
//! CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON).

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Barrier,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tcpcopy_abi::{
    filter_expr,
    maps::{INTERCEPT_PROGRAM, MAX_WORKERS, TCPCOPY_PROGRAM, WORKERS_BY_CPU},
    stats::Stat,
};
use tcpcopy_wire::{TcpFlags, build::Packet};
use tcpcopy_xsk::{program::XdpProgram, ring::RingMap};

const CLIENT: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
    40_000,
);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
/// The capture ring: room for every copy of a round.
const RING: u32 = 64 << 20;

/// An Ethernet frame of `ip_len` bytes of IP packet from `src` to `dst`.
fn frame(src: SocketAddr, dst: SocketAddr, ip_len: usize) -> Vec<u8> {
    let headers = Packet::between(src, dst).ip().len();
    let body = vec![b'x'; ip_len.saturating_sub(headers)];
    Packet::between(src, dst)
        .seq(1000)
        .ack(2000)
        .flags(TcpFlags::ACK | TcpFlags::PSH)
        .payload(&body)
        .ethernet([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], None)
}

/// Rounds of each measurement; the median one is reported.
const ROUNDS: usize = 9;

/// The median by `key` of [`ROUNDS`] results of `round`.
fn median<T>(
    mut round: impl FnMut() -> anyhow::Result<T>,
    key: impl Fn(&T) -> f64,
) -> anyhow::Result<T> {
    let mut rounds = (0..ROUNDS)
        .map(|_| round())
        .collect::<anyhow::Result<Vec<T>>>()?;
    rounds.sort_by(|a, b| key(a).total_cmp(&key(b)));
    Ok(rounds.swap_remove(ROUNDS / 2))
}

/// Empties `ring`, so that the next round's copies all find room.
fn drain(ring: &mut RingMap) {
    while ring.read_now(usize::MAX, |_, _| {}) > 0 {}
}

/// Nanoseconds per run of `program` on `frame`, and its ratio to `empty`'s: each round runs
/// `empty` then `program` `repeat` times on the frame, back to back so both see the same load,
/// and empties the ring (if any); the median round by ratio is reported.
fn cost(
    empty: &XdpProgram,
    program: &XdpProgram,
    mut ring: Option<&mut RingMap>,
    frame: &[u8],
    repeat: u32,
) -> anyhow::Result<Cost> {
    median(
        || {
            let base = empty.test_run(frame, repeat)?.per_run.as_secs_f64() * 1e9;
            let ns = program.test_run(frame, repeat)?.per_run.as_secs_f64() * 1e9;
            if let Some(r) = ring.as_deref_mut() {
                drain(r);
            }
            Ok(Cost { base, ns })
        },
        Cost::ratio,
    )
}

/// One measured case: the empty program's and the program's nanoseconds per run.
struct Cost {
    base: f64,
    ns: f64,
}

impl Cost {
    /// The program's time over the empty program's.
    fn ratio(&self) -> f64 {
        self.ns / self.base.max(1.0)
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} ns ({:.2}x)", self.ns, self.ratio())
    }
}

fn main() -> anyhow::Result<()> {
    let all = filter_expr::compile("")?;
    let empty = XdpProgram::load(tcpcopy::XDP_PASS_OBJECT, "xdp_pass_frags", 4096, 1)
        .context("loading the empty program (needs root)")?;
    let mut tcpcopy = XdpProgram::load_configured(
        tcpcopy::TCPCOPY_OBJECT,
        TCPCOPY_PROGRAM,
        RING,
        1,
        &[80],
        &all,
    )?;
    let mut tcpcopy_ring = RingMap::take(&mut tcpcopy, 0)?;
    let mut intercept = XdpProgram::load_configured(
        tcpcopy::INTERCEPT_OBJECT,
        INTERCEPT_PROGRAM,
        RING,
        1,
        &[80],
        &all,
    )?;
    let mut intercept_ring = RingMap::take(&mut intercept, 0)?;
    // tcpcopy -r 1, as the tcpcopy binary configures it (pure ACKs at most once a second).
    let mut sampled = XdpProgram::load_configured(
        tcpcopy::TCPCOPY_OBJECT,
        TCPCOPY_PROGRAM,
        RING,
        1,
        &[80],
        &all,
    )?;
    sampled.set_percentage(1)?;
    sampled.set_ack_gap(Duration::from_secs(1))?;
    let mut sampled_ring = RingMap::take(&mut sampled, 0)?;
    // A client whose session -r 1 does not replay.
    let unselected = (40_000..=u16::MAX)
        .map(|port: u16| SocketAddr::new(CLIENT.ip(), port))
        .find(|c| !tcpcopy_engine::select::selected(*c, 1))
        .expect("a client not among 1%");
    let to = |port| SocketAddr::from((SERVER, port));
    let reply_to = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 40_000));
    println!(
        "| IP packet | empty program | tcpcopy, not matched | tcpcopy, matched and copied | tcpcopy -r 1, session not replayed | intercept, not matched | intercept, caught |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (len, repeat) in [(64, 100_000), (1500, 20_000), (9000, 3_000)] {
        let other = frame(CLIENT, to(22), len);
        let request = frame(CLIENT, to(80), len);
        let skipped = frame(unselected, to(80), len);
        let reply = frame(to(80), reply_to, len);
        let cells = [
            cost(&empty, &tcpcopy, None, &other, repeat)?,
            cost(&empty, &tcpcopy, Some(&mut tcpcopy_ring), &request, repeat)?,
            cost(&empty, &sampled, Some(&mut sampled_ring), &skipped, repeat)?,
            cost(&empty, &intercept, None, &request, repeat)?,
            cost(
                &empty,
                &intercept,
                Some(&mut intercept_ring),
                &reply,
                repeat,
            )?,
        ];
        let mut bases: Vec<f64> = cells.iter().map(|c| c.base).collect();
        bases.sort_by(f64::total_cmp);
        let base = bases[bases.len() / 2];
        let row: Vec<String> = cells.iter().map(ToString::to_string).collect();
        println!("| {len} B | {base:.1} ns | {} |", row.join(" | "));
    }
    // A replayed client's pure ACK after its connection's first: not copied.
    let selected = (40_000..=u16::MAX)
        .map(|port: u16| SocketAddr::new(CLIENT.ip(), port))
        .find(|c| tcpcopy_engine::select::selected(*c, 1))
        .expect("a client among 1%");
    let ack = Packet::between(selected, to(80))
        .seq(1000)
        .ack(2000)
        .flags(TcpFlags::ACK)
        .ethernet([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], None);
    let ack = cost(&empty, &sampled, Some(&mut sampled_ring), &ack, 100_000)?;
    println!();
    println!(
        "A replayed client's pure ACK, not copied (tcpcopy -r 1): {ack}, the empty program {:.1} ns",
        ack.base
    );
    rings()
}

/// The ring layouts with several producers at once (see the module's documentation).
fn rings() -> anyhow::Result<()> {
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    println!();
    println!(
        "| ring layout | producers (threads, one CPU each) | ns per copied 64 B frame (kernel, per producer) | frames copied per second, all producers |"
    );
    println!("| --- | ---: | ---: | ---: |");
    let most = cpus.len().min(MAX_WORKERS as usize);
    for producers in 1..=most {
        for by_cpu in [false, true] {
            if producers == 1 && by_cpu {
                continue;
            }
            let (ns, rate) = ring_rate(&cpus[..producers], by_cpu, 100_000)?;
            let layout = if by_cpu {
                "one ring per CPU"
            } else {
                "one ring, written by every CPU"
            };
            println!("| {layout} | {producers} | {ns:.1} | {:.2} M |", rate / 1e6);
        }
    }
    Ok(())
}

/// The median of [`ROUNDS`] rounds: each producer (a thread pinned to one of `cpus`) runs tcpcopy's program
/// `repeat` times on a 64-byte request of its own connection, all starting together; the frames
/// go into one ring or (`by_cpu`) the ring of the CPU. Returns the kernel's mean time per run
/// and the frames copied per second over the round's wall time. Every frame must be copied.
fn ring_rate(
    cpus: &[core_affinity::CoreId],
    by_cpu: bool,
    repeat: u32,
) -> anyhow::Result<(f64, f64)> {
    let all = filter_expr::compile("")?;
    let producers = u32::try_from(cpus.len())?;
    let rings = if by_cpu { producers } else { 1 };
    let mut program = XdpProgram::load_configured(
        tcpcopy::TCPCOPY_OBJECT,
        TCPCOPY_PROGRAM,
        RING,
        rings,
        &[80],
        &all,
    )?;
    if by_cpu {
        program.set_workers(producers | WORKERS_BY_CPU)?;
    }
    let mut readers = (0..rings as usize)
        .map(|w| RingMap::take(&mut program, w))
        .collect::<Result<Vec<_>, _>>()?;
    let frames: Vec<Vec<u8>> = (0..cpus.len())
        .map(|i| {
            let client = SocketAddr::new(CLIENT.ip(), 40_000 + u16::try_from(i).unwrap_or(0));
            frame(client, SocketAddr::from((SERVER, 80)), 64)
        })
        .collect();
    let round = || -> anyhow::Result<(f64, f64)> {
        let before = program.counters()?.get(Stat::Copied);
        let barrier = Barrier::new(cpus.len());
        let runs: Vec<anyhow::Result<(Duration, Instant, Instant)>> = std::thread::scope(|s| {
            let handles: Vec<_> = cpus
                .iter()
                .zip(&frames)
                .map(|(cpu, f)| {
                    let (program, barrier) = (&program, &barrier);
                    s.spawn(move || {
                        core_affinity::set_for_current(*cpu);
                        barrier.wait();
                        let start = Instant::now();
                        let run = program.test_run(f, repeat)?;
                        Ok((run.per_run, start, Instant::now()))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a producer thread"))
                .collect()
        });
        let runs = runs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        let copied = program.counters()?.get(Stat::Copied) - before;
        anyhow::ensure!(
            copied == u64::from(repeat) * u64::from(producers),
            "{copied} of {} frames copied: the rings are too small",
            u64::from(repeat) * u64::from(producers)
        );
        let start = runs.iter().map(|r| r.1).min().expect("a producer");
        let end = runs.iter().map(|r| r.2).max().expect("a producer");
        #[allow(clippy::cast_precision_loss, reason = "a mean and a rate")]
        let (ns, rate) = (
            runs.iter().map(|r| r.0.as_secs_f64() * 1e9).sum::<f64>() / runs.len() as f64,
            copied as f64 / (end - start).as_secs_f64(),
        );
        for r in &mut readers {
            drain(r);
        }
        Ok((ns, rate))
    };
    median(round, |r| r.1)
}
