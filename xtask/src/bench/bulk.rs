//! Bulk: clients uploading 1 MB bodies on keep-alive connections to online as fast as it takes
//! them; the online and the replayed bit rates of the same run.

use std::fmt::Write as _;

use tcpcopy_testbed::{Spawned, Testbed};

use super::rig::{Wrk, measure, percent};

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

/// The wrk script of an upload client: POSTs of [`BODY`] bytes (written into the testbed's
/// directory).
pub fn upload_script(bed: &Testbed) -> anyhow::Result<std::path::PathBuf> {
    let script = bed.dir().join("post-1mb.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", {BODY})\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n"
        ),
    )?;
    Ok(script)
}

pub fn run(bed: &Testbed, tcpcopy: &Spawned) -> anyhow::Result<Vec<Bulk>> {
    let script = upload_script(bed)?;
    let mut runs = Vec::new();
    for connections in [1, 4] {
        let path = format!("bulk-{connections}");
        let wrk = Wrk {
            connections,
            threads: 2,
            close: false,
            script: Some(&script),
            path: &path,
        };
        let m = measure(bed, &wrk, tcpcopy, None)?;
        // Bits over the time each side took: online during wrk's run, the replay until its
        // last upload arrived.
        #[expect(clippy::cast_precision_loss, reason = "byte counts")]
        let gbps = |bytes: u64, secs: f64| bytes as f64 * 8.0 / secs / 1e9;
        let run = Bulk {
            connections,
            online_gbps: gbps(m.online_bytes, m.secs),
            replayed_gbps: gbps(m.replayed_bytes, m.replay_secs()),
            online: m.online,
            replayed: m.replayed,
            tcpcopy_cpu: 100.0 * m.tcpcopy_cpu / m.secs,
            lag: m.lag,
            losses: m.losses,
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
