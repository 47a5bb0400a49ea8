//! What each worker publishes ([`Snapshot`]) and tcpcopy's counters line: the XDP program's
//! counters (or the file's progress), then the workers' counters summed, then how many packets
//! each worker captured.

use std::fmt;

use tcpcopy_engine::{LossReason, Stats};
use tcpcopy_host::metrics::{Families, Unit, Value, with, worker};
use tcpcopy_host::workers::{self, Pool};
use tcpcopy_xsk::program::XdpProgram;

/// What one worker last published.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub engine: Stats,
    pub send_errors: u64,
    pub links_up: usize,
    pub links: usize,
    /// Links up that speak protocol version 7.
    pub links_v7: usize,
    /// Connections the intercepts refused before they carried anything.
    pub link_refusals: u64,
    pub registrations: u64,
    pub unsent_registrations: u64,
    pub unregistrable: u64,
    /// Offline replay: how far into the file.
    pub progress: Option<String>,
    /// Sessions alive, and how far the replay runs behind the capture (see
    /// `Engine::replay_lag`), when last published.
    pub active_sessions: usize,
    pub lag: std::time::Duration,
    /// `--compare`: verdicts and latencies.
    pub compare: Option<crate::compare::Totals>,
    /// `--mirror --compare`: frames from the AF_XDP sockets that carried no kernel time in
    /// their metadata (timed when read instead).
    pub unstamped: Option<u64>,
    /// AF_XDP capture (`--mirror`): frames the kernel dropped before the sockets (their RX ring
    /// full or no free frame to fill: the reader fell behind).
    pub xsk_dropped: Option<u64>,
}

impl Snapshot {
    fn add(&mut self, o: &Snapshot) {
        self.engine += &o.engine;
        self.send_errors += o.send_errors;
        self.links_up += o.links_up;
        self.links += o.links;
        self.links_v7 += o.links_v7;
        self.link_refusals += o.link_refusals;
        self.registrations += o.registrations;
        self.unsent_registrations += o.unsent_registrations;
        self.unregistrable += o.unregistrable;
        self.active_sessions += o.active_sessions;
        self.lag = self.lag.max(o.lag);
        if o.progress.is_some() {
            self.progress.clone_from(&o.progress);
        }
        if let Some(c) = &o.compare {
            self.compare.get_or_insert_with(Default::default).add(c);
        }
        if let Some(n) = o.unstamped {
            *self.unstamped.get_or_insert(0) += n;
        }
        if let Some(n) = o.xsk_dropped {
            *self.xsk_dropped.get_or_insert(0) += n;
        }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} send_errors={} intercept_links={}/{} v7_links={} link_refusals={} registrations={} unsent_registrations={} unregistrable={} active_sessions={} lag_ms={}",
            self.engine,
            self.send_errors,
            self.links_up,
            self.links,
            self.links_v7,
            self.link_refusals,
            self.registrations,
            self.unsent_registrations,
            self.unregistrable,
            self.active_sessions,
            self.lag.as_millis()
        )?;
        if let Some(c) = &self.compare {
            write!(f, " {c}")?;
        }
        if let Some(n) = self.unstamped {
            write!(f, " compare_unstamped={n}")?;
        }
        if let Some(n) = self.xsk_dropped {
            write!(f, " capture_dropped={n}")?;
        }
        Ok(())
    }
}

/// The sum of the workers' counters, and each worker's captured packets.
pub fn total(slots: &[Snapshot]) -> (Snapshot, Vec<u64>) {
    let mut sum = Snapshot::default();
    for s in slots {
        sum.add(s);
    }
    (sum, slots.iter().map(|s| s.engine.captured).collect())
}

/// A replay worker's handle on its thread (publishes [`Snapshot`]s).
pub type WorkerCtx = workers::Ctx<Snapshot>;

/// The `stats`/`final` line.
pub fn line(program: Option<&XdpProgram>, pool: &Pool<Snapshot>) -> String {
    let (total, per_worker) = total(&pool.slots.all());
    let head = match (program, &total.progress) {
        (Some(p), _) => p.counters().map(|c| c.to_string()).unwrap_or_default(),
        (None, Some(progress)) => progress.clone(),
        (None, None) => String::new(),
    };
    let per_worker: Vec<String> = per_worker.iter().map(u64::to_string).collect();
    format!("{head} {total} captured_by_worker={}", per_worker.join(","))
}

/// Whether tcpcopy is ready (for `/ready`): attached (this is asked only once it is) and every
/// intercept link of every worker up.
pub fn ready(slots: &[Snapshot]) -> Result<(), String> {
    let (total, _) = total(slots);
    if total.links > 0 && total.links_up == total.links {
        Ok(())
    } else {
        Err(format!(
            "intercept links up: {} of {}",
            total.links_up, total.links
        ))
    }
}

/// The metrics of a scrape: the XDP program's counters, and each worker's (label `worker`).
#[expect(clippy::too_many_lines, reason = "one list of metric families")]
pub fn metrics(program: Option<&XdpProgram>, slots: &[Snapshot]) -> Families {
    let mut f = Families::default();
    if let Some(c) = program.and_then(|p| p.counters().ok()) {
        tcpcopy::xdp_metrics(&mut f, "tcpcopy", &c);
    }
    for (i, s) in slots.iter().enumerate() {
        let e = &s.engine;
        let w = || worker(i);
        f.counter(
            "tcpcopy_sessions",
            "Replayed sessions ended, by outcome: completed or the reason it was lost.",
            None,
            with(w(), "outcome", "completed"),
            e.sessions_completed,
        );
        for r in LossReason::ALL {
            f.counter(
                "tcpcopy_sessions",
                "",
                None,
                with(w(), "outcome", r.name()),
                e.lost.get(r),
            );
        }
        f.counter(
            "tcpcopy_sessions_started",
            "Replayed sessions (copies) started.",
            None,
            w(),
            e.sessions_started,
        );
        f.counter(
            "tcpcopy_sessions_skipped",
            "Captured sessions -r left out.",
            None,
            w(),
            e.sessions_skipped,
        );
        f.counter(
            "tcpcopy_sessions_faked_syn",
            "Sessions started with a faked SYN (captured mid-stream).",
            None,
            w(),
            e.sessions_faked_syn,
        );
        f.gauge(
            "tcpcopy_sessions_active",
            "Replayed sessions alive.",
            None,
            w(),
            count(s.active_sessions),
        );
        f.counter(
            "tcpcopy_captured_packets",
            "Captured client packets taken in.",
            None,
            w(),
            e.captured,
        );
        if let Some(n) = s.xsk_dropped {
            f.counter(
                "tcpcopy_capture_dropped_frames",
                "--mirror: frames the kernel dropped before tcpcopy's AF_XDP sockets (RX ring full or no free frame: the reader fell behind).",
                None,
                w(),
                n,
            );
        }
        for (reason, n) in [
            ("malformed", e.captured_malformed),
            ("unmapped", e.captured_unmapped),
            ("orphan", e.captured_orphan),
        ] {
            f.counter(
                "tcpcopy_captured_ignored_packets",
                "Captured packets not replayed: malformed, of no mapping, or of no session that could start one.",
                None,
                with(w(), "reason", reason),
                n,
            );
        }
        f.counter(
            "tcpcopy_client_retransmitted",
            "Captured bytes already had (client retransmissions, overlaps), trimmed.",
            Some(Unit::Bytes),
            w(),
            e.client_retransmitted_bytes,
        );
        f.counter(
            "tcpcopy_sent_packets",
            "Packets sent to the test server.",
            None,
            w(),
            e.packets_sent,
        );
        f.counter(
            "tcpcopy_sent_payload",
            "Payload bytes sent to the test server (retransmissions included).",
            Some(Unit::Bytes),
            w(),
            e.payload_bytes_sent,
        );
        f.counter(
            "tcpcopy_delivered_payload",
            "Payload bytes the test server acknowledged.",
            Some(Unit::Bytes),
            w(),
            e.payload_bytes_delivered,
        );
        f.counter(
            "tcpcopy_retransmitted_packets",
            "Segments sent again (timeout or duplicate ACKs).",
            None,
            w(),
            e.retransmits,
        );
        f.counter(
            "tcpcopy_send_errors",
            "Packets the sender could not send.",
            None,
            w(),
            s.send_errors,
        );
        f.counter(
            "tcpcopy_requests",
            "Requests replayed (a session's first data, and each later request).",
            None,
            w(),
            e.requests,
        );
        for (by, n) in [
            ("bytes", e.paced_by_bytes),
            ("burst_end", e.paced_by_burst_end),
            ("timeout", e.paced_by_timeout),
        ] {
            f.counter(
                "tcpcopy_paced_requests",
                "Requests held for the previous answer, by what released them.",
                None,
                with(w(), "by", by),
                n,
            );
        }
        f.counter(
            "tcpcopy_requests_sent_ahead",
            "Requests sent before the test server's answer to the one before them was over (--send-ahead).",
            None,
            w(),
            e.sent_ahead,
        );
        f.counter(
            "tcpcopy_closed_short",
            "Client closes passed on after the response wait with the answer shorter than online's.",
            None,
            w(),
            e.closed_short,
        );
        f.counter(
            "tcpcopy_syn_retries",
            "SYNs sent again because the test server refused or ignored one (it was restarting).",
            None,
            w(),
            e.syn_retries,
        );
        f.counter(
            "tcpcopy_rebuilds",
            "Connections to the test server rebuilt after it reset or closed one mid-session.",
            None,
            w(),
            e.rebuilds,
        );
        f.counter(
            "tcpcopy_sessions_half_open",
            "Sessions whose client never completed its handshake with online (a SYN flood's): left half-open at the test server, then reset.",
            None,
            w(),
            e.half_open,
        );
        f.counter(
            "tcpcopy_responses",
            "Reply headers received from intercept.",
            None,
            w(),
            e.responses,
        );
        for (reason, n) in [
            ("malformed", e.responses_malformed),
            ("unknown", e.responses_unknown),
            ("stale", e.responses_stale),
        ] {
            f.counter(
                "tcpcopy_responses_ignored",
                "Reply headers not taken: malformed, of no session, or of an older connection.",
                None,
                with(w(), "reason", reason),
                n,
            );
        }
        let r = &e.response_time;
        #[expect(clippy::cast_precision_loss, reason = "seconds as f64")]
        let secs = |us: u64| us as f64 / 1e6;
        f.histogram(
            "tcpcopy_response_time",
            "The test server's response time: from a replayed request's last byte sent to the first byte of the answer.",
            Some(Unit::Seconds),
            w(),
            Value::Histogram {
                sum: secs(r.sum_us),
                count: r.count,
                buckets: r.cumulative().map(|(b, n)| (secs(b), n)).collect(),
            },
        );
        f.gauge(
            "tcpcopy_replay_lag",
            "How far the replay runs behind the capture: the longest a captured byte not yet sent to the test server has waited.",
            Some(Unit::Seconds),
            w(),
            s.lag.as_secs_f64(),
        );
        f.gauge(
            "tcpcopy_intercept_links",
            "Control connections to intercepts, configured.",
            None,
            w(),
            count(s.links),
        );
        f.gauge(
            "tcpcopy_intercept_links_up",
            "Control connections to intercepts up.",
            None,
            w(),
            count(s.links_up),
        );
        f.gauge(
            "tcpcopy_intercept_links_v7",
            "Control connections up that speak protocol version 7.",
            None,
            w(),
            count(s.links_v7),
        );
        f.counter(
            "tcpcopy_registrations",
            "Replayed clients registered with intercept.",
            None,
            w(),
            s.registrations,
        );
        f.counter(
            "tcpcopy_registrations_unsent",
            "Registrations no connected link could take.",
            None,
            w(),
            s.unsent_registrations + s.unregistrable,
        );
    }
    compare_metrics(&mut f, slots);
    f
}

/// `--compare`'s metrics: requests by verdict, both latency histograms (buckets of
/// `tcpcopy_compare::log::LATENCY_BOUNDS_US`, in seconds).
fn compare_metrics(f: &mut Families, slots: &[Snapshot]) {
    use tcpcopy_compare::{Reason, log::LATENCY_BOUNDS_US};
    #[expect(clippy::cast_precision_loss, reason = "seconds as f64")]
    let secs = |us: u64| us as f64 / 1e6;
    for (i, s) in slots.iter().enumerate() {
        let Some(c) = &s.compare else { continue };
        let w = || worker(i);
        let help = "Replayed requests compared with production's: same, differ, or not compared (with the reason).";
        f.counter(
            "tcpcopy_compare_requests",
            help,
            None,
            with(w(), "outcome", "same"),
            c.stats.same,
        );
        f.counter(
            "tcpcopy_compare_requests",
            help,
            None,
            with(w(), "outcome", "differ"),
            c.stats.differ,
        );
        for r in Reason::ALL {
            f.counter(
                "tcpcopy_compare_requests",
                help,
                None,
                with(with(w(), "outcome", "not_compared"), "reason", r.name()),
                c.stats.not_compared_for(r),
            );
        }
        f.counter(
            "tcpcopy_compare_sessions_over_cap",
            "Sessions whose comparison went over --compare-session-kib.",
            None,
            w(),
            c.stats.sessions_over_cap,
        );
        f.counter(
            "tcpcopy_compare_payloads_missing",
            "Test-server replies that came from intercept without their payload.",
            None,
            w(),
            c.payloads_missing,
        );
        if let Some(n) = s.unstamped {
            f.counter(
                "tcpcopy_compare_unstamped_frames",
                "--mirror --compare: frames from the AF_XDP sockets without the kernel's time in their metadata, timed when read.",
                None,
                w(),
                n,
            );
        }
        for (name, help, h) in [
            (
                "tcpcopy_compare_online_latency",
                "Production's response time per compared request: the captured request's last byte to the response's last byte (kernel timestamps on the online host).",
                &c.online,
            ),
            (
                "tcpcopy_compare_test_latency",
                "The test server's response time per compared request: the replayed request's last byte sent to the response's last byte at tcpcopy.",
                &c.test,
            ),
        ] {
            let mut total = 0;
            let buckets = LATENCY_BOUNDS_US
                .iter()
                .zip(&h.counts)
                .map(|(&b, &n)| {
                    total += n;
                    (secs(b), total)
                })
                .collect();
            f.histogram(
                name,
                help,
                Some(Unit::Seconds),
                w(),
                Value::Histogram {
                    sum: secs(h.sum_us),
                    count: h.count,
                    buckets,
                },
            );
        }
    }
}

#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn count(n: usize) -> f64 {
    n as f64
}
