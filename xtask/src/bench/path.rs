//! The packet path: `xsk-bench gen` on the client host sends TCP frames to online through
//! AF_XDP; on online's veth, tcpcopy's XDP program redirects them into an AF_XDP socket where
//! `xsk-bench forward` either sends each back unchanged (raw: the AF_XDP baseline) or does
//! tcpcopy's per-packet work (parse, rewrite for the target, checksums, copy into a transmit
//! frame) and sends that. Same generator, same veth, same run: forwarded packets per second and
//! CPU per packet of each, and their ratios.

use std::{fmt::Write as _, process::Stdio};

use anyhow::Context as _;
use tcpcopy_testbed::{Host, IFACE, Testbed, binary};

/// Seconds the generator sends for, per run.
const SECS: u32 = 3;

pub struct Run {
    pub rewrite: bool,
    pub pps: f64,
    /// Microseconds of CPU per forwarded packet: the forwarder's own code, and with the kernel's
    /// work on its behalf (on veth in copy mode: the transmit and the peer's receive).
    pub user_us: f64,
    pub total_us: f64,
}

fn field(out: &str, key: &str) -> f64 {
    out.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn one(bed: &Testbed, rewrite: bool) -> anyhow::Result<Run> {
    let bench = binary("xsk-bench")?;
    let bench = bench.to_str().context("path")?;
    let online_mac = tcpcopy_testbed::output(
        "ip",
        &[
            "netns",
            "exec",
            &bed.ns(Host::Online),
            "cat",
            "/sys/class/net/veth0/address",
        ],
    )?;
    let fwd = bed
        .cmd(Host::Online, bench)
        .args([
            "forward",
            if rewrite { "rewrite" } else { "raw" },
            IFACE,
            &(SECS + 1).to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the forwarder")?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let gen_out = bed
        .cmd(Host::Client, bench)
        .args(["gen", IFACE, online_mac.trim(), &SECS.to_string()])
        .output()
        .context("running the generator")?;
    anyhow::ensure!(
        gen_out.status.success(),
        "generator: {}",
        String::from_utf8_lossy(&gen_out.stderr)
    );
    let out = fwd.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(out.status.success(), "forwarder: {text}");
    let n = field(&text, "forwarded");
    anyhow::ensure!(n > 0.0, "nothing forwarded: {text}");
    let (user, system) = (field(&text, "user_seconds"), field(&text, "sys_seconds"));
    Ok(Run {
        rewrite,
        pps: n / f64::from(SECS),
        user_us: user * 1e6 / n,
        total_us: (user + system) * 1e6 / n,
    })
}

pub fn run(bed: &Testbed) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for _round in 0..2 {
        for rewrite in [false, true] {
            let r = one(bed, rewrite)?;
            println!(
                "    {:<8} {:>9.0} packets/s  {:.2} us/packet in the forwarder, {:.2} with the kernel",
                if rewrite { "rewrite" } else { "raw" },
                r.pps,
                r.user_us,
                r.total_us
            );
            runs.push(r);
        }
    }
    Ok(runs)
}

fn mean(runs: &[Run], rewrite: bool, f: impl Fn(&Run) -> f64) -> f64 {
    let v: Vec<f64> = runs
        .iter()
        .filter(|r| r.rewrite == rewrite)
        .map(f)
        .collect();
    #[expect(clippy::cast_precision_loss, reason = "a handful of runs")]
    let n = v.len().max(1) as f64;
    v.iter().sum::<f64>() / n
}

pub fn table(runs: &[Run]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| AF_XDP path on one veth, same generator | forwarded packets/s | CPU per packet, forwarder | CPU per packet, with the kernel's share |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: |");
    for (rewrite, name) in [
        (false, "raw forwarding (the baseline)"),
        (true, "tcpcopy's rewrite and forward"),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {:.0} | {:.2} µs | {:.2} µs |",
            mean(runs, rewrite, |r| r.pps),
            mean(runs, rewrite, |r| r.user_us),
            mean(runs, rewrite, |r| r.total_us)
        );
    }
    let pps = mean(runs, true, |r| r.pps) / mean(runs, false, |r| r.pps);
    let capacity = mean(runs, false, |r| r.total_us) / mean(runs, true, |r| r.total_us);
    let _ = writeln!(
        md,
        "\nrewrite/raw: {:.1}% of the forwarded rate, {:.1}% of the capacity (inverse CPU per packet, kernel included).",
        pps * 100.0,
        capacity * 100.0
    );
    md
}
