//! Sustained replay: wrk against online's nginx for a minute at a few fixed rates below the
//! saturation (found first, in the same run), keep-alive and one request per connection; every
//! second the requests online served, those the test server received and tcpcopy's replay-lag
//! gauge (the age of the oldest captured byte not yet sent, `lag_ms` in its counters line).
//! Whether the replay keeps pace shows as the lag in requests (online minus test) stopping to
//! grow: its slope over the second half of the run.

use std::{
    fmt::Write as _,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tcpcopy_testbed::{Host, Spawned, Testbed};

use super::rig::{LogCounter, Wrk, loss_diff, losses, percent, requests_per_sec, stat};

/// How long each sustained level runs.
pub const SUSTAIN: Duration = Duration::from_mins(1);
/// How long the saturation runs last.
const PROBE: Duration = Duration::from_secs(5);
/// Connections of the saturating runs.
const SATURATING: u32 = 64;
/// The wait of each wrk connection between an answer and its next request (wrk's `delay()`):
/// the rate of a level is set by its number of connections.
const THINK_MS: u32 = 10;
/// Load levels, in per cent of the saturation rate.
const LEVELS: [u32; 3] = [25, 50, 75];

/// One second of a sustained run.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub online: usize,
    pub replayed: usize,
    /// tcpcopy's `lag_ms` gauge.
    pub lag_ms: u64,
}

/// One sustained level.
pub struct Level {
    pub mode: &'static str,
    pub percent: u32,
    pub connections: u32,
    /// What wrk reported, and what the logs counted.
    pub online_rate: f64,
    pub online: usize,
    pub replayed: usize,
    pub samples: Vec<Sample>,
    /// How long after wrk's end the replay's last request arrived.
    pub settle: Duration,
    pub losses: String,
}

impl Level {
    /// The lag in requests (online minus replayed) of each sample.
    fn lags(&self) -> impl Iterator<Item = i64> + '_ {
        self.samples.iter().map(|s| {
            i64::try_from(s.online).unwrap_or(i64::MAX)
                - i64::try_from(s.replayed).unwrap_or(i64::MAX)
        })
    }

    /// Least-squares slope of the lag in requests over the second half of the run, in requests
    /// per second (positive: the replay falls further behind).
    #[expect(clippy::cast_precision_loss, reason = "sample counts and lags")]
    pub fn slope(&self) -> f64 {
        let lags: Vec<i64> = self.lags().collect();
        let half = &lags[lags.len() / 2..];
        let n = half.len() as f64;
        if half.len() < 2 {
            return 0.0;
        }
        let mean_x = (n - 1.0) / 2.0;
        let mean_y = half.iter().sum::<i64>() as f64 / n;
        let (mut num, mut den) = (0.0, 0.0);
        for (i, &y) in half.iter().enumerate() {
            let dx = i as f64 - mean_x;
            num += dx * (y as f64 - mean_y);
            den += dx * dx;
        }
        num / den
    }

    /// Whether the lag stopped growing: over the second half it grows by less than 0.1% of the
    /// online rate (what 99.9% replayed allows).
    pub fn bounded(&self) -> bool {
        self.slope() < 0.001 * self.online_rate.max(1.0)
    }

    fn max_lag(&self) -> i64 {
        self.lags().max().unwrap_or(0)
    }

    fn max_lag_ms(&self) -> u64 {
        self.samples.iter().map(|s| s.lag_ms).max().unwrap_or(0)
    }
}

/// The saturation of one mode: what wrk reaches with [`SATURATING`] connections and no pause,
/// tcpcopy replaying.
pub struct Saturation {
    pub mode: &'static str,
    pub online_rate: f64,
}

/// A wrk script that waits `ms` milliseconds before each request of a connection.
fn think_script(bed: &Testbed, ms: u32) -> anyhow::Result<std::path::PathBuf> {
    let path = bed.dir().join(format!("think-{ms}ms.lua"));
    std::fs::write(&path, format!("function delay()\n  return {ms}\nend\n"))?;
    Ok(path)
}

pub fn run(bed: &Testbed, tcpcopy: &Spawned) -> anyhow::Result<(Vec<Saturation>, Vec<Level>)> {
    let script = think_script(bed, THINK_MS)?;
    let mut saturation = Vec::new();
    let mut levels = Vec::new();
    for (mode, close) in [("one request per connection", true), ("keep-alive", false)] {
        let tag = if close { "c" } else { "k" };
        let path = format!("sat-{tag}");
        let wrk = Wrk {
            connections: SATURATING,
            threads: 2,
            close,
            script: None,
            path: &path,
        };
        let out = wrk
            .command(bed, PROBE)
            .stderr(Stdio::inherit())
            .output()
            .context("running wrk")?;
        let top = requests_per_sec(&out)?;
        println!("    {mode:<28} saturation: {top:>8.0} req/s ({SATURATING} connections)");
        saturation.push(Saturation {
            mode,
            online_rate: top,
        });
        // Let the saturating run's backlog drain before the first level.
        super::rig::settle(bed, &path);
        for pct in LEVELS {
            // Each connection asks about once per THINK_MS.
            let rate = top * f64::from(pct) / 100.0;
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a small positive count"
            )]
            let connections = (rate * f64::from(THINK_MS) / 1000.0).round().max(1.0) as u32;
            let path = format!("sus-{tag}{pct}");
            let wrk = Wrk {
                connections,
                threads: 2,
                close,
                script: Some(&script),
                path: &path,
            };
            let level = sustain(bed, tcpcopy, &wrk, mode, pct)?;
            println!(
                "    {mode:<28} {pct}%: {connections} connections, online {:>8.0} req/s, replayed {} of {} ({}), lag at most {} requests / {} ms, {}",
                level.online_rate,
                level.replayed,
                level.online,
                ratio(level.replayed, level.online),
                level.max_lag(),
                level.max_lag_ms(),
                if level.bounded() {
                    "bounded"
                } else {
                    "growing"
                }
            );
            levels.push(level);
        }
    }
    Ok((saturation, levels))
}

#[expect(clippy::cast_precision_loss, reason = "request counts")]
fn ratio(a: usize, b: usize) -> String {
    percent(a as f64, b as f64)
}

/// One level: wrk for [`SUSTAIN`], sampled every second, then the replay's settling.
fn sustain(
    bed: &Testbed,
    tcpcopy: &Spawned,
    wrk: &Wrk<'_>,
    mode: &'static str,
    pct: u32,
) -> anyhow::Result<Level> {
    let mut online = LogCounter::new(bed, Host::Online, wrk.path);
    let mut replayed = LogCounter::new(bed, Host::Test, wrk.path);
    let lost_before = losses(tcpcopy);
    let child = wrk
        .command(bed, SUSTAIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting wrk")?;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next = started + Duration::from_secs(1);
    while samples.len() < usize::try_from(SUSTAIN.as_secs()).unwrap_or(60) {
        thread::sleep(next.saturating_duration_since(Instant::now()));
        next += Duration::from_secs(1);
        samples.push(Sample {
            online: online.update(),
            replayed: replayed.update(),
            lag_ms: stat(tcpcopy, "lag_ms").unwrap_or(0),
        });
    }
    let out = child.wait_with_output().context("waiting for wrk")?;
    let online_rate = requests_per_sec(&out)?;
    // The replay's tail: until the test server's count stops growing (3 s without change).
    let end = Instant::now();
    let mut grew_at = end;
    let mut last = replayed.update();
    while end.elapsed() < Duration::from_mins(1) && grew_at.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(100));
        let now = replayed.update();
        if now != last {
            last = now;
            grew_at = Instant::now();
        }
    }
    Ok(Level {
        mode,
        percent: pct,
        connections: wrk.connections,
        online_rate,
        online: online.update(),
        replayed: replayed.update(),
        samples,
        settle: grew_at - end,
        losses: loss_diff(&lost_before, &losses(tcpcopy)),
    })
}

/// The levels as a markdown table, and the lag every 10 s of each.
pub fn table(saturation: &[Saturation], levels: &[Level]) -> String {
    let mut md = String::new();
    for s in saturation {
        let _ = writeln!(
            md,
            "Saturation, {}: {:.0} req/s online ({SATURATING} connections without pause, tcpcopy replaying, {} s).",
            s.mode,
            s.online_rate,
            PROBE.as_secs()
        );
    }
    let _ = writeln!(
        md,
        "\nEach level {} s; wrk connections pause {THINK_MS} ms between an answer and the next request.\n",
        SUSTAIN.as_secs()
    );
    let _ = writeln!(
        md,
        "| mode | level (aimed at) | connections | online req/s (of saturation) | replayed/online | lag, requests (max) | lag, tcpcopy gauge (max) | lag slope, 2nd half | lag stops growing | replay's tail after wrk | losses |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"
    );
    for l in levels {
        let top = saturation
            .iter()
            .find(|s| s.mode == l.mode)
            .map_or(0.0, |s| s.online_rate);
        let _ = writeln!(
            md,
            "| {} | {}% | {} | {:.0} ({}) | {} ({} of {}) | {} | {} ms | {:+.1} req/s | {} | {:.1} s | {} |",
            l.mode,
            l.percent,
            l.connections,
            l.online_rate,
            percent(l.online_rate, top),
            ratio(l.replayed, l.online),
            l.replayed,
            l.online,
            l.max_lag(),
            l.max_lag_ms(),
            l.slope(),
            if l.bounded() { "yes" } else { "no" },
            l.settle.as_secs_f64(),
            l.losses
        );
    }
    let _ = writeln!(
        md,
        "\nThe lag in requests (online minus test server) and tcpcopy's gauge, every 10 s:\n"
    );
    let _ = writeln!(
        md,
        "| mode | level | 10 s | 20 s | 30 s | 40 s | 50 s | 60 s |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for l in levels {
        let lags: Vec<i64> = l.lags().collect();
        let cells: Vec<String> = (1..=6)
            .filter_map(|k| {
                let i = k * 10 - 1;
                Some(format!(
                    "{} / {} ms",
                    lags.get(i)?,
                    l.samples.get(i)?.lag_ms
                ))
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {}% | {} |",
            l.mode,
            l.percent,
            cells.join(" | ")
        );
    }
    md
}

/// Every sample, as CSV.
pub fn csv(levels: &[Level]) -> String {
    let mut out = String::from("mode,level,second,online,replayed,lag_requests,lag_ms\n");
    for l in levels {
        for (i, s) in l.samples.iter().enumerate() {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{}",
                l.mode,
                l.percent,
                i + 1,
                s.online,
                s.replayed,
                i64::try_from(s.online).unwrap_or(0) - i64::try_from(s.replayed).unwrap_or(0),
                s.lag_ms
            );
        }
    }
    out
}
