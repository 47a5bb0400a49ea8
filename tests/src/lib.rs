//! The end-to-end tests live in tests/*.rs; their helpers are the testbed's `rig` module, shared
//! with `cargo xtask demo`.

pub use tcpcopy_testbed::rig::*;

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
