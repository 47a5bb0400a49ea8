//! Replay at increasing load: wrk against online's nginx with 1 to 64 connections, one request
//! per connection and keep-alive; per level the online and replayed rates, their ratio, the CPU
//! of tcpcopy and intercept, and the losses by reason.

use std::fmt::Write as _;

use tcpcopy_testbed::{Spawned, Testbed};

use super::rig::{Wrk, measure, percent};

/// Concurrent connections of the load levels.
const LEVELS: [u32; 4] = [1, 4, 16, 64];

/// One load level's figures.
pub struct Level {
    pub mode: &'static str,
    pub connections: u32,
    pub online_rate: f64,
    pub replayed_rate: f64,
    pub online: usize,
    pub replayed: usize,
    pub tcpcopy_cpu: f64,
    pub intercept_cpu: f64,
    /// tcpcopy's CPU, in % of a core, per 1000 replayed requests per second.
    pub cpu_per_1000: f64,
    pub losses: String,
    /// How long after online's last request the replay's last one arrived.
    pub lag: std::time::Duration,
}

pub fn run(bed: &Testbed, tcpcopy: &Spawned, intercept: &Spawned) -> anyhow::Result<Vec<Level>> {
    let mut levels = Vec::new();
    for (mode, close) in [("one request per connection", true), ("keep-alive", false)] {
        for connections in LEVELS {
            let path = format!("load-{}{connections}", if close { "c" } else { "k" });
            let wrk = Wrk {
                connections,
                threads: 2,
                close,
                script: None,
                path: &path,
            };
            let m = measure(bed, &wrk, tcpcopy, Some(intercept))?;
            #[expect(clippy::cast_precision_loss, reason = "request counts")]
            let (online_rate, replayed_rate) = (
                m.online as f64 / m.secs,
                m.replayed as f64 / m.replay_secs(),
            );
            #[expect(clippy::cast_precision_loss, reason = "request counts")]
            let cpu_per_1000 = if m.replayed > 0 {
                // CPU seconds per request x 1000 requests per second, as % of a core.
                m.tcpcopy_cpu_all / m.replayed as f64 * 1000.0 * 100.0
            } else {
                0.0
            };
            let level = Level {
                mode,
                connections,
                online_rate,
                replayed_rate,
                online: m.online,
                replayed: m.replayed,
                tcpcopy_cpu: 100.0 * m.tcpcopy_cpu / m.secs,
                intercept_cpu: 100.0 * m.intercept_cpu / m.secs,
                cpu_per_1000,
                losses: m.losses,
                lag: m.lag,
            };
            println!(
                "    {mode:<28} c={connections:<3} online {:>8.0} req/s  replayed {:>8.0} req/s  {}",
                level.online_rate,
                level.replayed_rate,
                percent(level.replayed_rate, level.online_rate)
            );
            levels.push(level);
        }
    }
    Ok(levels)
}

/// The levels as a markdown table.
pub fn table(levels: &[Level]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| mode | connections | online req/s | replayed req/s | replayed/online | replay lag | tcpcopy CPU | intercept CPU | tcpcopy CPU per 1000 replayed req/s | losses |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for l in levels {
        #[expect(clippy::cast_precision_loss, reason = "request counts")]
        let ratio = percent(l.replayed as f64, l.online as f64);
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {} ({} of {}) | {:.1} s | {:.0}% | {:.0}% | {:.1}% of a core | {} |",
            l.mode,
            l.connections,
            l.online_rate,
            l.replayed_rate,
            ratio,
            l.replayed,
            l.online,
            l.lag.as_secs_f64(),
            l.tcpcopy_cpu,
            l.intercept_cpu,
            l.cpu_per_1000,
            l.losses
        );
    }
    md
}
