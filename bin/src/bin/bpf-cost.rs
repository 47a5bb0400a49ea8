//! `bpf-cost`: what the kernel programs cost per packet, measured with `BPF_PROG_TEST_RUN` and a
//! repeat count on fixed frames (no interface, no traffic), next to an empty program that only
//! returns its verdict, in the same run: nanoseconds per packet and the ratio to the empty one.
//! Cases: a frame no port matches (all of production that is not replayed), a request that is
//! matched and copied into the ring (tcpcopy) or a reply caught (intercept); frames of 64, 1500
//! and 9000 bytes of IP packet. Prints a Markdown table (`cargo xtask bench` keeps it in
//! `target/bench/kernel.md`). Needs root (or CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use tcpcopy_abi::{
    filter_expr,
    maps::{INTERCEPT_PROGRAM, TCPCOPY_PROGRAM},
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

/// Nanoseconds per run of `program` on `frame`: the median of 5 rounds of `repeat` runs, the
/// ring (if any) emptied between rounds so every copy finds room.
fn cost(
    program: &XdpProgram,
    ring: Option<&mut RingMap>,
    frame: &[u8],
    repeat: u32,
) -> anyhow::Result<f64> {
    let mut ring = ring;
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let run = program.test_run(frame, repeat)?;
        rounds.push(run.per_run.as_secs_f64() * 1e9);
        if let Some(r) = ring.as_deref_mut() {
            while r.read_now(usize::MAX, |_, _| {}) > 0 {}
        }
    }
    rounds.sort_by(f64::total_cmp);
    Ok(rounds[2])
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
    let to = |port| SocketAddr::from((SERVER, port));
    let reply_to = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 40_000));
    println!(
        "| IP packet | empty program | tcpcopy, not matched | tcpcopy, matched and copied | intercept, not matched | intercept, caught |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (len, repeat) in [(64, 100_000), (1500, 20_000), (9000, 3_000)] {
        let other = frame(CLIENT, to(22), len);
        let request = frame(CLIENT, to(80), len);
        let reply = frame(to(80), reply_to, len);
        let base = cost(&empty, None, &other, repeat)?;
        let cells = [
            cost(&tcpcopy, None, &other, repeat)?,
            cost(&tcpcopy, Some(&mut tcpcopy_ring), &request, repeat)?,
            cost(&intercept, None, &request, repeat)?,
            cost(&intercept, Some(&mut intercept_ring), &reply, repeat)?,
        ];
        let row: Vec<String> = cells
            .iter()
            .map(|ns| format!("{ns:.1} ns ({:.2}x)", ns / base))
            .collect();
        println!("| {len} B | {base:.1} ns | {} |", row.join(" | "));
    }
    Ok(())
}
