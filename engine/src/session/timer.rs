//! A session's timers in one table indexed by [`Timer`] (after quinn-proto's `TimerTable`): the
//! session's deadline is the table's earliest entry, and `Session::on_timeout` handles exactly the
//! entries that have expired.

use crate::time::Time;

/// What a session waits for. The order is the order `Session::on_timeout` handles expired timers
/// in: of several that end the session at once, the first names the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// SYN-SENT for `Config::handshake_timeout`: the SYN goes again within the restart window,
    /// else the session is lost.
    Handshake,
    /// The test server refused the SYN (it is restarting): the SYN goes again.
    Restart,
    /// Captured bytes missing for `Config::gap_timeout`: the session is lost.
    CaptureGap,
    /// No captured or reply packet for `Config::idle_timeout`: the session ends.
    Idle,
    /// FIN-WAIT-2 for `Config::response_wait`: the test server's side is reset.
    Close,
    /// The retransmission timeout towards the test server.
    Retransmit,
    /// A pushed answer has been quiet long enough to count as over: the request held at the next
    /// boundary may go.
    Settle,
    /// The request held at the next boundary has waited `Config::response_wait` since the one
    /// before was acknowledged or the answer last grew: it goes.
    ResponseWait,
}

impl Timer {
    /// Every timer, in table order.
    pub(crate) const VALUES: [Timer; 8] = [
        Timer::Handshake,
        Timer::Restart,
        Timer::CaptureGap,
        Timer::Idle,
        Timer::Close,
        Timer::Retransmit,
        Timer::Settle,
        Timer::ResponseWait,
    ];
}

/// When each [`Timer`] expires, if it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimerTable([Option<Time>; Timer::VALUES.len()]);

impl TimerTable {
    /// Starts `timer` (again), to expire at `at`.
    pub(crate) fn set(&mut self, timer: Timer, at: Time) {
        self.0[timer as usize] = Some(at);
    }

    /// Stops `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    /// When `timer` expires, if it runs.
    pub(crate) fn get(&self, timer: Timer) -> Option<Time> {
        self.0[timer as usize]
    }

    /// Whether `timer` runs and has expired at `now`.
    pub(crate) fn is_expired(&self, timer: Timer, now: Time) -> bool {
        self.get(timer).is_some_and(|at| now >= at)
    }

    /// The earliest expiry of all running timers.
    pub(crate) fn next(&self) -> Option<Time> {
        self.0.iter().flatten().min().copied()
    }

    /// Stops every timer.
    pub(crate) fn stop_all(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_in_table_order() {
        for (i, timer) in Timer::VALUES.into_iter().enumerate() {
            assert_eq!(timer as usize, i);
        }
    }

    #[test]
    fn next_is_the_earliest_running_timer() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Idle, Time::from_millis(600_000));
        t.set(Timer::Retransmit, Time::from_millis(100));
        t.set(Timer::Close, Time::from_millis(500));
        assert_eq!(t.next(), Some(Time::from_millis(100)));
        t.stop(Timer::Retransmit);
        assert_eq!(t.next(), Some(Time::from_millis(500)));
        assert!(t.is_expired(Timer::Close, Time::from_millis(500)));
        assert!(!t.is_expired(Timer::Close, Time::from_millis(499)));
        assert!(!t.is_expired(Timer::Retransmit, Time::from_millis(1000)));
        t.stop_all();
        assert_eq!(t.next(), None);
        assert_eq!(t.get(Timer::Idle), None);
    }
}
