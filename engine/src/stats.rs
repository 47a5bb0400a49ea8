//! How sessions end, and the engine's counters.

use core::fmt;

/// Why a replayed session did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// Bytes missing from the capture did not arrive within the gap timeout.
    CaptureGap,
    /// The test server did not answer the SYN within the handshake timeout.
    HandshakeTimeout,
    /// The test server answered the SYN with a RST (nothing listening, or refused).
    Refused,
    /// The test server reset an established connection before the replay was done.
    ResetByTarget,
    /// The session's buffered bytes exceeded the per-session limit.
    BufferLimit,
    /// All sessions together exceeded the global memory cap.
    MemoryCap,
    /// Nothing happened for the idle timeout while bytes were still undelivered.
    IdleTimeout,
    /// A segment went unacknowledged through every retransmission.
    RetransmitLimit,
    /// No free (address, port) was left for this copy towards the target.
    NoFreeTuple,
}

impl LossReason {
    pub const ALL: [LossReason; 9] = [
        LossReason::CaptureGap,
        LossReason::HandshakeTimeout,
        LossReason::Refused,
        LossReason::ResetByTarget,
        LossReason::BufferLimit,
        LossReason::MemoryCap,
        LossReason::IdleTimeout,
        LossReason::RetransmitLimit,
        LossReason::NoFreeTuple,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            LossReason::CaptureGap => "capture_gap",
            LossReason::HandshakeTimeout => "handshake_timeout",
            LossReason::Refused => "refused",
            LossReason::ResetByTarget => "reset_by_target",
            LossReason::BufferLimit => "buffer_limit",
            LossReason::MemoryCap => "memory_cap",
            LossReason::IdleTimeout => "idle_timeout",
            LossReason::RetransmitLimit => "retransmit_limit",
            LossReason::NoFreeTuple => "no_free_tuple",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// How a replayed session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every captured byte (and the close) reached the test server.
    Completed,
    Lost(LossReason),
}

/// Losses counted per reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses([u64; LossReason::ALL.len()]);

impl Losses {
    pub fn get(&self, reason: LossReason) -> u64 {
        self.0[reason.index()]
    }

    pub(crate) fn add(&mut self, reason: LossReason) {
        self.0[reason.index()] += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Upper bounds of the [`ResponseTimes`] buckets, microseconds (the last bucket, above them all,
/// is implicit).
pub const RESPONSE_TIME_BOUNDS_US: [u64; 14] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000,
];

/// The test server's response times, as a histogram of fixed buckets: from the replayed
/// request's last byte sent to the first byte of the answer (times from the caller's `now`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseTimes {
    /// Observations per bucket (not cumulative); the last counts those above every bound.
    buckets: [u64; RESPONSE_TIME_BOUNDS_US.len() + 1],
    /// Sum of the observations, microseconds.
    pub sum_us: u64,
    pub count: u64,
}

impl ResponseTimes {
    /// Counts one response time.
    pub fn observe(&mut self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = RESPONSE_TIME_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }

    /// `(upper bound in microseconds, observations at or below it)` for every bound, cumulative
    /// as Prometheus histograms are; the `+Inf` bucket is [`Self::count`].
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut total = 0;
        RESPONSE_TIME_BOUNDS_US
            .iter()
            .zip(self.buckets)
            .map(move |(&bound, n)| {
                total += n;
                (bound, total)
            })
    }
}

impl std::ops::AddAssign<&ResponseTimes> for ResponseTimes {
    fn add_assign(&mut self, o: &ResponseTimes) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.sum_us += o.sum_us;
        self.count += o.count;
    }
}

/// The engine's counters; they only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Captured packets handed in.
    pub captured: u64,
    /// Captured packets that did not parse (truncated, bad header).
    pub captured_malformed: u64,
    /// Captured packets that no mapping selects.
    pub captured_unmapped: u64,
    /// Captured packets of no session that could not start one (no SYN with `-O`, a lone ACK).
    pub captured_orphan: u64,
    /// Captured bytes already seen (client retransmissions and overlaps), trimmed.
    pub client_retransmitted_bytes: u64,
    /// Reply headers handed in.
    pub responses: u64,
    pub responses_malformed: u64,
    /// Reply headers for no session (late, or another instance's).
    pub responses_unknown: u64,
    /// Reply headers a session could not accept: of an older connection on the same 4-tuple.
    pub responses_stale: u64,
    /// Sessions (copies) started, and captured sessions `-r` left out.
    pub sessions_started: u64,
    pub sessions_skipped: u64,
    /// Sessions started with a faked SYN (captured mid-stream).
    pub sessions_faked_syn: u64,
    pub sessions_completed: u64,
    pub lost: Losses,
    /// Packets written by `poll_transmit`, payload bytes among them, and retransmitted segments.
    pub packets_sent: u64,
    pub payload_bytes_sent: u64,
    pub retransmits: u64,
    /// Requests held until the test server answered the previous one, by what released them:
    /// as many response bytes as online sent, the end of a response burst, or the wait limit.
    pub paced_by_bytes: u64,
    pub paced_by_burst_end: u64,
    pub paced_by_timeout: u64,
    /// Requests sent before the answer to the one before them was over (`Config::send_ahead`:
    /// the replay ran behind online).
    pub sent_ahead: u64,
    /// Clients' closes (FIN, or a RST that ends a replay) passed on after the response wait
    /// while the test server had answered less than production had before the client closed:
    /// the test server may have dropped work still unanswered (an HTTP/2 stream, say).
    pub closed_short: u64,
    /// SYNs sent again because the test server refused or ignored one (it was restarting).
    pub syn_retries: u64,
    /// Connections to the test server rebuilt after it reset or closed one mid-session.
    pub rebuilds: u64,
    /// Sessions that ended without their client ever completing its handshake with online (a
    /// SYN flood's, a scan's): replayed as half-open connections, ended by the idle timeout
    /// (`-k`) with a RST to the test server, or by the handshake timeout.
    pub half_open: u64,
    /// Requests replayed: a session's first data, and every request boundary passed with data
    /// after it.
    pub requests: u64,
    /// Payload bytes the test server acknowledged.
    pub payload_bytes_delivered: u64,
    /// The test server's response times.
    pub response_time: ResponseTimes,
}

impl std::ops::AddAssign<&Losses> for Losses {
    fn add_assign(&mut self, other: &Losses) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

impl std::ops::AddAssign<&Stats> for Stats {
    /// Adds another worker's counters (the sum is what one engine would have counted).
    fn add_assign(&mut self, o: &Stats) {
        self.captured += o.captured;
        self.captured_malformed += o.captured_malformed;
        self.captured_unmapped += o.captured_unmapped;
        self.captured_orphan += o.captured_orphan;
        self.client_retransmitted_bytes += o.client_retransmitted_bytes;
        self.responses += o.responses;
        self.responses_malformed += o.responses_malformed;
        self.responses_unknown += o.responses_unknown;
        self.responses_stale += o.responses_stale;
        self.sessions_started += o.sessions_started;
        self.sessions_skipped += o.sessions_skipped;
        self.sessions_faked_syn += o.sessions_faked_syn;
        self.sessions_completed += o.sessions_completed;
        self.lost += &o.lost;
        self.packets_sent += o.packets_sent;
        self.payload_bytes_sent += o.payload_bytes_sent;
        self.retransmits += o.retransmits;
        self.paced_by_bytes += o.paced_by_bytes;
        self.paced_by_burst_end += o.paced_by_burst_end;
        self.paced_by_timeout += o.paced_by_timeout;
        self.sent_ahead += o.sent_ahead;
        self.closed_short += o.closed_short;
        self.syn_retries += o.syn_retries;
        self.rebuilds += o.rebuilds;
        self.half_open += o.half_open;
        self.requests += o.requests;
        self.payload_bytes_delivered += o.payload_bytes_delivered;
        self.response_time += &o.response_time;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "captured={} capture_malformed={} unmapped={} orphan={} responses={} responses_unknown={} responses_stale={} responses_malformed={} sessions={} completed={} lost={} sent={} payload={} retransmits={} paced={} paced_by_timeout={} sent_ahead={} closed_short={} syn_retries={} rebuilds={} half_open={}",
            self.captured,
            self.captured_malformed,
            self.captured_unmapped,
            self.captured_orphan,
            self.responses,
            self.responses_unknown,
            self.responses_stale,
            self.responses_malformed,
            self.sessions_started,
            self.sessions_completed,
            self.lost.total(),
            self.packets_sent,
            self.payload_bytes_sent,
            self.retransmits,
            self.paced_by_bytes + self.paced_by_burst_end + self.paced_by_timeout,
            self.paced_by_timeout,
            self.sent_ahead,
            self.closed_short,
            self.syn_retries,
            self.rebuilds,
            self.half_open
        )?;
        for reason in LossReason::ALL {
            let n = self.lost.get(reason);
            if n > 0 {
                write!(f, " lost_{}={n}", reason.name())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn response_times_fall_into_cumulative_buckets() {
        let mut r = ResponseTimes::default();
        r.observe(Duration::from_micros(250));
        r.observe(Duration::from_millis(3));
        r.observe(Duration::from_mins(1));
        let c: Vec<(u64, u64)> = r.cumulative().collect();
        assert_eq!(c[0], (250, 1), "a bound is inclusive");
        assert_eq!(c[3], (2_500, 1));
        assert_eq!(c[4], (5_000, 2));
        assert_eq!(c.last().copied(), Some((5_000_000, 2)), "60 s only in +Inf");
        assert_eq!(r.count, 3);
        assert_eq!(r.sum_us, 250 + 3_000 + 60_000_000);
        let mut sum = r;
        sum += &r;
        assert_eq!(sum.count, 6);
        assert_eq!(sum.cumulative().nth(4), Some((5_000, 4)));
    }
}
