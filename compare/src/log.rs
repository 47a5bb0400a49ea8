//! The lines of `--compare-log` (JSON, one per line) and the latency histograms: written by
//! tcpcopy, read by `tcpcopy report`. This module is the contract between the two.
//!
//! Two kinds of line, told apart by `"kind"`:
//! - `differ`: one request whose responses differ: when (`time_us`, microseconds since the Unix
//!   epoch), the replayed client and the service (`client`, `server`, `ip:port` as online), and the
//!   [`Record`] flattened in (`index`, `request`, `online`, `test`, `difference`).
//! - `summary`: the counters and both latency histograms so far, written at each stats interval
//!   and once more at the end with `"final": true`. The last summary of a log is its totals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::verdict::{Reason, Record, Stats};

/// Upper bounds (inclusive, microseconds) of the latency histogram's buckets; one more bucket
/// counts everything above the last. The same bounds make the Prometheus histograms (in seconds).
pub const LATENCY_BOUNDS_US: [u64; 19] = [
    50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// A latency histogram over [`LATENCY_BOUNDS_US`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// `counts[i]` counts latencies in `(bounds[i-1], bounds[i]]`; the last, those above all.
    pub counts: Vec<u64>,
    /// Latencies recorded.
    pub count: u64,
    /// Their sum, in microseconds.
    pub sum_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; LATENCY_BOUNDS_US.len() + 1],
            count: 0,
            sum_us: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, us: u64) {
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// The upper bound of the bucket holding the quantile `permille`/1000 (500 the median, 990
    /// the 99th percentile); `None` when empty, `u64::MAX` when it lies above the last bound.
    pub fn quantile(&self, permille: u64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = (u128::from(self.count) * u128::from(permille.min(1000))).div_ceil(1000);
        let rank = u64::try_from(rank).unwrap_or(u64::MAX).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(LATENCY_BOUNDS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

/// A `differ` line (serialized only: the reader takes what it needs from the JSON).
#[derive(Debug, Serialize)]
pub struct DifferLine<'a> {
    pub kind: &'static str,
    pub time_us: u64,
    pub client: String,
    pub server: String,
    #[serde(flatten)]
    pub record: &'a Record,
}

impl<'a> DifferLine<'a> {
    pub fn new(time_us: u64, client: String, server: String, record: &'a Record) -> Self {
        Self {
            kind: "differ",
            time_us,
            client,
            server,
            record,
        }
    }
}

/// A `summary` line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryLine {
    /// Always `"summary"`.
    pub kind: String,
    pub time_us: u64,
    pub same: u64,
    pub differ: u64,
    /// Requests not compared, by [`Reason::name`].
    pub not_compared: BTreeMap<String, u64>,
    pub sessions_over_cap: u64,
    /// Production's response times (request's last byte to response's last byte, kernel
    /// timestamps on the online host).
    pub online: Histogram,
    /// The test server's (replayed request's last byte sent to its response's last byte at
    /// tcpcopy).
    pub test: Histogram,
    /// The last summary, written when tcpcopy ends.
    #[serde(rename = "final")]
    pub is_final: bool,
}

impl SummaryLine {
    pub fn new(
        time_us: u64,
        stats: &Stats,
        online: Histogram,
        test: Histogram,
        is_final: bool,
    ) -> Self {
        let not_compared = Reason::ALL
            .iter()
            .zip(stats.not_compared_by)
            .map(|(r, n)| (r.name().to_owned(), n))
            .collect();
        Self {
            kind: "summary".to_owned(),
            time_us,
            same: stats.same,
            differ: stats.differ,
            not_compared,
            sessions_over_cap: stats.sessions_over_cap,
            online,
            test,
            is_final,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let mut h = Histogram::default();
        for us in [10, 50, 51, 100, 1_500, 70_000_000] {
            h.record(us);
        }
        assert_eq!(h.counts[0], 2, "10 and 50 are in the first bucket");
        assert_eq!(h.counts[1], 2, "51 and 100");
        assert_eq!(h.counts[5], 1, "1500 is in (1000, 2000]");
        assert_eq!(*h.counts.last().unwrap(), 1, "above the last bound");
        assert_eq!(h.count, 6);
        assert_eq!(h.quantile(500), Some(100));
        assert_eq!(h.quantile(1000), Some(u64::MAX));
        assert_eq!(Histogram::default().quantile(500), None);
        let mut m = Histogram::default();
        m.merge(&h);
        m.merge(&h);
        assert_eq!(m.count, 12);
        assert_eq!(m.counts[0], 4);
    }

    #[test]
    fn summary_round_trips_through_json() {
        let stats = Stats {
            same: 8,
            differ: 2,
            not_compared_by: [1, 0, 0, 0, 0],
            sessions_over_cap: 1,
        };
        let mut online = Histogram::default();
        online.record(700);
        let line = SummaryLine::new(1, &stats, online, Histogram::default(), true);
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.contains(r#""kind":"summary""#) && text.contains(r#""final":true"#));
        assert!(text.contains(r#""over_cap":1"#));
        let back: SummaryLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back, line);
    }
}
