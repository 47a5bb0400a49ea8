//! Bulk: clients uploading 1 MB bodies on keep-alive connections to online as fast as it takes
//! them; the online and the replayed bit rates of the same run.

use std::fmt::Write as _;

use tcpcopy_testbed::{Host, Spawned, Testbed};

use super::rig::{Wrk, cpu_seconds, loss_diff, losses, percent, served, settle};

/// Bytes of each uploaded body.
const BODY: usize = 1 << 20;

pub struct Bulk {
    pub connections: u32,
    pub online_gbps: f64,
    pub replayed_gbps: f64,
    pub online: usize,
    pub replayed: usize,
    pub tcpcopy_cpu: f64,
    /// How long after online's last upload the replay's last one arrived.
    pub lag: std::time::Duration,
    pub losses: String,
}

pub fn run(bed: &Testbed, tcpcopy: &Spawned) -> anyhow::Result<Vec<Bulk>> {
    let script = bed.dir().join("post-1mb.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", {BODY})\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n"
        ),
    )?;
    let mut runs = Vec::new();
    for connections in [1, 4] {
        let path = format!("bulk-{connections}");
        let t0 = cpu_seconds(tcpcopy.pid());
        let lost_before = losses(tcpcopy);
        let (_, took) = Wrk {
            connections,
            threads: 2,
            close: false,
            script: Some(&script),
            path: &path,
        }
        .run(bed)?;
        let t1 = cpu_seconds(tcpcopy.pid());
        let (online, online_bytes) = served(bed, Host::Online, &path);
        let (_, lag) = settle(bed, &path);
        let (replayed, replayed_bytes) = served(bed, Host::Test, &path);
        let secs = took.as_secs_f64();
        #[expect(clippy::cast_precision_loss, reason = "byte counts")]
        let gbps = |bytes: u64| bytes as f64 * 8.0 / secs / 1e9;
        let run = Bulk {
            connections,
            online_gbps: gbps(online_bytes),
            replayed_gbps: gbps(replayed_bytes),
            online,
            replayed,
            tcpcopy_cpu: 100.0 * (t1 - t0) / secs,
            lag,
            losses: loss_diff(&lost_before, &losses(tcpcopy)),
        };
        println!(
            "    1 MB POSTs c={connections}: online {:.2} Gbit/s, replayed {:.2} Gbit/s ({})",
            run.online_gbps,
            run.replayed_gbps,
            percent(run.replayed_gbps, run.online_gbps)
        );
        runs.push(run);
    }
    Ok(runs)
}

pub fn table(runs: &[Bulk]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| keep-alive connections uploading 1 MB bodies | online Gbit/s | replayed Gbit/s | replayed/online | uploads online / replayed | replay lag | tcpcopy CPU | losses |"
    );
    let _ = writeln!(
        md,
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for r in runs {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.2} | {} | {} / {} | {:.1} s | {:.0}% | {} |",
            r.connections,
            r.online_gbps,
            r.replayed_gbps,
            percent(r.replayed_gbps, r.online_gbps),
            r.online,
            r.replayed,
            r.lag.as_secs_f64(),
            r.tcpcopy_cpu,
            r.losses
        );
    }
    md
}
