//! A link impairment relay for the chaos tests, where the kernel has no netem: it bridges two
//! interfaces through AF_PACKET sockets (pnet_datalink) and, for the TCP packets to or from one
//! network (the replayed clients), drops, duplicates and reorders them with given probabilities,
//! counting what it did. Everything else (ARP, ND, other hosts' traffic) passes untouched.
//!
//! ```text
//! impair HOST_IFACE NET_IFACE NET loss=PCT dup=PCT reorder=PCT seed=N
//! ```
//! `in` is what goes towards the host (read on NET_IFACE, sent on HOST_IFACE), `out` what comes
//! from it. Reordering holds a packet back until two later packets of its direction have passed
//! (or 30 ms went by without any). It prints `ready` once both sockets are open, then a `stats`
//! line with every counter whenever one moved (at most every 100 ms) and at least every second,
//! until it is killed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender, NetworkInterface};
use tcpcopy_wire::{Payload, ethernet, parse};

/// How long a held packet waits for two later ones to overtake it.
const HOLD: Duration = Duration::from_millis(30);
/// Packets that pass a held one before it goes.
const OVERTAKEN_BY: u32 = 2;

#[derive(Default)]
struct Counters {
    passed: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    delayed: AtomicU64,
    other: AtomicU64,
    send_errors: AtomicU64,
}

impl Counters {
    fn line(&self, dir: &str) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{dir}_passed={} {dir}_dropped={} {dir}_duplicated={} {dir}_reordered={} \
             {dir}_delayed={} {dir}_other={} {dir}_send_errors={}",
            get(&self.passed),
            get(&self.dropped),
            get(&self.duplicated),
            get(&self.reordered),
            get(&self.delayed),
            get(&self.other),
            get(&self.send_errors),
        )
    }
}

#[derive(Clone, Copy)]
struct Impairment {
    loss: f64,
    dup: f64,
    reorder: f64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, net_side, net, rest @ ..] = args.as_slice() else {
        bail!("usage: impair HOST_IFACE NET_IFACE NET loss=PCT dup=PCT reorder=PCT seed=N");
    };
    let net: IpNet = net.parse().with_context(|| format!("network {net:?}"))?;
    let (mut imp, mut seed) = (
        Impairment {
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
        },
        1u64,
    );
    for kv in rest {
        let (k, v) = kv.split_once('=').context("options are key=value")?;
        let pct = || -> anyhow::Result<f64> { Ok(v.parse::<f64>()? / 100.0) };
        match k {
            "loss" => imp.loss = pct()?,
            "dup" => imp.dup = pct()?,
            "reorder" => imp.reorder = pct()?,
            "seed" => seed = v.parse()?,
            _ => bail!("unknown option {k:?}"),
        }
    }
    let (host_tx, host_rx) = open(host)?;
    let (net_tx, net_rx) = open(net_side)?;
    let inbound = Arc::new(Counters::default());
    let outbound = Arc::new(Counters::default());
    {
        let c = Arc::clone(&inbound);
        thread::spawn(move || relay(net_rx, host_tx, net, imp, seed, &c));
    }
    {
        let c = Arc::clone(&outbound);
        thread::spawn(move || relay(host_rx, net_tx, net, imp, seed.wrapping_add(1), &c));
    }
    println!("ready host={host} net={net_side}");
    let (mut last, mut printed) = (String::new(), Instant::now());
    loop {
        thread::sleep(Duration::from_millis(100));
        let line = format!("stats {} {}", inbound.line("in"), outbound.line("out"));
        if line != last || printed.elapsed() >= Duration::from_secs(1) {
            println!("{line}");
            (last, printed) = (line, Instant::now());
        }
    }
}

/// The AF_PACKET socket of interface `name`, as its sender and receiver (one socket: what it
/// sends, it does not read back).
fn open(name: &str) -> anyhow::Result<(Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>)> {
    let iface: NetworkInterface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .with_context(|| format!("no interface {name}"))?;
    let config = Config {
        read_timeout: Some(Duration::from_millis(5)),
        read_buffer_size: 65_536,
        write_buffer_size: 65_536,
        ..Config::default()
    };
    match pnet_datalink::channel(&iface, config).with_context(|| format!("AF_PACKET on {name}"))? {
        Channel::Ethernet(tx, rx) => Ok((tx, rx)),
        _ => bail!("{name}: not an Ethernet channel"),
    }
}

/// Whether `frame` is a TCP packet to or from `net` (IPv4 or IPv6).
fn impaired(frame: &[u8], net: IpNet) -> bool {
    let Some(ip) = ethernet::ip_payload(frame) else {
        return false;
    };
    parse(ip, Payload::HeadersOnly).is_ok_and(|p| net.contains(&p.src) || net.contains(&p.dst))
}

/// Frames from `rx` to `tx`, impaired; runs until the process ends.
fn relay(
    mut rx: Box<dyn DataLinkReceiver>,
    mut tx: Box<dyn DataLinkSender>,
    net: IpNet,
    imp: Impairment,
    seed: u64,
    c: &Counters,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    // The packet held back, its copies, when it was held, and how many have overtaken it.
    let mut held: Option<(Vec<u8>, u8, Instant, u32)> = None;
    let forward = |tx: &mut Box<dyn DataLinkSender>, frame: &[u8]| {
        if !matches!(tx.send_to(frame, None), Some(Ok(()))) {
            c.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        let frame = match rx.next() {
            Ok(f) => Some(f.to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
            Err(e) => {
                eprintln!("impair: read: {e}");
                return;
            }
        };
        if let Some(frame) = frame {
            if !impaired(&frame, net) {
                c.other.fetch_add(1, Ordering::Relaxed);
                forward(&mut tx, &frame);
                continue;
            }
            if rng.f64() < imp.loss {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let copies = if rng.f64() < imp.dup {
                c.duplicated.fetch_add(1, Ordering::Relaxed);
                2
            } else {
                1
            };
            if held.is_none() && rng.f64() < imp.reorder {
                held = Some((frame, copies, Instant::now(), 0));
                continue;
            }
            for _ in 0..copies {
                forward(&mut tx, &frame);
            }
            c.passed.fetch_add(1, Ordering::Relaxed);
            if let Some((_, _, _, overtaken)) = held.as_mut() {
                *overtaken += 1;
            }
        }
        let due = held
            .as_ref()
            .is_some_and(|(_, _, at, n)| *n >= OVERTAKEN_BY || at.elapsed() >= HOLD);
        if due && let Some((frame, copies, _, overtaken)) = held.take() {
            for _ in 0..copies {
                forward(&mut tx, &frame);
            }
            c.passed.fetch_add(1, Ordering::Relaxed);
            if overtaken > 0 {
                c.reordered.fetch_add(1, Ordering::Relaxed);
            } else {
                c.delayed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
