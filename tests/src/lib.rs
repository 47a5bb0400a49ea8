//! The end-to-end tests live in tests/*.rs; their helpers are the testbed's `rig` module, shared
//! with `cargo xtask demo`.

pub use tcpcopy_testbed::rig::*;

use std::time::Duration;

use tcpcopy_testbed::{Host, Options, Spawned, Testbed};

/// A testbed in the two-host layout (intercept on the test host, `--egress`).
pub fn two_hosts() -> Testbed {
    Testbed::up_with(&Options {
        two_hosts: true,
        ..Default::default()
    })
    .expect("testbed")
}

/// `GET http://{addr}{path}` with curl from inside `host`'s namespace (the binaries' metrics
/// and health endpoints): the HTTP status and the body.
pub fn http_get(bed: &Testbed, host: Host, addr: &str, path: &str) -> (String, String) {
    let out = bed
        .cmd(host, "curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

/// The Prometheus text served at `http://{addr}/metrics` inside `host`'s namespace; panics
/// unless it answers 200.
pub fn scrape(bed: &Testbed, host: Host, addr: &str) -> String {
    let (status, text) = http_get(bed, host, addr, "/metrics");
    assert_eq!(status, "200", "scraping {addr} on {}: {text}", host.name());
    text
}

/// The sum of the samples of `name` in Prometheus text whose labels include every one of
/// `labels` (`k="v"`).
pub fn sample_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|k| rest.contains(k)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// A running program's first `stats` line printed after this call (the testbed's impairment
/// relay prints one at least every second): its counters now.
pub fn next_stats(program: &mut Spawned) -> String {
    let from = program.lines().len();
    program
        .wait_for_after(
            from,
            |l| l.starts_with("stats"),
            "a stats line",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Reading a `--compare-log`: its JSON lines, the `differ` lines, the final summary and its
/// latency histograms.
pub mod compare_log {
    use std::path::Path;

    use serde_json::Value;

    /// The JSON lines of a compare log (none if it is not there).
    pub fn log_lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// The lines of `kind` (`differ`, `summary`).
    pub fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
        lines.iter().filter(|l| l["kind"] == kind).collect()
    }

    /// The `differ` lines of a compare log.
    pub fn differ_lines(path: &Path) -> Vec<Value> {
        log_lines(path)
            .into_iter()
            .filter(|l| l["kind"] == "differ")
            .collect()
    }

    /// The log's last line, asserted to be the final summary.
    pub fn final_summary(path: &Path) -> Value {
        let fin = log_lines(path).pop().expect("a final line");
        assert_eq!(fin["kind"], "summary", "{fin}");
        assert_eq!(fin["final"], true, "{fin}");
        fin
    }

    /// The counts of a histogram of a summary line, bucket by bucket.
    pub fn buckets(h: &Value) -> Vec<u64> {
        h["counts"]
            .as_array()
            .expect("counts")
            .iter()
            .map(|c| c.as_u64().expect("a count"))
            .collect()
    }

    /// Latencies a histogram holds at or below `us` (a bucket bound), and above it.
    pub fn split_at(h: &Value, us: u64) -> (u64, u64) {
        let bounds = tcpcopy_compare::log::LATENCY_BOUNDS_US;
        let at = bounds
            .iter()
            .position(|b| *b == us)
            .expect("a bucket bound");
        let counts = buckets(h);
        (counts[..=at].iter().sum(), counts[at + 1..].iter().sum())
    }
}
