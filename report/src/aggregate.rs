//! Reading a compare log line by line into bounded aggregates.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    hash::Hash,
    io::{self, BufRead},
};

use serde::Deserialize;
use tcpcopy_compare::log::Histogram;

/// A line longer than this is not read (it is skipped up to its end and counted).
pub const MAX_LINE: usize = 1 << 20;
/// Request lines are kept up to this many characters.
pub const MAX_REQUEST_CHARS: usize = 200;
/// Keys tracked by each top list ([`TopK`]).
pub const TOP_CAPACITY: usize = 1000;
/// Time buckets kept per series; past it, buckets double in width.
pub const MAX_BUCKETS: usize = 120;
/// Unreadable lines named in the page (all are counted).
pub const NAMED_BAD_LINES: usize = 10;

/// The most frequent keys of a stream with at most `cap` keys held: the Space-Saving algorithm
/// (Metwally et al.). While no key was evicted the counts are exact; after that a key's count is
/// at most `error` above its true count, and any key more frequent than `total / cap` is held.
#[derive(Clone, Debug)]
pub struct TopK<K: Ord + Hash + Clone> {
    cap: usize,
    /// key -> (count, error)
    counts: HashMap<K, (u64, u64)>,
    order: BTreeSet<(u64, K)>,
    total: u64,
    evicted: bool,
}

/// One key of a [`TopK`] list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranked<K> {
    pub key: K,
    pub count: u64,
    /// How much `count` may exceed the true count (0: exact).
    pub error: u64,
}

impl<K: Ord + Hash + Clone> TopK<K> {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            counts: HashMap::new(),
            order: BTreeSet::new(),
            total: 0,
            evicted: false,
        }
    }

    pub fn add(&mut self, key: K) {
        self.total += 1;
        if let Some((count, _)) = self.counts.get_mut(&key) {
            self.order.remove(&(*count, key.clone()));
            *count += 1;
            self.order.insert((*count, key));
        } else if self.counts.len() < self.cap {
            self.counts.insert(key.clone(), (1, 0));
            self.order.insert((1, key));
        } else if let Some((min, old)) = self.order.pop_first() {
            self.counts.remove(&old);
            self.counts.insert(key.clone(), (min + 1, min));
            self.order.insert((min + 1, key));
            self.evicted = true;
        }
    }

    /// The `n` most frequent keys, most frequent first (ties by key, descending).
    pub fn top(&self, n: usize) -> Vec<Ranked<K>> {
        self.order
            .iter()
            .rev()
            .take(n)
            .map(|(count, key)| Ranked {
                key: key.clone(),
                count: *count,
                error: self.counts.get(key).map_or(0, |&(_, e)| e),
            })
            .collect()
    }

    /// Keys added, all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Distinct keys held.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Whether the counts are exact (no key was ever evicted).
    pub fn exact(&self) -> bool {
        !self.evicted
    }
}

/// Values over time in at most [`MAX_BUCKETS`] buckets of `width_us`: when a new bucket would
/// pass the limit, the width doubles and neighbours merge.
#[derive(Clone, Debug)]
pub struct TimeBuckets<V> {
    width_us: u64,
    buckets: BTreeMap<u64, V>,
}

impl<V> TimeBuckets<V> {
    fn new(width_us: u64) -> Self {
        Self {
            width_us,
            buckets: BTreeMap::new(),
        }
    }

    /// Merges `value` at `time_us` into its bucket with `merge(existing, new)`.
    fn add(&mut self, time_us: u64, value: V, merge: impl Fn(&mut V, V) + Copy) {
        loop {
            let key = time_us / self.width_us;
            if let Some(v) = self.buckets.get_mut(&key) {
                merge(v, value);
                return;
            }
            if self.buckets.len() < MAX_BUCKETS {
                self.buckets.insert(key, value);
                return;
            }
            self.widen(merge);
        }
    }

    fn widen(&mut self, merge: impl Fn(&mut V, V)) {
        self.width_us = self.width_us.saturating_mul(2);
        let old = std::mem::take(&mut self.buckets);
        for (k, v) in old {
            let key = k / 2;
            if let Some(existing) = self.buckets.get_mut(&key) {
                merge(existing, v);
            } else {
                self.buckets.insert(key, v);
            }
        }
    }

    pub fn width_us(&self) -> u64 {
        self.width_us
    }

    /// `(bucket start in microseconds since the epoch, value)`, in time order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.buckets
            .iter()
            .map(|(k, v)| (k.saturating_mul(self.width_us), v))
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The counters of a summary line at a time (cumulative, as tcpcopy writes them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub time_us: u64,
    pub same: u64,
    pub differ: u64,
    pub not_compared: u64,
}

/// A summary line as read.
#[derive(Clone, Debug, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub time_us: u64,
    pub same: u64,
    pub differ: u64,
    #[serde(default)]
    pub not_compared: BTreeMap<String, u64>,
    #[serde(default)]
    pub sessions_over_cap: u64,
    #[serde(default)]
    pub online: Histogram,
    #[serde(default)]
    pub test: Histogram,
    #[serde(default, rename = "final")]
    pub is_final: bool,
}

impl Summary {
    pub fn not_compared_total(&self) -> u64 {
        self.not_compared
            .values()
            .fold(0u64, |a, &n| a.saturating_add(n))
    }
}

/// One side's response in a differ line, as far as the report needs it.
#[derive(Clone, Debug, Deserialize)]
struct Facts {
    #[serde(default)]
    status: Option<u16>,
}

#[derive(Clone, Debug, Deserialize)]
struct DifferenceIn {
    what: String,
    #[serde(default)]
    name: Option<String>,
}

/// A differ line as far as the report needs it (serde ignores the other fields).
#[derive(Clone, Debug, Deserialize)]
struct Differ {
    time_us: u64,
    #[serde(default)]
    request: String,
    online: Facts,
    test: Facts,
    difference: DifferenceIn,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Differ(Differ),
    Summary(Box<Summary>),
}

/// An unreadable line: its number (from 1) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub number: u64,
    pub reason: String,
}

/// A status pair, online then test (`None`: not HTTP).
pub type StatusPair = (Option<u16>, Option<u16>);

/// Everything the page shows, read from a log in one pass.
#[derive(Debug)]
pub struct Aggregate {
    /// Lines read (blank lines included).
    pub lines: u64,
    pub differ_lines: u64,
    pub summary_lines: u64,
    /// Summaries marked final (more than one: the log holds several runs).
    pub final_summaries: u64,
    /// The last summary: the totals.
    pub last_summary: Option<Summary>,
    /// Unreadable lines, all counted.
    pub bad_lines: u64,
    /// The first [`NAMED_BAD_LINES`] of them.
    pub named_bad_lines: Vec<BadLine>,
    /// The last line had no newline and could not be read (cut off while written): not counted
    /// in `bad_lines`.
    pub truncated_last_line: bool,
    /// Earliest and latest time of any line.
    pub first_time_us: Option<u64>,
    pub last_time_us: Option<u64>,
    pub requests: TopK<String>,
    pub status_pairs: TopK<StatusPair>,
    /// What differs first: `status`, `header: NAME`, `body_length`, `body`, `bytes`.
    pub what: TopK<String>,
    /// Differ lines per time bucket.
    pub differ_over_time: TimeBuckets<u64>,
    /// The last summary's counters in each time bucket.
    pub summaries_over_time: TimeBuckets<Counters>,
}

/// How the reader ended a line.
enum Read {
    Line { newline: bool },
    TooLong,
    End,
}

/// Reads one line into `buf` (without its newline), reading at most [`MAX_LINE`] bytes of it.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Read> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => Read::End,
                (true, true) => Read::TooLong,
                (true, false) => Read::Line { newline: false },
            });
        }
        any = true;
        let (chunk, newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = newline.unwrap_or(available.len());
        reader.consume(used);
        if newline.is_some() {
            return Ok(if too_long {
                Read::TooLong
            } else {
                Read::Line { newline: true }
            });
        }
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

impl Default for Aggregate {
    fn default() -> Self {
        Self {
            lines: 0,
            differ_lines: 0,
            summary_lines: 0,
            final_summaries: 0,
            last_summary: None,
            bad_lines: 0,
            named_bad_lines: Vec::new(),
            truncated_last_line: false,
            first_time_us: None,
            last_time_us: None,
            requests: TopK::new(TOP_CAPACITY),
            status_pairs: TopK::new(TOP_CAPACITY),
            what: TopK::new(TOP_CAPACITY),
            differ_over_time: TimeBuckets::new(1_000_000),
            summaries_over_time: TimeBuckets::new(1_000_000),
        }
    }
}

impl Aggregate {
    /// Reads a whole log. Only I/O errors fail; unreadable lines are counted.
    pub fn read(mut reader: impl BufRead) -> io::Result<Self> {
        let mut agg = Self::default();
        let mut buf = Vec::new();
        loop {
            match read_line(&mut reader, &mut buf)? {
                Read::End => break,
                Read::TooLong => {
                    agg.lines += 1;
                    agg.bad(&format!("longer than {MAX_LINE} bytes"));
                }
                Read::Line { newline } => {
                    agg.lines += 1;
                    agg.line(&buf, newline);
                }
            }
        }
        Ok(agg)
    }

    fn bad(&mut self, reason: &str) {
        self.bad_lines += 1;
        if self.named_bad_lines.len() < NAMED_BAD_LINES {
            self.named_bad_lines.push(BadLine {
                number: self.lines,
                reason: truncate_chars(reason, 160),
            });
        }
    }

    /// Takes one line (`newline`: it ended with one; a last line without may be cut off).
    pub fn line(&mut self, text: &[u8], newline: bool) {
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match serde_json::from_slice::<Line>(text) {
            Ok(Line::Differ(d)) => self.differ(d),
            Ok(Line::Summary(s)) => self.summary(*s),
            Err(_) if !newline => self.truncated_last_line = true,
            Err(e) => self.bad(&e.to_string()),
        }
    }

    fn saw_time(&mut self, t: u64) {
        self.first_time_us = Some(self.first_time_us.map_or(t, |f| f.min(t)));
        self.last_time_us = Some(self.last_time_us.map_or(t, |l| l.max(t)));
    }

    fn differ(&mut self, d: Differ) {
        self.differ_lines += 1;
        self.saw_time(d.time_us);
        self.requests
            .add(truncate_chars(&d.request, MAX_REQUEST_CHARS));
        self.status_pairs.add((d.online.status, d.test.status));
        let what = match (d.difference.what.as_str(), d.difference.name) {
            ("header", Some(name)) => format!("header: {}", truncate_chars(&name, 60)),
            (w, _) => truncate_chars(w, 60),
        };
        self.what.add(what);
        self.differ_over_time.add(d.time_us, 1, |a, b| *a += b);
    }

    fn summary(&mut self, s: Summary) {
        self.summary_lines += 1;
        self.saw_time(s.time_us);
        if s.is_final {
            self.final_summaries += 1;
        }
        let c = Counters {
            time_us: s.time_us,
            same: s.same,
            differ: s.differ,
            not_compared: s.not_compared_total(),
        };
        // The later summary of a bucket holds its totals.
        self.summaries_over_time.add(s.time_us, c, |a, b| {
            if b.time_us >= a.time_us {
                *a = b;
            }
        });
        self.last_summary = Some(s);
    }

    /// Differing requests per bucket, from the differ lines: `(start_us, count)`.
    pub fn differ_series(&self) -> Vec<(u64, u64)> {
        self.differ_over_time.iter().map(|(t, &n)| (t, n)).collect()
    }

    /// Per interval between successive summaries: `(start_us, end_us, same, differ)` compared
    /// in it. The first summary only opens the first interval: what it counts since tcpcopy
    /// started may span more than the log (a log reopened after rotation). A counter that goes
    /// down (tcpcopy restarted on the same log) starts a new run.
    pub fn interval_series(&self) -> Vec<(u64, u64, u64, u64)> {
        let mut out = Vec::new();
        let mut prev: Option<Counters> = None;
        for (_, c) in self.summaries_over_time.iter() {
            if let Some(p) = prev {
                let restarted = c.same < p.same || c.differ < p.differ;
                let (same, differ) = if restarted {
                    (c.same, c.differ)
                } else {
                    (c.same - p.same, c.differ - p.differ)
                };
                out.push((p.time_us, c.time_us, same, differ));
            }
            prev = Some(*c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn differ_line(t: u64, request: &str, online: u16, test: u16) -> String {
        format!(
            r#"{{"kind":"differ","time_us":{t},"client":"10.0.0.1:4000","server":"10.0.0.2:80","index":0,"request":"{request}","online":{{"status":{online},"length":5,"digest":"00","latency_us":100}},"test":{{"status":{test},"length":5,"digest":"01","latency_us":900}},"difference":{{"what":"status","online":{online},"test":{test}}}}}"#
        )
    }

    fn summary_line(t: u64, same: u64, differ: u64, is_final: bool) -> String {
        let mut online = Histogram::default();
        let mut test = Histogram::default();
        for _ in 0..same + differ {
            online.record(300);
            test.record(3_000);
        }
        let s = serde_json::json!({
            "kind": "summary", "time_us": t, "same": same, "differ": differ,
            "not_compared": {"gap": 2, "over_cap": 1}, "sessions_over_cap": 1,
            "online": online, "test": test, "final": is_final,
        });
        s.to_string()
    }

    #[test]
    fn top_k_is_exact_under_its_capacity_and_keeps_the_heavy_keys_over_it() {
        let mut t = TopK::new(3);
        for k in ["a", "b", "a", "c", "a", "b"] {
            t.add(k.to_owned());
        }
        let top = t.top(2);
        assert_eq!((top[0].key.as_str(), top[0].count), ("a", 3));
        assert_eq!((top[1].key.as_str(), top[1].count), ("b", 2));
        assert!(t.exact());
        // Many rare keys through a small list: the heavy one stays, with its count at least
        // its true count and at most true + error.
        let mut t = TopK::new(10);
        for i in 0..10_000u32 {
            t.add(if i % 4 == 0 {
                "heavy".to_owned()
            } else {
                format!("rare{i}")
            });
        }
        assert!(!t.exact());
        assert_eq!(t.len(), 10);
        let top = t.top(1);
        assert_eq!(top[0].key, "heavy");
        assert!(top[0].count >= 2_500 && top[0].count - top[0].error <= 2_500);
        assert_eq!(t.total(), 10_000);
    }

    #[test]
    fn time_buckets_widen_and_keep_the_sum() {
        let mut b = TimeBuckets::new(1_000_000);
        for s in 0..1_000u64 {
            b.add(s * 1_000_000, 1u64, |a, v| *a += v);
        }
        assert!(b.buckets.len() <= MAX_BUCKETS);
        assert_eq!(b.width_us(), 16_000_000, "1000 s in at most 120 buckets");
        assert_eq!(b.iter().map(|(_, v)| *v).sum::<u64>(), 1_000);
    }

    #[test]
    fn a_log_is_aggregated() {
        let mut log = String::new();
        for i in 0..30u64 {
            let (req, o, t) = if i % 3 == 0 {
                ("GET /body/1 HTTP/1.1", 200, 200)
            } else {
                ("GET /changed/1 HTTP/1.1", 200, 500)
            };
            log += &differ_line(1_000_000_000 + i * 100_000, req, o, t);
            log.push('\n');
        }
        log += &summary_line(1_001_000_000, 50, 10, false);
        log.push('\n');
        log += &summary_line(1_003_000_000, 100, 30, true);
        log.push('\n');
        let agg = Aggregate::read(Cursor::new(log)).unwrap();
        assert_eq!(agg.lines, 32);
        assert_eq!((agg.differ_lines, agg.summary_lines), (30, 2));
        assert_eq!(agg.bad_lines, 0);
        let top = agg.requests.top(5);
        assert_eq!(top.len(), 2);
        assert_eq!(
            (top[0].key.as_str(), top[0].count),
            ("GET /changed/1 HTTP/1.1", 20)
        );
        assert_eq!(
            (top[1].key.as_str(), top[1].count),
            ("GET /body/1 HTTP/1.1", 10)
        );
        let pairs = agg.status_pairs.top(5);
        assert_eq!(pairs[0].key, (Some(200), Some(500)));
        assert_eq!(pairs[0].count, 20);
        assert_eq!(agg.what.top(1)[0].key, "status");
        let last = agg.last_summary.as_ref().unwrap();
        assert!(last.is_final);
        assert_eq!(
            (last.same, last.differ, last.not_compared_total()),
            (100, 30, 3)
        );
        assert_eq!(last.test.quantile(500), Some(5_000));
        assert_eq!(agg.final_summaries, 1);
        // 30 lines 0.1 s apart: three 1-second buckets of ten.
        assert_eq!(
            agg.differ_series(),
            [
                (1_000_000_000, 10),
                (1_001_000_000, 10),
                (1_002_000_000, 10)
            ]
        );
        assert_eq!(
            agg.interval_series(),
            [(1_001_000_000, 1_003_000_000, 50, 20)]
        );
        assert_eq!(agg.first_time_us, Some(1_000_000_000));
        assert_eq!(agg.last_time_us, Some(1_003_000_000));
    }

    #[test]
    fn a_damaged_log_counts_and_names_its_bad_lines() {
        let mut log = Vec::new();
        log.extend_from_slice(differ_line(5, "GET / HTTP/1.1", 200, 404).as_bytes());
        log.extend_from_slice(b"\nnot json at all\n\n");
        log.extend_from_slice(b"{\"kind\":\"differ\",\"time_us\":\"soon\"}\n");
        log.extend_from_slice(b"{\"kind\":\"surprise\"}\n");
        log.extend_from_slice(&[0xff, 0xfe, b'{', b'\n']);
        log.extend_from_slice(&vec![b'x'; MAX_LINE + 10]);
        log.push(b'\n');
        log.extend_from_slice(summary_line(9, 3, 1, true).as_bytes());
        log.push(b'\n');
        // Cut off in the middle of the last line.
        let cut = summary_line(10, 4, 1, true);
        log.extend_from_slice(&cut.as_bytes()[..cut.len() / 2]);
        let agg = Aggregate::read(Cursor::new(log)).unwrap();
        assert_eq!(agg.lines, 9);
        assert_eq!(agg.bad_lines, 5);
        let numbers: Vec<u64> = agg.named_bad_lines.iter().map(|b| b.number).collect();
        assert_eq!(numbers, [2, 4, 5, 6, 7]);
        assert!(agg.named_bad_lines[4].reason.contains("longer than"));
        assert!(agg.truncated_last_line);
        assert_eq!(agg.differ_lines, 1);
        assert_eq!(agg.last_summary.as_ref().unwrap().same, 3);
    }

    #[test]
    fn an_empty_log_reads_as_nothing() {
        let agg = Aggregate::read(Cursor::new(Vec::new())).unwrap();
        assert_eq!((agg.lines, agg.bad_lines, agg.differ_lines), (0, 0, 0));
        assert!(agg.last_summary.is_none() && !agg.truncated_last_line);
        assert!(agg.differ_series().is_empty() && agg.interval_series().is_empty());
    }

    #[test]
    fn a_restart_in_the_log_starts_the_counts_again() {
        let log = [
            summary_line(1_000_000, 10, 1, false),
            summary_line(2_000_000, 20, 2, true),
            summary_line(3_000_000, 5, 1, false),
            summary_line(4_000_000, 7, 1, true),
        ]
        .join("\n");
        let agg = Aggregate::read(Cursor::new(log)).unwrap();
        assert_eq!(agg.final_summaries, 2);
        assert_eq!(
            agg.interval_series(),
            [
                (1_000_000, 2_000_000, 10, 1),
                (2_000_000, 3_000_000, 5, 1),
                (3_000_000, 4_000_000, 2, 0)
            ]
        );
        assert!(!agg.truncated_last_line, "the last line is whole");
    }
}
