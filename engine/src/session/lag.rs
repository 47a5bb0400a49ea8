//! When the captured bytes a session has not sent yet were captured: the replay's lag behind
//! the capture is the age of the oldest of them.
//!
//! Marks of (sequence number, capture time): the bytes from a mark's sequence number up to the
//! next mark's arrived at or after the mark's time. A mark is taken at most every
//! [`GRANULARITY`], and at most [`MAX_MARKS`] are kept: when full, every second one goes (the
//! bytes it covered count from the mark before: older, so the lag read is never too small) and
//! the marks' spacing doubles, so they stay evenly spread over the backlog (a backlog of `T`
//! is read to within about `T / 32`).
//! Sending drops the marks whose bytes are all out. A connection that stays a request or two
//! behind the capture therefore shows the age of its oldest waiting request, which stays
//! bounded, not the time since it was last fully caught up.

use std::{collections::VecDeque, time::Duration};

use crate::{Seq, time::Time};

/// The finest resolution of the marks.
const GRANULARITY: Duration = Duration::from_millis(1);
/// Marks one session keeps at most (12 bytes each, only while bytes wait).
const MAX_MARKS: usize = 64;

#[derive(Debug, Default)]
pub(super) struct CaptureClock {
    marks: VecDeque<(Seq, Time)>,
    /// The spacing of the marks beyond [`GRANULARITY`]: doubled at each thinning.
    thinned: u32,
}

impl CaptureClock {
    /// New bytes from `at` on were captured at `now` (everything before `at` was captured
    /// earlier).
    pub fn captured(&mut self, at: Seq, now: Time) {
        let gap = GRANULARITY * (1 << self.thinned.min(20));
        if let Some(&(_, last)) = self.marks.back()
            && now.saturating_since(last) < gap
        {
            return;
        }
        if self.marks.len() >= MAX_MARKS {
            // Keep the oldest mark and every second one after it.
            let mut i = 0;
            self.marks.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.thinned += 1;
        }
        self.marks.push_back((at, now));
    }

    /// The bytes before `upto` went out; `all` when nothing captured waits any more.
    pub fn sent(&mut self, upto: Seq, all: bool) {
        if all {
            // Frees the marks' memory: an idle session holds none.
            *self = Self::default();
            return;
        }
        while self.marks.get(1).is_some_and(|&(seq, _)| !seq.after(upto)) {
            self.marks.pop_front();
        }
    }

    /// When the oldest byte not yet sent was captured (at the latest), if one waits.
    pub fn oldest(&self) -> Option<Time> {
        self.marks.front().map(|&(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Time {
        Time::from_millis(n)
    }

    #[test]
    fn a_connection_that_stays_one_request_behind_shows_a_bounded_lag() {
        // Requests of 100 bytes captured every 10 ms; each goes out when the next one is
        // captured (the replay runs one request behind, for ever).
        let mut c = CaptureClock::default();
        let mut lags = Vec::new();
        for i in 0..1000u32 {
            let now = ms(u64::from(i) * 10);
            c.captured(Seq::new(i * 100), now);
            if i > 0 {
                c.sent(Seq::new(i * 100), false);
            }
            lags.push(now.saturating_since(c.oldest().unwrap()));
        }
        // The oldest waiting request was captured 10 ms before, however long the run (the
        // time since the replay was last caught up would be 10 s by now).
        assert_eq!(*lags.last().unwrap(), Duration::ZERO);
        c.sent(Seq::new(999 * 100 + 50), false);
        assert_eq!(
            ms(9990).saturating_since(c.oldest().unwrap()),
            Duration::ZERO
        );
        assert_eq!(
            ms(10_005).saturating_since(c.oldest().unwrap()),
            Duration::from_millis(15)
        );
        c.sent(Seq::new(100_000), true);
        assert_eq!(c.oldest(), None);
    }

    #[test]
    fn a_growing_backlog_shows_its_oldest_byte_and_drains_mark_by_mark() {
        let mut c = CaptureClock::default();
        // 1 KB captured every millisecond for 1 s, nothing sent: the oldest byte is from 0 ms.
        for i in 0..1000u32 {
            c.captured(Seq::new(i * 1000), ms(u64::from(i)));
        }
        assert_eq!(c.oldest(), Some(ms(0)));
        assert!(c.marks.len() <= MAX_MARKS, "bounded: {}", c.marks.len());
        // Half of it sent: the oldest waiting byte is from about 500 ms, never later (thinned
        // marks count their bytes from an earlier one).
        c.sent(Seq::new(500_000), false);
        let oldest = c.oldest().unwrap();
        assert!(oldest <= ms(500), "{oldest:?}");
        assert!(oldest >= ms(480), "{oldest:?}");
    }

    #[test]
    fn marks_closer_than_the_granularity_are_one() {
        let mut c = CaptureClock::default();
        c.captured(Seq::new(0), Time::from_micros(0));
        c.captured(Seq::new(100), Time::from_micros(500));
        assert_eq!(c.marks.len(), 1);
        c.captured(Seq::new(200), Time::from_micros(1000));
        assert_eq!(c.marks.len(), 2);
        // Bytes 100..200 count from 0 µs: an upper bound on their age.
        c.sent(Seq::new(150), false);
        assert_eq!(c.oldest(), Some(Time::from_micros(0)));
        c.sent(Seq::new(200), false);
        assert_eq!(c.oldest(), Some(Time::from_micros(1000)));
    }
}
