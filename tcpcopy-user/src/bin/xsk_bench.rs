//! `xsk-bench`: the AF_XDP packet path, measured for `cargo xtask bench` on a testbed veth.
//!
//! - `gen`: sends prebuilt TCP frames (to port 80, 1024 client ports, 100-byte payloads) through
//!   an AF_XDP socket as fast as it can, for a while.
//! - `forward raw`: the baseline. tcpcopy's XDP program (mirror mode) redirects the frames into an
//!   AF_XDP socket; each frame goes back out unchanged but for its MAC addresses, from the same
//!   UMEM frame (no copy): the fastest an AF_XDP forwarder can be on this interface.
//! - `forward rewrite`: what tcpcopy does to each packet it replays: parse the captured packet
//!   (the engine's wire view), write a new one for the target (addresses, ports, sequence and
//!   acknowledgement numbers, options, checksums: the engine's `emit`) behind an Ethernet header
//!   into a transmit frame, and send it.
//!
//! Each prints `forwarded=N seconds=S user_seconds=U sys_seconds=K` at the end (a forwarder
//! sleeps in poll() when nothing comes, so its CPU time is its work). This is the thin ring layer:
//! its `unsafe` blocks touch UMEM frames, each explained.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tcpcopy_common::{
    maps::{MODE_MIRROR, TCPCOPY_PROGRAM},
    neigh,
    xdp::XdpProgram,
    xsk::{self, Area, FRAME_SIZE},
};
use tcpcopy_engine::{
    Seq,
    wire::{OutSegment, Payload, TcpFlags, TcpOptions, emit, parse},
};
use xdpilone::{BufIdx, xdp::XdpDesc};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcpcopy-xdp"));

/// Frames in the UMEM: the first half receives, the second half transmits (rewrite mode).
const FRAMES: u32 = 4096;
const BATCH: u32 = 64;

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
    let seg = OutSegment {
        src: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)), port),
        dst: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20)), 80),
        seq: Seq(1000),
        ack: Seq(5000),
        flags: TcpFlags::ACK | TcpFlags::PSH,
        window: 512,
        options: TcpOptions {
            timestamps: Some((1, 2)),
            ..TcpOptions::default()
        },
        payload: [&payload, &[]],
        ip_id: 0,
    };
    let mut frame = vec![0u8; 14 + 200];
    frame[..6].copy_from_slice(&dst_mac);
    frame[6..12].copy_from_slice(&src_mac);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let n = emit(&seg, &mut frame[14..]).expect("a frame fits");
    frame.truncate(14 + n);
    frame
}

/// Writes `data` into UMEM frame `idx`.
fn write_frame(umem: &xdpilone::Umem, idx: u32, data: &[u8]) -> Option<XdpDesc> {
    let frame = umem.frame(BufIdx(idx))?;
    if data.len() > FRAME_SIZE as usize {
        return None;
    }
    // SAFETY: the frame is ours (free, not on any ring) until its descriptor goes on the TX ring
    // below; `frame.addr` covers FRAME_SIZE bytes and `data` fits.
    #[allow(unsafe_code)]
    let buf = unsafe { &mut *frame.addr.as_ptr() };
    buf[..data.len()].copy_from_slice(data);
    Some(XdpDesc {
        addr: frame.offset,
        len: u32::try_from(data.len()).unwrap_or(0),
        options: 0,
    })
}

fn gen_frames(iface: &str, dst_mac: &str, time: Duration) -> anyhow::Result<(u64, Duration)> {
    let src = mac_of(iface)?;
    let dst = parse_mac(dst_mac)?;
    let mut area = Area::new(FRAMES);
    let mut b = xsk::open(&mut area, iface, 0, false, true)?;
    let mut tx = b.tx.take().context("TX ring")?;
    let mut free: Vec<u32> = Vec::new();
    for i in 0..FRAMES {
        let frame = request_frame(src, dst, 1024 + u16::try_from(i % 1024).unwrap_or(0));
        write_frame(&b.umem, i, &frame).context("frame")?;
        free.push(i);
    }
    let len = u32::try_from(request_frame(src, dst, 1024).len()).unwrap_or(0);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < time {
        let n = free.len().min(BATCH as usize);
        if n > 0 {
            let mut w = tx.transmit(u32::try_from(n).unwrap_or(0));
            let put = w.insert(free[free.len() - n..].iter().map(|&i| XdpDesc {
                addr: u64::from(i) * u64::from(FRAME_SIZE),
                len,
                options: 0,
            })) as usize;
            w.commit();
            drop(w);
            free.truncate(free.len() - put);
        }
        tx.wake();
        let mut c = b.device.complete(FRAMES);
        while let Some(addr) = c.read() {
            free.push(u32::try_from(addr / u64::from(FRAME_SIZE)).unwrap_or(0));
            sent += 1;
        }
        c.release();
    }
    drop(tx);
    Ok((sent, start.elapsed()))
}

/// The forwarder's socket and frames.
struct Forwarder {
    rx: xdpilone::RingRx,
    tx: xdpilone::RingTx,
    b: xsk::Bound,
    /// Transmit frames free (rewrite mode).
    free_tx: Vec<u32>,
    /// Receive frames to give back to the fill ring.
    refill: Vec<u64>,
    /// A round's received, to-send and completed descriptors (kept: no allocation per round).
    descs: Vec<XdpDesc>,
    sends: Vec<XdpDesc>,
    completed: Vec<u64>,
}

fn forward(iface: &str, rewrite: bool, time: Duration) -> anyhow::Result<(u64, Duration)> {
    let all = tcpcopy_common::filter_expr::compile("")?;
    let mut program =
        XdpProgram::load_configured(OBJECT, TCPCOPY_PROGRAM, 1 << 20, 1, &[80], &all)?;
    program.set_mode(MODE_MIRROR)?;
    let mut xsks = tcpcopy_common::xsk_rx::take_xsks(&mut program)?;
    let mut area = Area::new(FRAMES);
    let mut b = xsk::open(&mut area, iface, 0, true, true)?;
    xsks.set(0, b.user.as_raw_fd(), 0)?;
    let half = FRAMES / 2;
    let mut fill = b.device.fill(half);
    fill.insert((0..half).map(|i| u64::from(i) * u64::from(FRAME_SIZE)));
    fill.commit();
    drop(fill);
    program.attach(iface, false)?;
    println!(
        "forwarding on {iface} ({})",
        if rewrite { "rewrite" } else { "raw" }
    );
    let mut f = Forwarder {
        rx: b.rx.take().context("RX ring")?,
        tx: b.tx.take().context("TX ring")?,
        b,
        free_tx: (half..FRAMES).collect(),
        refill: Vec::new(),
        descs: Vec::with_capacity(BATCH as usize),
        sends: Vec::with_capacity(BATCH as usize),
        completed: Vec::with_capacity(FRAMES as usize),
    };
    let mut out = vec![0u8; FRAME_SIZE as usize];
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < time {
        let n = f.round(rewrite, &mut out);
        done += n;
        if n == 0 {
            // Nothing came: sleep until something does (as tcpcopy does), so the CPU time
            // counts the work and not a spinning loop.
            wait_readable(f.b.user.as_raw_fd(), 10);
        }
    }
    Ok((done, start.elapsed()))
}

/// Waits up to `ms` milliseconds for `fd` to be readable.
fn wait_readable(fd: std::os::fd::RawFd, ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd that lives across the call; poll reads and writes only it.
    #[allow(unsafe_code)]
    unsafe {
        libc::poll(&raw mut pfd, 1, ms);
    }
}

impl Forwarder {
    /// Receives a batch, forwards it, reaps completions; packets forwarded.
    fn round(&mut self, rewrite: bool, out: &mut [u8]) -> u64 {
        let mut descs = std::mem::take(&mut self.descs);
        let mut sends = std::mem::take(&mut self.sends);
        let mut completed = std::mem::take(&mut self.completed);
        descs.clear();
        sends.clear();
        completed.clear();
        let mut reader = self.rx.receive(BATCH);
        while let Some(d) = reader.read() {
            descs.push(d);
        }
        reader.release();
        drop(reader);
        for d in &descs {
            let idx = u32::try_from(d.addr / u64::from(FRAME_SIZE)).unwrap_or(0);
            let offset = usize::try_from(d.addr % u64::from(FRAME_SIZE)).unwrap_or(0);
            let Some(chunk) = self.b.umem.frame(BufIdx(idx)) else {
                continue;
            };
            let len = d.len as usize;
            if offset + len > FRAME_SIZE as usize {
                continue;
            }
            // SAFETY: the kernel handed this frame to us on the RX ring and does not touch it
            // until we put it on the TX ring (raw) or back on the fill ring (rewrite).
            #[allow(unsafe_code)]
            let frame = unsafe { &mut (&mut *chunk.addr.as_ptr())[offset..offset + len] };
            if rewrite {
                self.refill.push(d.addr - d.addr % u64::from(FRAME_SIZE));
                let Some(n) = rewritten(frame, out) else {
                    continue;
                };
                let Some(t) = self.free_tx.pop() else {
                    continue;
                };
                if let Some(desc) = write_frame(&self.b.umem, t, &out[..n]) {
                    sends.push(desc);
                }
            } else {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&frame[..6]);
                frame.copy_within(6..12, 0);
                frame[6..12].copy_from_slice(&mac);
                sends.push(*d);
            }
        }
        let n = u32::try_from(sends.len()).unwrap_or(0);
        if n > 0 {
            let mut w = self.tx.transmit(n);
            let put = w.insert(sends.iter().copied()) as usize;
            w.commit();
            drop(w);
            // What the ring could not take goes back where it came from.
            for d in &sends[put..] {
                self.give_back(d.addr, rewrite);
            }
        }
        self.tx.wake();
        let mut c = self.b.device.complete(FRAMES);
        while let Some(addr) = c.read() {
            completed.push(addr);
        }
        c.release();
        drop(c);
        let done = completed.len() as u64;
        for &addr in &completed {
            self.give_back(addr, rewrite);
        }
        let mut fill = self
            .b
            .device
            .fill(u32::try_from(self.refill.len()).unwrap_or(0));
        let put = fill.insert(self.refill.iter().copied()) as usize;
        fill.commit();
        drop(fill);
        self.refill.drain(..put);
        (self.descs, self.sends, self.completed) = (descs, sends, completed);
        done
    }

    fn give_back(&mut self, addr: u64, rewrite: bool) {
        let base = addr - addr % u64::from(FRAME_SIZE);
        if rewrite {
            self.free_tx
                .push(u32::try_from(base / u64::from(FRAME_SIZE)).unwrap_or(0));
        } else {
            self.refill.push(base);
        }
    }
}

/// tcpcopy's per-packet work on `frame` (a captured request): a new packet for the target, with
/// the client rewritten, written behind an Ethernet header into `out`; its length.
fn rewritten(frame: &[u8], out: &mut [u8]) -> Option<usize> {
    let ip = tcpcopy_common::ether::ip_payload(frame)?;
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
    out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    emit(&seg, &mut out[14..]).ok().map(|n| n + 14)
}
