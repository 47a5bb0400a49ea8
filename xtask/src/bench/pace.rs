//! Single connections at full speed: one keep-alive connection asking as fast as online answers,
//! and one keep-alive connection uploading 1 MB bodies back to back. Online's rate against the
//! replay's, each second: how much of online's pace one replayed connection keeps.

use std::{
    fmt::Write as _,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tcpcopy_testbed::{Host, Spawned, Testbed};

use super::rig::{LogCounter, Wrk, loss_diff, losses, percent, stat};

/// How long each run lasts.
pub const RUN: Duration = Duration::from_secs(10);
/// One single-connection run.
pub struct Run {
    /// Which tcpcopy binary replayed, and which intercept binary caught the replies.
    pub binary: &'static str,
    pub intercept: &'static str,
    /// The `--send-ahead` it ran with (`None`: the binary's default, a baseline's).
    pub send_ahead: Option<u8>,
    pub what: &'static str,
    /// Requests online served during wrk's run, and those the test server had received by then.
    pub online: usize,
    pub replayed_during: usize,
    /// Requests the test server received in all (after the replay settled), and when its last
    /// arrived after wrk's end.
    pub replayed: usize,
    pub tail: Duration,
    /// Request bytes (nginx's `$request_length`) online, and replayed in all.
    pub online_bytes: u64,
    pub replayed_bytes: u64,
    pub secs: f64,
    /// tcpcopy's largest `lag_ms` during the run.
    pub max_lag_ms: u64,
    /// The time per online request (wrk's run over the requests online served: its round trip
    /// and wrk's own time), and the replay's mean response time during the run as tcpcopy
    /// measured it (request sent to the answer's first byte back from intercept). A paced
    /// replay of one connection keeps online's pace only while the second is the shorter.
    pub online_rtt: Option<Duration>,
    pub replay_rtt: Option<Duration>,
    /// Requests tcpcopy sent ahead of the answer before them during the run and its tail (its
    /// stats line's `sent_ahead`).
    pub sent_ahead_n: u64,
    pub losses: String,
}

impl Run {
    /// The replay's pace against online's: requests the test server received during wrk's run
    /// per request online served (the replay keeps online's pace at 100%).
    #[expect(clippy::cast_precision_loss, reason = "request counts")]
    pub fn pace(&self) -> String {
        percent(self.replayed_during as f64, self.online as f64)
    }
}

pub fn run(bed: &Testbed, tcpcopy: &Spawned, tag: &str) -> anyhow::Result<Vec<Run>> {
    let script = super::bulk::upload_script(bed)?;
    let mut runs = Vec::new();
    for (what, path, body) in [
        (
            "one keep-alive connection, GETs",
            format!("pace-{tag}-k1"),
            false,
        ),
        (
            "one keep-alive connection, 1 MB POSTs",
            format!("bulk-{tag}-1"),
            true,
        ),
    ] {
        let wrk = Wrk {
            connections: 1,
            threads: 1,
            close: false,
            script: body.then_some(script.as_path()),
            path: &path,
        };
        let r = single(bed, tcpcopy, &wrk, what)?;
        println!(
            "    {what:<40} online {:>7} in {:.1} s, replayed {:>7} by then ({}), {} in all ({} of the bytes), tail {:.1} s, lag up to {} ms, per online request {} replay round trip {}, sent ahead {}, losses {}",
            r.online,
            r.secs,
            r.replayed_during,
            r.pace(),
            r.replayed,
            bytes_ratio(&r),
            r.tail.as_secs_f64(),
            r.max_lag_ms,
            micros(r.online_rtt),
            micros(r.replay_rtt),
            r.sent_ahead_n,
            r.losses
        );
        runs.push(r);
    }
    Ok(runs)
}

#[expect(clippy::cast_precision_loss, reason = "byte counts")]
fn bytes_ratio(r: &Run) -> String {
    percent(r.replayed_bytes as f64, r.online_bytes as f64)
}

fn single(
    bed: &Testbed,
    tcpcopy: &Spawned,
    wrk: &Wrk<'_>,
    what: &'static str,
) -> anyhow::Result<Run> {
    let mut online = LogCounter::new(bed, Host::Online, wrk.path);
    let mut replayed = LogCounter::new(bed, Host::Test, wrk.path);
    let lost_before = losses(tcpcopy);
    let ahead_before = stat(tcpcopy, "sent_ahead").unwrap_or(0);
    let started = Instant::now();
    let rt0 = response_time(bed);
    let mut child = wrk
        .command(bed, RUN)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting wrk")?;
    let mut max_lag_ms = 0;
    while child.try_wait()?.is_none() {
        thread::sleep(Duration::from_millis(200));
        max_lag_ms = max_lag_ms.max(stat(tcpcopy, "lag_ms").unwrap_or(0));
    }
    let secs = started.elapsed().as_secs_f64();
    let online_n = online.update();
    let during = replayed.update();
    let rt1 = response_time(bed);
    child.wait()?;
    #[expect(clippy::cast_precision_loss, reason = "request counts")]
    let online_rtt = (online_n > 0).then(|| Duration::from_secs_f64(secs / online_n as f64));
    #[expect(clippy::cast_precision_loss, reason = "counts")]
    let replay_rtt = match (rt0.unwrap_or((0.0, 0)), rt1) {
        ((s0, n0), Some((s1, n1))) if n1 > n0 => {
            Some(Duration::from_secs_f64((s1 - s0) / (n1 - n0) as f64))
        }
        _ => None,
    };
    let end = Instant::now();
    let mut grew_at = end;
    let mut last = during;
    while end.elapsed() < Duration::from_mins(2) && grew_at.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(100));
        max_lag_ms = max_lag_ms.max(stat(tcpcopy, "lag_ms").unwrap_or(0));
        let now = replayed.update();
        if now != last {
            last = now;
            grew_at = Instant::now();
        }
    }
    let (_, online_bytes) = super::rig::served(bed, Host::Online, wrk.path);
    let (all, replayed_bytes) = super::rig::served(bed, Host::Test, wrk.path);
    Ok(Run {
        binary: "tcpcopy",
        intercept: "intercept",
        send_ahead: None,
        what,
        online: online_n,
        replayed_during: during,
        replayed: all,
        tail: grew_at - end,
        online_bytes,
        replayed_bytes,
        secs,
        max_lag_ms,
        online_rtt,
        replay_rtt,
        sent_ahead_n: stat(tcpcopy, "sent_ahead")
            .unwrap_or(0)
            .saturating_sub(ahead_before),
        losses: loss_diff(&lost_before, &losses(tcpcopy)),
    })
}

/// The runs as a markdown table.
pub fn table(runs: &[Run]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| tcpcopy, intercept | --send-ahead | {} s of wrk | online requests | replayed by wrk's end (pace) | replayed in all | request bytes replayed | replay's tail | lag gauge (max) | time per online request | replay round trip (tcpcopy) | sent ahead | losses |",
        RUN.as_secs()
    );
    let _ = writeln!(
        md,
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for r in runs {
        let _ = writeln!(
            md,
            "| {}, {} | {} | {} | {} | {} ({}) | {} | {} | {:.1} s | {} ms | {} | {} | {} | {} |",
            r.binary,
            r.intercept,
            r.send_ahead
                .map_or_else(|| "default".to_owned(), |n| n.to_string()),
            r.what,
            r.online,
            r.replayed_during,
            r.pace(),
            r.replayed,
            bytes_ratio(r),
            r.tail.as_secs_f64(),
            r.max_lag_ms,
            micros(r.online_rtt),
            micros(r.replay_rtt),
            r.sent_ahead_n,
            r.losses
        );
    }
    md
}

/// `--send-ahead` values every round runs the current tcpcopy with, alternately (env
/// `PACE_SEND_AHEAD`, comma-separated; default 0, 1 and 4).
pub fn send_ahead_values() -> anyhow::Result<Vec<u8>> {
    std::env::var("PACE_SEND_AHEAD")
        .unwrap_or_else(|_| "0,1,4".into())
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<u8>()
                .with_context(|| format!("PACE_SEND_AHEAD: {v:?} is no number of requests"))
        })
        .collect()
}

/// Rounds of the send-ahead values (each value once a round).
pub const ROUNDS: usize = 2;

/// A tcpcopy binary in `target/release` to compare with (copied there by hand from another
/// build), run alternately with the current one in the same run.
pub const BASELINE: &str = "tcpcopy-baseline";
/// The same for intercept: the rounds of the baselines run this one if it is there.
pub const INTERCEPT_BASELINE: &str = "intercept-baseline";

/// Starts the tcpcopy binary `name` on the online host as `start_tcpcopy` does (the testbed's
/// target and intercept, `-c 192.0.2.x`, `extra`); waits until it is attached and linked.
pub fn start(bed: &Testbed, name: &str, extra: &[&str]) -> anyhow::Result<Spawned> {
    let mut p = tcpcopy_testbed::rig::start_replay(bed, name, None, extra)?;
    tcpcopy_testbed::rig::wait_links_up(&mut p);
    Ok(p)
}

/// Where tcpcopy serves its metrics in these runs (on the online host).
pub const METRICS: &str = "127.0.0.1:9464";

/// tcpcopy's `tcpcopy_response_time` histogram, summed over the workers: (seconds, count).
fn response_time(bed: &Testbed) -> Option<(f64, u64)> {
    let out = bed
        .cmd(Host::Online, "curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{METRICS}/metrics"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sum_of = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let sum = sum_of("tcpcopy_response_time_seconds_sum");
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a count"
    )]
    let count = sum_of("tcpcopy_response_time_seconds_count") as u64;
    (count > 0).then_some((sum, count))
}

fn micros(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.0} µs", d.as_secs_f64() * 1e6),
    )
}
