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
}

impl Stat {
    /// All counters, in index order.
    pub const ALL: [Stat; 4] = [
        Stat::Seen,
        Stat::Matched,
        Stat::MatchedBytes,
        Stat::Malformed,
    ];

    /// Name used in log lines and stats output.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::Seen => "seen",
            Stat::Matched => "matched",
            Stat::MatchedBytes => "matched_bytes",
            Stat::Malformed => "malformed",
        }
    }
}

/// Number of entries in the `STATS` array.
pub const STAT_COUNT: u32 = 4;
const _: () = assert!(Stat::ALL.len() == STAT_COUNT as usize);
