//! `xsk-bench`: the AF_XDP packet path, measured for `cargo xtask bench` on a testbed veth.
//!
//! - `gen`: sends prebuilt TCP frames (to port 80, 1024 client ports, 100-byte payloads) through
//!   an AF_XDP socket as fast as it can, for a while.
//! - `forward raw`: the baseline. tcpcopy's XDP program (mirror mode) redirects the frames into an
//!   AF_XDP socket; each frame goes back out unchanged but for its MAC addresses, from the same
//!   UMEM frame (no copy): the fastest an AF_XDP forwarder can be on this interface.
//! - `forward rewrite`: what tcpcopy does to each packet it replays: parse the captured packet
//!   (the wire layer's view), write a new one for the target (addresses, ports, sequence and
//!   acknowledgement numbers, options, checksums: the wire layer's `emit`) straight into a
//!   transmit frame behind an Ethernet header, and send it.
//!
//! Each prints `forwarded=N seconds=S user_seconds=U sys_seconds=K` at the end (a forwarder
//! sleeps in poll() when nothing comes, so its CPU time is its work). The ring work is
//! `tcpcopy_xsk`'s; this file has no `unsafe`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tcpcopy_abi::maps::{MODE_MIRROR, TCPCOPY_PROGRAM};
use tcpcopy_host::neigh;
use tcpcopy_wire::{
    OutSegment, Payload, TcpFlags, TcpOptions,
    build::Packet,
    emit,
    ethernet::{ETHERTYPE_IPV4, HEADER_LEN as ETH_LEN, ip_payload},
    parse,
};
use tcpcopy_xsk::{
    forward::{BATCH, Forward, Forwarder},
    program::XdpProgram,
    tx::TxQueue,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let secs: u64 = arg(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let time = Duration::from_secs(secs);
    let (n, took) = match (arg(0), arg(1)) {
        (Some("gen"), Some(iface)) => {
            gen_frames(iface, arg(2).context("gen IFACE DST_MAC")?, time)?
        }
        (Some("forward"), Some(mode)) => {
            let iface = arg(2).context("forward raw|rewrite IFACE")?;
            forward(iface, mode == "rewrite", time)?
        }
        _ => bail!("usage: xsk-bench gen IFACE DST_MAC [SECS] | forward raw|rewrite IFACE [SECS]"),
    };
    let (user, system) = cpu_seconds();
    println!(
        "forwarded={n} seconds={:.3} user_seconds={user:.3} sys_seconds={system:.3}",
        took.as_secs_f64(),
    );
    Ok(())
}

/// User and system CPU time of this process so far.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (
        f.get(11).copied().unwrap_or(0.0) / 100.0,
        f.get(12).copied().unwrap_or(0.0) / 100.0,
    )
}

fn mac_of(iface: &str) -> anyhow::Result<[u8; 6]> {
    neigh::iface_mac(iface).with_context(|| format!("MAC address of {iface}"))
}

fn parse_mac(text: &str) -> anyhow::Result<[u8; 6]> {
    neigh::parse_mac(text).with_context(|| format!("not a MAC address: {text}"))
}

/// A request frame of client port `port`.
fn request_frame(src_mac: [u8; 6], dst_mac: [u8; 6], port: u16) -> Vec<u8> {
    let payload = [b'x'; 100];
    Packet::between(
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)), port),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20)), 80),
    )
    .seq(1000)
    .ack(5000)
    .flags(TcpFlags::ACK | TcpFlags::PSH)
    .window(512)
    .options(TcpOptions {
        timestamps: Some((1, 2)),
        ..TcpOptions::default()
    })
    .payload(&payload)
    .ethernet(src_mac, dst_mac, None)
}

fn gen_frames(iface: &str, dst_mac: &str, time: Duration) -> anyhow::Result<(u64, Duration)> {
    let src = mac_of(iface)?;
    let dst = parse_mac(dst_mac)?;
    let frames: Vec<Vec<u8>> = (0..1024u16)
        .map(|i| request_frame(src, dst, 1024 + i))
        .collect();
    let mut queue = TxQueue::open(iface, 0, TxQueue::FRAMES)?;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut next = 0usize;
    while start.elapsed() < time {
        for _ in 0..BATCH {
            let Some(mut frame) = queue.frame() else {
                break;
            };
            let data = &frames[next % frames.len()];
            frame.buf()[..data.len()].copy_from_slice(data);
            frame.send(data.len());
            next += 1;
        }
        sent += queue.flush() as u64;
    }
    Ok((sent, start.elapsed()))
}

fn forward(iface: &str, rewrite: bool, time: Duration) -> anyhow::Result<(u64, Duration)> {
    let all = tcpcopy_abi::filter_expr::compile("")?;
    let mut program = XdpProgram::load_configured(
        tcpcopy::TCPCOPY_OBJECT,
        TCPCOPY_PROGRAM,
        1 << 20,
        1,
        &[80],
        &all,
    )?;
    program.set_mode(MODE_MIRROR)?;
    let mut xsks = tcpcopy_xsk::rx::take_xsks(&mut program)?;
    let mut f = Forwarder::open(iface, 0, TxQueue::FRAMES)?;
    xsks.set(0, f.fd(), 0)?;
    program.attach(iface, false)?;
    println!(
        "forwarding on {iface} ({})",
        if rewrite { "rewrite" } else { "raw" }
    );
    let how = if rewrite {
        Forward::Rewrite
    } else {
        Forward::InPlace
    };
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < time {
        let n = f.round(how, |frame, out| {
            if rewrite {
                rewritten(frame, out)
            } else {
                swap_macs(frame);
                Some(frame.len())
            }
        });
        done += n;
        if n == 0 {
            // Nothing came: sleep until something does (as tcpcopy does), so the CPU time
            // counts the work and not a spinning loop.
            f.wait(10);
        }
    }
    Ok((done, start.elapsed()))
}

/// The raw forwarder's only work: the frame goes back where it came from.
fn swap_macs(frame: &mut [u8]) {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[..6]);
    frame.copy_within(6..12, 0);
    frame[6..12].copy_from_slice(&mac);
}

/// tcpcopy's per-packet work on `frame` (a captured request): a new packet for the target, with
/// the client rewritten, written behind an Ethernet header straight into `out` (the transmit
/// frame, as tcpcopy's sender does); its length.
fn rewritten(frame: &[u8], out: &mut [u8]) -> Option<usize> {
    let ip = ip_payload(frame)?;
    let p = parse(ip, Payload::Whole).ok()?;
    let seg = OutSegment {
        src: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            p.tcp.src_port ^ 0x4000,
        ),
        dst: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 30)), 80),
        seq: p.tcp.seq,
        ack: p.tcp.ack + 12_345,
        flags: p.tcp.flags.0,
        window: p.tcp.window,
        options: p.tcp.options,
        payload: [p.tcp.payload, &[]],
        ip_id: 0,
    };
    out[..6].copy_from_slice(&frame[6..12]);
    out[6..12].copy_from_slice(&frame[..6]);
    out[12..ETH_LEN].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    emit(&seg, &mut out[ETH_LEN..]).ok().map(|n| n + ETH_LEN)
}
