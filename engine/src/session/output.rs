//! What a session sends next: SYN, data within the window and the pacing limit, FIN, ACK, RST.

use super::{OUR_WINDOW, RESEND_KEEP, Session, State, Timer};
use crate::{
    Seq,
    config::Config,
    stats::Stats,
    time::Time,
    wire::{OutSegment, TcpFlags, TcpOptions, WireError, emit},
};

/// Bytes of the timestamp option in every segment once negotiated.
const TS_OPTION_LEN: u16 = 12;

/// What `next_segment` wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub len: usize,
    pub payload: u32,
    pub retransmit: bool,
}

impl Session {
    /// Lets requests whose previous response is over go out, and keeps the pacing timers current;
    /// call after every input and output, before [`Self::deadline`].
    pub fn progress(&mut self, now: Time, cfg: &Config, stats: &mut Stats) {
        if self.outcome.is_none() && self.peer_reset && self.stream.end().after(self.snd_nxt) {
            // More from the client after the test server reset the connection between requests.
            let point = self.snd_nxt;
            self.rebuild(now, cfg, stats, point, false);
        }
        if self.outcome.is_none() {
            self.pass_boundaries(now, cfg, stats);
            // A client's RST waits for its close boundary, which may pass only now.
            self.reset_if_delivered();
        }
    }

    /// Whether `next_segment` would write something.
    pub fn wants_to_send(&self, cfg: &Config) -> bool {
        if self.outcome.is_some() {
            return false;
        }
        match self.state {
            State::SynSent => self.syn_owed() || self.challenge_rst.is_some(),
            State::TimeWait | State::Closed => false,
            _ => {
                self.ack_owed()
                    || self.due.rexmit_one
                    || self.snd_nxt.before(self.send_limit(cfg))
                    || self.fin_allowed(cfg)
                    || (self.due.probe && self.snd_nxt.before(self.stream.end()))
            }
        }
    }

    /// The first sequence number not to send yet: end of captured data, the next request boundary
    /// (pacing) or, sending ahead, the boundary `Config::send_ahead` requests beyond it, the test
    /// server's window.
    fn send_limit(&self, cfg: &Config) -> Seq {
        let mut limit = self.stream.end();
        if !cfg.no_wait
            && let Some(b) = self.stream.next_boundary()
        {
            limit = limit.min(self.ahead_limit(cfg, b.seq));
        }
        limit.min(self.snd_una + self.snd_wnd)
    }

    /// How far requests may go while the next boundary (at `next`) waits for the answer before
    /// it: to `next`, or with `Config::send_ahead` to the boundary that many requests beyond it
    /// (the end of what was captured if fewer came), and no further than the bytes kept for a
    /// rebuild reach (`RESEND_KEEP` from the oldest request not answered).
    fn ahead_limit(&self, cfg: &Config, next: Seq) -> Seq {
        if !self.may_send_ahead(cfg) {
            return next;
        }
        let far = self
            .stream
            .boundary(usize::from(cfg.send_ahead))
            .map_or_else(|| self.stream.end(), |b| b.seq);
        let first = self.unanswered_from.unwrap_or(self.request_start);
        let kept = first + RESEND_KEEP.unsigned_abs();
        far.min(kept).max(next)
    }

    fn fin_allowed(&self, cfg: &Config) -> bool {
        let Some(fin) = self.stream.fin() else {
            return false;
        };
        let paced = cfg.no_wait || self.stream.next_boundary().is_none_or(|b| b.seq.after(fin));
        self.snd_nxt == fin && self.stream.end() == fin && !self.stream.has_gap() && paced
    }

    /// Starts the retransmission timer unless it runs already.
    fn start_rto(&mut self, now: Time) {
        if self.timers.get(Timer::Retransmit).is_none() {
            self.timers.set(Timer::Retransmit, now + self.rto);
        }
    }

    fn mss(&self) -> usize {
        let opt = if self.ts_recent.is_some() {
            TS_OPTION_LEN
        } else {
            0
        };
        usize::from(self.peer_mss.min(self.mtu_mss).saturating_sub(opt).max(1))
    }

    fn options(&self, now: Time) -> TcpOptions {
        TcpOptions {
            timestamps: self.ts_recent.map(|recent| (now.millis_u32(), recent)),
            ..TcpOptions::default()
        }
    }

    fn write(
        &mut self,
        buf: &mut [u8],
        seq: Seq,
        flags: u8,
        payload: [&[u8]; 2],
        options: TcpOptions,
    ) -> Result<usize, WireError> {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.write_with(buf, seq, flags, payload, options)
    }

    /// [`Self::write`] without the IP id step, for payload borrowed from the stream. The ack field
    /// is the test server's next sequence number when the ACK flag is set, else zero.
    fn write_with(
        &self,
        buf: &mut [u8],
        seq: Seq,
        flags: u8,
        payload: [&[u8]; 2],
        options: TcpOptions,
    ) -> Result<usize, WireError> {
        let ack = if flags & TcpFlags::ACK == 0 {
            Seq::new(0)
        } else {
            self.rcv_nxt
        };
        emit(
            &OutSegment {
                src: self.src,
                dst: self.dst,
                seq,
                ack,
                flags,
                window: OUR_WINDOW,
                options,
                payload,
                ip_id: self.ip_id,
            },
            buf,
        )
    }

    /// Writes the next segment into `buf` (an IP packet), if any is due.
    pub fn next_segment(
        &mut self,
        now: Time,
        cfg: &Config,
        stats: &mut Stats,
        buf: &mut [u8],
    ) -> Option<Written> {
        if self.outcome.is_some() {
            return None;
        }
        match self.state {
            State::SynSent => {
                if let Some(seq) = self.challenge_rst.take() {
                    let len = self
                        .write(buf, seq, TcpFlags::RST, [&[], &[]], TcpOptions::default())
                        .ok()?;
                    return Some(Written {
                        len,
                        payload: 0,
                        retransmit: false,
                    });
                }
                if !self.syn_owed() {
                    return None;
                }
                let mut opts = self.syn_opts;
                opts.timestamps = opts.timestamps.map(|_| (now.millis_u32(), 0));
                let len = self
                    .write(buf, self.isn, TcpFlags::SYN, [&[], &[]], opts)
                    .ok()?;
                self.due.syn = false;
                self.syn_sent_at.get_or_insert(now);
                self.snd_nxt = self.isn + 1;
                self.snd_max = self.snd_nxt;
                self.timers.set(Timer::Retransmit, now + self.rto);
                Some(Written {
                    len,
                    payload: 0,
                    retransmit: self.syn_retransmitted,
                })
            }
            State::TimeWait | State::Closed => None,
            _ => self.next_synchronized(now, cfg, stats, buf),
        }
    }

    /// The next segment in a synchronized state.
    fn next_synchronized(
        &mut self,
        now: Time,
        cfg: &Config,
        stats: &mut Stats,
        buf: &mut [u8],
    ) -> Option<Written> {
        self.pass_boundaries(now, cfg, stats);
        let ack = TcpFlags::ACK;
        if self.due.rexmit_one {
            self.due.rexmit_one = false;
            let una = self.snd_una;
            let avail = usize::try_from(self.stream.end().min(self.snd_max).diff(una))
                .unwrap_or(0)
                .min(self.mss());
            if avail > 0 {
                return self.send_data(now, stats, buf, una, avail, true);
            }
        }
        let limit = self.send_limit(cfg);
        if self.snd_nxt.before(limit) {
            let n = usize::try_from(limit.diff(self.snd_nxt))
                .unwrap_or(0)
                .min(self.mss());
            let seq = self.snd_nxt;
            let retransmit = seq.before(self.snd_max);
            return self.send_data(now, stats, buf, seq, n, retransmit);
        }
        if self.fin_allowed(cfg) {
            let fin = self.snd_nxt;
            let opts = self.options(now);
            let len = self
                .write(buf, fin, ack | TcpFlags::FIN, [&[], &[]], opts)
                .ok()?;
            let retransmit = self.state.fin_sent();
            self.on_fin_sent();
            self.snd_nxt = fin + 1;
            self.snd_max = self.snd_max.max(self.snd_nxt);
            self.due.ack = false;
            self.start_rto(now);
            return Some(Written {
                len,
                payload: 0,
                retransmit,
            });
        }
        if self.due.probe && self.snd_nxt.before(self.stream.end()) {
            // Zero-window probe: one byte past the window.
            self.due.probe = false;
            let seq = self.snd_nxt;
            return self.send_data(now, stats, buf, seq, 1, false);
        }
        if self.ack_owed() {
            let opts = self.options(now);
            let len = self.write(buf, self.snd_nxt, ack, [&[], &[]], opts).ok()?;
            self.due.ack = false;
            return Some(Written {
                len,
                payload: 0,
                retransmit: false,
            });
        }
        None
    }

    fn send_data(
        &mut self,
        now: Time,
        stats: &mut Stats,
        buf: &mut [u8],
        seq: Seq,
        n: usize,
        retransmit: bool,
    ) -> Option<Written> {
        let opts = self.options(now);
        let limit_reached = seq + u32::try_from(n).unwrap_or(0) == self.stream.end();
        let flags = TcpFlags::ACK | if limit_reached { TcpFlags::PSH } else { 0 };
        self.ip_id = self.ip_id.wrapping_add(1);
        let payload = self.stream.slice(seq, n);
        let sent = payload[0].len() + payload[1].len();
        let len = self.write_with(buf, seq, flags, payload, opts).ok()?;
        let sent = u32::try_from(sent).unwrap_or(0);
        let end = seq + sent;
        let new_data = end.after(self.snd_max) && sent > 0;
        if end.after(self.snd_nxt) {
            self.snd_nxt = end;
        }
        self.unsent.sent(end, !end.before(self.stream.end()));
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if new_data {
            self.on_new_data(now, stats);
        }
        self.due.ack = false;
        self.start_rto(now);
        Some(Written {
            len,
            payload: sent,
            retransmit,
        })
    }

    /// New data went out (up to `snd_max`): a request's (its first data counts it), whose answer
    /// is awaited from now, unless it went ahead of an answer still coming (see `pass`).
    fn on_new_data(&mut self, now: Time, stats: &mut Stats) {
        // Boundaries not passed whose request has gone out now: sent ahead.
        while let Some(b) = self.stream.boundary(self.ahead.len())
            && b.seq.before(self.snd_max)
        {
            self.ahead.push_back(self.rcv_nxt);
            stats.sent_ahead += 1;
        }
        let begun = self.boundaries_passed + self.ahead.len() as u64 + 1;
        if self.requests < begun {
            stats.requests += begun - self.requests;
            self.requests = begun;
        }
        if self.ahead.is_empty() {
            self.awaiting_answer_since = Some(now);
        }
    }

    /// The last packet of a finished session: a RST if it ends by reset, else the ACK still owed
    /// (of the test server's FIN; only a synchronized connection owes one).
    pub fn final_segment(&mut self, now: Time, buf: &mut [u8]) -> Option<usize> {
        let (flags, seq, opts) = if let Some((seq, flags)) = self.rst_due.take() {
            (flags, seq, TcpOptions::default())
        } else if self.ack_owed() {
            (TcpFlags::ACK, self.snd_nxt, self.options(now))
        } else {
            return None;
        };
        self.due.ack = false;
        self.write(buf, seq, flags, [&[], &[]], opts).ok()
    }
}
