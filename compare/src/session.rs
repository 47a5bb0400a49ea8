//! One replayed session compared: its online side against its test side, request by request.

use std::{collections::VecDeque, sync::Arc};

use tcpcopy_engine::{Seq, Time};

use crate::{
    config::Config,
    side::{Direction, Segment, Side},
    verdict::{Outcome, Reason, Stats, Verdict, compare},
};

/// Which side a segment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Which {
    /// The online host's connection: the captured client requests and production's responses.
    Online,
    /// The replayed connection: the requests sent to the test server and its responses.
    Test,
}

/// How far one side of a session has come: what a caller logs to say why its requests were not
/// compared (`Display`: `requests=2 waiting=0 client_bytes=90 server_bytes=0 ended broken=gap`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Requests begun (parsed, or started by the caller's boundary), or greetings.
    pub requests: u64,
    /// Exchanges complete and waiting for the other side's.
    pub waiting: usize,
    /// Bytes of the client's and the server's stream delivered in order.
    pub client_bytes: u64,
    pub server_bytes: u64,
    /// Bytes are missing before parked ones (or before the FIN) in the client's, the server's
    /// stream.
    pub client_gap: bool,
    pub server_gap: bool,
    /// Nothing more will come (both streams ended, a reset, a gap given up, or the end).
    pub ended: bool,
    /// Why the side broke off, if it did.
    pub broken: Option<Reason>,
}

impl core::fmt::Display for Progress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "requests={} waiting={} client_bytes={} server_bytes={}",
            self.requests, self.waiting, self.client_bytes, self.server_bytes
        )?;
        for (on, what) in [
            (self.client_gap, " client_gap"),
            (self.server_gap, " server_gap"),
            (self.ended, " ended"),
        ] {
            if on {
                f.write_str(what)?;
            }
        }
        if let Some(r) = self.broken {
            write!(f, " broken={}", r.name())?;
        }
        Ok(())
    }
}

/// The comparison of one session: sans-IO, deterministic, no clock reads.
///
/// Call order (all times from the caller's clock, non-decreasing per side):
///
/// - inputs: [`Session::handle_segment`] for every segment of either side and direction (the
///   SYN included when there is one: it sets where the stream starts),
///   [`Session::handle_request_start`] where the caller knows a non-HTTP request starts,
///   [`Session::handle_timeout`] once [`Session::poll_timeout`]'s time has come,
///   [`Session::finish`] when the session is over (both connections ended or given up);
/// - after each input: [`Session::poll_verdict`] until `None` (verdicts wait in the session
///   until taken), then [`Session::poll_timeout`] for the next deadline;
/// - [`Session::stats`] counts every verdict given out.
///
/// Memory: the session holds at most [`Config::session_cap`] bytes plus one segment's worth
/// between two inputs; past the cap every request not yet decided is counted
/// [`Reason::OverCap`] and the session ignores the rest of its input.
pub struct Session {
    config: Arc<Config>,
    online: Side,
    test: Side,
    next_index: u64,
    verdicts: VecDeque<Verdict>,
    stats: Stats,
    over_cap: bool,
    finished: bool,
}

impl Session {
    pub fn new(config: Arc<Config>) -> Self {
        Self {
            online: Side::new(&config, true),
            test: Side::new(&config, false),
            config,
            next_index: 0,
            verdicts: VecDeque::new(),
            stats: Stats::default(),
            over_cap: false,
            finished: false,
        }
    }

    /// A segment of one side: `Direction::Request` from the client (online: captured; test: as
    /// sent to the test server, `now` being when it was sent), `Direction::Response` from the
    /// server (`now` being when it arrived).
    pub fn handle_segment(&mut self, now: Time, which: Which, dir: Direction, seg: Segment<'_>) {
        if self.over_cap || self.finished {
            return;
        }
        let side = match which {
            Which::Online => &mut self.online,
            Which::Test => &mut self.test,
        };
        side.handle_segment(now, dir, seg, &self.config);
        self.settle();
    }

    /// A segment of one side whose `len` payload bytes at `seq` never reached the caller (a
    /// reply from intercept without its payload): they leave a gap (given up after the gap
    /// timeout, or `gap` at the end) unless a later copy of them comes; the segment's flags go
    /// in with [`Session::handle_segment`] (an empty payload at `seq + len`).
    pub fn handle_lost(&mut self, now: Time, which: Which, dir: Direction, seq: Seq, len: usize) {
        if self.over_cap || self.finished {
            return;
        }
        self.side(which).handle_lost(now, dir, seq, len);
        self.settle();
    }

    /// For non-HTTP protocols: a new request starts on this side now, even if the server sent
    /// nothing since the previous one (by default a request starts with client bytes that
    /// follow server bytes). Ignored for HTTP, whose requests are parsed.
    pub fn handle_request_start(&mut self, which: Which) {
        if !self.over_cap && !self.finished {
            self.side(which).request_start();
            self.settle();
        }
    }

    /// Gives up on bytes missing for longer than the gap timeout.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.over_cap || self.finished {
            return;
        }
        let config = &self.config;
        self.online.check_gap(now, config.gap_timeout);
        self.test.check_gap(now, config.test_gap_timeout);
        self.settle();
    }

    /// When [`Session::handle_timeout`] is due next, if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.over_cap || self.finished {
            return None;
        }
        [
            self.online.deadline(self.config.gap_timeout),
            self.test.deadline(self.config.test_gap_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The session is over: a body that runs until the connection's end ends here, and every
    /// request not decided yet gets its verdict.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.online.end();
        self.test.end();
        self.settle();
        self.finished = true;
        if self.over_cap {
            return;
        }
        // Requests one side began but neither finished (or one never had).
        let started = self.online.out.started.max(self.test.out.started);
        while self.next_index < started {
            let reason = if self.online.out.started <= self.next_index {
                self.online.terminal()
            } else {
                self.test.terminal()
            };
            self.give(
                None,
                None,
                Outcome::NotCompared(reason.unwrap_or(Reason::Incomplete)),
            );
        }
    }

    /// The next verdict, in request order.
    #[must_use]
    pub fn poll_verdict(&mut self) -> Option<Verdict> {
        self.verdicts.pop_front()
    }

    /// Counters of the verdicts given so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes held now (what the cap limits).
    pub fn held(&self) -> usize {
        self.online.held() + self.test.held()
    }

    /// How far `which` side has come (its streams are forgotten once it ended: call before
    /// [`Session::finish`] to see them).
    pub fn progress(&self, which: Which) -> Progress {
        match which {
            Which::Online => self.online.progress(),
            Which::Test => self.test.progress(),
        }
    }

    /// Whether the session went over its cap.
    pub fn is_over_cap(&self) -> bool {
        self.over_cap
    }

    fn side(&mut self, which: Which) -> &mut Side {
        match which {
            Which::Online => &mut self.online,
            Which::Test => &mut self.test,
        }
    }

    fn give(
        &mut self,
        online: Option<std::time::Duration>,
        test: Option<std::time::Duration>,
        outcome: Outcome,
    ) {
        let v = Verdict {
            index: self.next_index,
            outcome,
            online_latency: online,
            test_latency: test,
        };
        self.next_index += 1;
        self.stats.count(&v);
        self.verdicts.push_back(v);
    }

    /// Pairs what both sides have, then enforces the cap.
    fn settle(&mut self) {
        loop {
            let ready = (
                !self.online.out.done.is_empty(),
                !self.test.out.done.is_empty(),
            );
            match ready {
                (true, true) => {
                    let (a, b) = (self.online.pop(), self.test.pop());
                    if let (Some(a), Some(b)) = (a, b) {
                        let v = compare(self.next_index, &a, &b);
                        self.next_index += 1;
                        self.stats.count(&v);
                        self.verdicts.push_back(v);
                    }
                }
                (true, false) => {
                    let Some(reason) = self.test.terminal() else {
                        break;
                    };
                    let a = self.online.pop().and_then(|e| e.latency());
                    self.give(a, None, Outcome::NotCompared(reason));
                }
                (false, true) => {
                    let Some(reason) = self.online.terminal() else {
                        break;
                    };
                    let b = self.test.pop().and_then(|e| e.latency());
                    self.give(None, b, Outcome::NotCompared(reason));
                }
                (false, false) => break,
            }
        }
        if self.held() > self.config.session_cap {
            self.over_cap = true;
            self.stats.sessions_over_cap += 1;
            let started = self.online.out.started.max(self.test.out.started);
            while self.next_index < started {
                self.give(None, None, Outcome::NotCompared(Reason::OverCap));
            }
            self.online = Side::new(&self.config, true);
            self.test = Side::new(&self.config, false);
        }
    }
}
