//! Counters kept per CPU by the XDP programs.

/// Index of a counter in the `STATS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Every frame the program saw.
    Seen = 0,
    /// TCP segments whose port matched the filter.
    Matched = 1,
    /// Bytes (whole frames) of the matched segments.
    MatchedBytes = 2,
    /// Frames too short for the headers they announce (counted, passed on untouched).
    Malformed = 3,
    /// Matched frames copied to userspace through the ring buffer.
    Copied = 4,
    /// Matched frames not copied: the ring buffer was full (userspace too slow); counted loss.
    RingFull = 5,
    /// Matched frames longer than the snap length, copied truncated.
    Truncated = 6,
    /// Matched frames redirected into an AF_XDP socket (tcpcopy `--mirror`).
    Redirected = 7,
    /// Matched frames of sessions tcpcopy does not replay (`-r`), left alone: not copied.
    Unselected = 8,
    /// Client pure ACKs of replayed sessions not copied: the engine has no use for them (see
    /// `maps::MODE_ACK_GAP`).
    AcksSkipped = 9,
}

impl Stat {
    /// All counters, in index order.
    pub const ALL: [Stat; 10] = [
        Stat::Seen,
        Stat::Matched,
        Stat::MatchedBytes,
        Stat::Malformed,
        Stat::Copied,
        Stat::RingFull,
        Stat::Truncated,
        Stat::Redirected,
        Stat::Unselected,
        Stat::AcksSkipped,
    ];

    /// Name used in log lines and stats output.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::Seen => "seen",
            Stat::Matched => "matched",
            Stat::MatchedBytes => "matched_bytes",
            Stat::Malformed => "malformed",
            Stat::Copied => "copied",
            Stat::RingFull => "ring_full",
            Stat::Truncated => "truncated",
            Stat::Redirected => "redirected",
            Stat::Unselected => "unselected",
            Stat::AcksSkipped => "acks_skipped",
        }
    }
}

/// Number of entries in the `STATS` array.
pub const STAT_COUNT: u32 = 10;
const _: () = assert!(Stat::ALL.len() == STAT_COUNT as usize);
