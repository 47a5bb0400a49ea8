//! What the testbed benchmarks share: wrk runs, CPU time of processes, counters of tcpcopy's
//! `stats` lines, and waiting for the replay to catch up.

use std::{
    collections::BTreeMap,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tcpcopy_testbed::{Host, Spawned, Testbed};

/// How long each measured run of wrk lasts.
pub const RUN: Duration = Duration::from_secs(5);

/// One wrk run from the client against online.
pub struct Wrk<'a> {
    pub connections: u32,
    pub threads: u32,
    /// `Connection: close`: one connection per request.
    pub close: bool,
    /// A Lua script (for POST bodies).
    pub script: Option<&'a std::path::Path>,
    pub path: &'a str,
}

impl Wrk<'_> {
    /// Runs wrk for [`RUN`]; its `Requests/sec` and the wall time it ran.
    pub fn run(&self, bed: &Testbed) -> anyhow::Result<(f64, Duration)> {
        let started = Instant::now();
        let out = self
            .command(bed, RUN)
            .stderr(Stdio::inherit())
            .output()
            .context("running wrk")?;
        let took = started.elapsed();
        Ok((requests_per_sec(&out)?, took))
    }

    /// The wrk command line of a run of `duration`.
    pub fn command(&self, bed: &Testbed, duration: Duration) -> std::process::Command {
        let url = format!("http://{}/{}/x", Host::Online.addr(), self.path);
        let mut cmd = bed.cmd(Host::Client, "wrk");
        cmd.args([
            "-t",
            &self.threads.min(self.connections).to_string(),
            "-c",
            &self.connections.to_string(),
            "-d",
            &format!("{}s", duration.as_secs()),
            "--timeout",
            "5s",
        ]);
        if self.close {
            cmd.args(["-H", "Connection: close"]);
        }
        if let Some(s) = self.script {
            cmd.arg("-s").arg(s);
        }
        cmd.arg(&url);
        cmd
    }
}

/// wrk's `Requests/sec` from its output.
pub fn requests_per_sec(out: &std::process::Output) -> anyhow::Result<f64> {
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}");
    }
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))
}

/// Counts the lines of an access log that hold `needle`, reading only what was appended since
/// the last call (a log of millions of lines is read once, not every second).
pub struct LogCounter {
    file: std::path::PathBuf,
    needle: Vec<u8>,
    offset: u64,
    partial: Vec<u8>,
    pub count: usize,
}

impl LogCounter {
    /// Lines of `host`'s access log for `/{path}/` from now on (what is logged already is
    /// skipped).
    pub fn new(bed: &Testbed, host: Host, path: &str) -> Self {
        let file = bed.access_log(host);
        let offset = std::fs::metadata(&file).map_or(0, |m| m.len());
        Self {
            file,
            needle: format!(" /{path}/").into_bytes(),
            offset,
            partial: Vec::new(),
            count: 0,
        }
    }

    /// Reads what was appended; the count so far.
    pub fn update(&mut self) -> usize {
        use std::io::{Read as _, Seek as _};
        let Ok(mut f) = std::fs::File::open(&self.file) else {
            return self.count;
        };
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return self.count;
        }
        let mut buf = std::mem::take(&mut self.partial);
        let Ok(n) = f.read_to_end(&mut buf) else {
            return self.count;
        };
        self.offset += n as u64;
        let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.count += buf[..complete]
            .split(|&b| b == b'\n')
            .filter(|l| l.windows(self.needle.len()).any(|w| w == self.needle))
            .count();
        self.partial = buf[complete..].to_vec();
        self.count
    }
}

/// The value of `key=` in tcpcopy's latest counters line.
pub fn stat(tcpcopy: &Spawned, key: &str) -> Option<u64> {
    let prefix = format!("{key}=");
    tcpcopy
        .lines()
        .iter()
        .rev()
        .find(|l| l.starts_with("stats"))?
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`: 100 in Linux's ABI).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / USER_HZ
}

/// Nanoseconds the threads of process `pid` have run on a CPU (the first field of each
/// thread's `schedstat`): to the nanosecond where [`cpu_seconds`] counts 10 ms ticks, but of
/// the threads still alive only (a difference of two readings may go down: saturate it).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// One wrk run against online and its replay: what online served and what reached the test
/// host, how long each took, the CPU tcpcopy (and intercept) used, the losses by reason.
pub struct Measured {
    pub online: usize,
    pub online_bytes: u64,
    pub replayed: usize,
    pub replayed_bytes: u64,
    /// wrk's run, seconds.
    pub secs: f64,
    /// How long after online's last request the replay's last one arrived.
    pub lag: Duration,
    /// CPU seconds during wrk's run: tcpcopy's, intercept's; tcpcopy's until the replay settled.
    pub tcpcopy_cpu: f64,
    pub intercept_cpu: f64,
    pub tcpcopy_cpu_all: f64,
    pub losses: String,
}

impl Measured {
    /// Seconds the replay took: wrk's run and the lag behind it.
    pub fn replay_secs(&self) -> f64 {
        self.secs + self.lag.as_secs_f64()
    }
}

/// Runs `wrk` and waits for its replay to settle.
pub fn measure(
    bed: &Testbed,
    wrk: &Wrk<'_>,
    tcpcopy: &Spawned,
    intercept: Option<&Spawned>,
) -> anyhow::Result<Measured> {
    let intercept_cpu = || intercept.map_or(0.0, |i| cpu_seconds(i.pid()));
    let lost_before = losses(tcpcopy);
    let (t0, i0) = (cpu_seconds(tcpcopy.pid()), intercept_cpu());
    let (_, took) = wrk.run(bed)?;
    let (t1, i1) = (cpu_seconds(tcpcopy.pid()), intercept_cpu());
    let (online, online_bytes) = served(bed, Host::Online, wrk.path);
    let lag = settle(bed, wrk.path);
    let (replayed, replayed_bytes) = served(bed, Host::Test, wrk.path);
    Ok(Measured {
        online,
        online_bytes,
        replayed,
        replayed_bytes,
        secs: took.as_secs_f64(),
        lag,
        tcpcopy_cpu: t1 - t0,
        intercept_cpu: i1 - i0,
        tcpcopy_cpu_all: cpu_seconds(tcpcopy.pid()) - t0,
        losses: loss_diff(&lost_before, &losses(tcpcopy)),
    })
}

/// Lines of `host`'s access log for `/{path}/`, and the request bytes they add up to.
pub fn served(bed: &Testbed, host: Host, path: &str) -> (usize, u64) {
    let lines = tcpcopy_testbed::rig::logged(bed, host, path);
    // addr port "METHOD uri proto" status request_length ...
    let bytes = lines
        .iter()
        .filter_map(|l| l.rsplit('"').next())
        .filter_map(|rest| rest.split_whitespace().nth(1))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    (lines.len(), bytes)
}

/// Waits until the test host's count for `path` stops growing (3 s without change: longer than
/// a retransmission timeout; at most 60 s); returns how long after the call it last grew
/// (the replay's lag behind online).
pub fn settle(bed: &Testbed, path: &str) -> Duration {
    let start = Instant::now();
    let deadline = start + Duration::from_mins(1);
    let mut last = served(bed, Host::Test, path).0;
    let mut grew_at = start;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        let now = served(bed, Host::Test, path).0;
        if now != last {
            last = now;
            grew_at = Instant::now();
        } else if grew_at.elapsed() >= Duration::from_secs(3) {
            break;
        }
    }
    grew_at - start
}

/// The `lost_<reason>=N` counters of tcpcopy's latest counters line.
pub fn losses(tcpcopy: &Spawned) -> BTreeMap<String, u64> {
    let lines = tcpcopy.lines();
    let Some(last) = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("stats") || l.starts_with("final"))
    else {
        return BTreeMap::new();
    };
    last.split_whitespace()
        .filter_map(|kv| kv.strip_prefix("lost_"))
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// What grew between two loss readings, as `reason=n, ...` (`none`).
pub fn loss_diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let grown: Vec<String> = after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| format!("{k}={d}"))
        })
        .collect();
    if grown.is_empty() {
        "none".into()
    } else {
        grown.join(", ")
    }
}

/// `a / b` as a percentage with one decimal.
pub fn percent(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.1}%", 100.0 * a / b)
    } else {
        "-".into()
    }
}
