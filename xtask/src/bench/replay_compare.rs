//! Replay throughput with `--compare` on against off, in the same run: wrk against online's
//! nginx (keep-alive and one request per connection, 16 connections), tcpcopy started plainly
//! and then with `--compare`; the replayed request rates and their ratio (target: >= 90%).

use std::{fmt::Write as _, time::Duration};

use tcpcopy_testbed::{Spawned, Testbed, rig::start_tcpcopy};

use super::rig::{Wrk, measure, percent};

/// One mode's figures, off and on.
pub struct Pair {
    pub mode: &'static str,
    pub off: f64,
    pub on: f64,
    /// `same=.. differ=.. not_compared=..` of the run with `--compare`.
    pub verdicts: String,
}

fn rate(
    bed: &Testbed,
    tcpcopy: &Spawned,
    intercept: &Spawned,
    path: &str,
    close: bool,
) -> anyhow::Result<f64> {
    let wrk = Wrk {
        connections: 16,
        threads: 2,
        close,
        script: None,
        path,
    };
    let m = measure(bed, &wrk, tcpcopy, Some(intercept))?;
    #[expect(clippy::cast_precision_loss, reason = "request counts")]
    Ok(m.replayed as f64 / m.replay_secs())
}

pub fn run(bed: &Testbed, intercept: &Spawned) -> anyhow::Result<Vec<Pair>> {
    let mut out = Vec::new();
    for (mode, close, tag) in [
        ("keep-alive", false, "k"),
        ("one request per connection", true, "c"),
    ] {
        let mut plain = start_tcpcopy(bed, &[]);
        let off = rate(bed, &plain, intercept, &format!("same/off{tag}"), close)?;
        plain.finish(Duration::from_secs(20))?;
        let mut comparing = start_tcpcopy(bed, &["--compare"]);
        let on = rate(bed, &comparing, intercept, &format!("same/on{tag}"), close)?;
        let last = comparing.finish(Duration::from_secs(20))?;
        let verdicts = last
            .split(" compare ")
            .nth(1)
            .map(|v| v.split_whitespace().take(6).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        println!(
            "    {mode:<28} replayed {off:>8.0} req/s without --compare, {on:>8.0} with ({}); {verdicts}",
            percent(on, off)
        );
        out.push(Pair {
            mode,
            off,
            on,
            verdicts,
        });
    }
    Ok(out)
}

/// The pairs as a markdown table.
pub fn table(pairs: &[Pair]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| mode (16 connections) | replayed req/s without --compare | with --compare | with/without | verdicts |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | --- |");
    for p in pairs {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {} | {} |",
            p.mode,
            p.off,
            p.on,
            percent(p.on, p.off),
            p.verdicts
        );
    }
    md
}
