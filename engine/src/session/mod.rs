//! One replayed connection (one copy of one captured session) towards the test server.
//!
//! Inputs: captured client segments ([`Session::on_captured`]), reply headers from intercept
//! ([`Session::on_response`]) and timer expiries ([`Session::on_timeout`]). Output: the next
//! segment to send ([`Session::next_segment`], in `output.rs`). The client's sequence numbers go
//! out unchanged; acks are the test server's own sequence numbers (we acknowledge everything it
//! sent, as a receiver that never loses anything).
//!
//! The connection's [`State`] is RFC 793's, and every transition is logged at debug level. Its
//! timers sit in one table (`timer.rs`): [`Session::deadline`] is the earliest of them. Time is
//! the caller's and never goes backwards.

mod lag;
mod output;
mod timer;

use std::{collections::VecDeque, fmt, net::SocketAddr, time::Duration};

use crate::{
    Seq,
    config::Config,
    stats::{LossReason, Outcome, Stats},
    stream::{Accepted, Boundary, ClientStream},
    time::Time,
    wire::{TcpFlags, TcpOptions, TcpSegment},
};
use lag::CaptureClock;
use timer::{Timer, TimerTable};

/// The captured connection a session copies: (client, online service) as seen on the online host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CaptureKey {
    pub client: SocketAddr,
    pub online: SocketAddr,
}

/// The replayed connection's state towards the test server, named as RFC 793 names it. The
/// session is the active opener and closes as the captured client did: the client's FIN is ours
/// to send, the test server's FIN is the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Our SYN is due or out, not yet answered.
    SynSent,
    /// The handshake is done and neither side has closed.
    Established,
    /// Our FIN is out, not yet acknowledged; the test server's side is open.
    FinWait1,
    /// Our FIN is acknowledged; the test server's side is still open (it gets
    /// `Config::response_wait` to close it, then it is reset).
    FinWait2,
    /// The test server closed its side; the client's FIN has not gone out yet.
    CloseWait,
    /// Both FINs are out (ours first) and ours is not yet acknowledged.
    Closing,
    /// Both FINs are out (the test server's first) and ours is not yet acknowledged.
    LastAck,
    /// Both FINs are out and ours is acknowledged: the replay is complete. The session does not
    /// linger here (the engine's tombstone keeps the captured connection's late packets out).
    TimeWait,
    /// The session is over: completed, reset, or given up.
    Closed,
}

impl State {
    /// RFC 793's synchronized states: the test server's initial sequence number is known.
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::SynSent | State::Closed)
    }

    /// Whether the test server's FIN has come.
    fn peer_closed(self) -> bool {
        matches!(
            self,
            State::CloseWait | State::Closing | State::LastAck | State::TimeWait
        )
    }

    /// Whether our FIN has gone out.
    fn fin_sent(self) -> bool {
        matches!(
            self,
            State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck | State::TimeWait
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::SynSent => "SYN-SENT",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
            State::Closed => "CLOSED",
        })
    }
}

/// Segments a session owes the test server, independent of each other and of the state.
#[derive(Clone, Copy, Debug, Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent pending-output flags, each cleared by the segment it asks for"
)]
struct Pending {
    /// The SYN (again).
    syn: bool,
    /// An ACK of what the test server sent.
    ack: bool,
    /// The first unacknowledged segment, once (fast retransmit).
    rexmit_one: bool,
    /// A zero-window probe.
    probe: bool,
}

/// What waits at the next request boundary for the answer before it to be over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    Nothing,
    /// The next request.
    Request,
    /// The client's close (its FIN, or the RST that ends the replay).
    Close,
}

/// The minimum time a response must be quiet after a PSH before it counts as over.
const MIN_SETTLE: Duration = Duration::from_millis(1);
/// Receive window we advertise (unscaled field): we never hold back the test server.
pub(crate) const OUR_WINDOW: u16 = u16::MAX;

/// The first wait before a refused SYN goes again; it doubles up to [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(2);
/// Rebuilds of one session before it is given up (a test server that resets every connection):
/// with the backoff between rebuilds that bring no answer, about half a minute.
const MAX_REBUILDS: u8 = 24;
/// Bytes of the request going out kept after the test server acknowledged them, so that it can
/// go again on a new connection if the server closes without answering it (larger requests
/// are not kept: bulk uploads do not double their memory).
const RESEND_KEEP: i32 = 64 << 10;
/// With `Config::in_order_acks`: out-of-order ranges of the test server's payload remembered
/// per session (more are forgotten: the server sends them again).
const OUT_OF_ORDER_MAX: usize = 16;
/// With `Config::in_order_acks`: how long after the test server's last packet a closing session
/// still waits for the bytes missing from its answer (retransmission timeouts back off: 0.2 +
/// 0.4 + 0.8 + 1.6 s).
const HOLE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts of one connection (each read alone), not a hidden state machine"
)]
pub struct Session {
    pub key: CaptureKey,
    /// The replayed client address/port and the target.
    pub src: SocketAddr,
    pub dst: SocketAddr,
    state: State,
    isn: Seq,
    syn_opts: TcpOptions,
    stream: ClientStream,

    snd_una: Seq,
    snd_nxt: Seq,
    snd_max: Seq,
    snd_wnd: u32,
    peer_wscale: u8,
    /// Our window scale, once agreed (bounds the sequence numbers we accept).
    our_wscale: u8,
    peer_mss: u16,
    /// The largest segment payload the path MTU allows (before options).
    mtu_mss: u16,
    /// The test server's latest timestamp, once both sides agreed on timestamps.
    ts_recent: Option<u32>,
    /// The test server's initial sequence number.
    irs: Seq,
    rcv_nxt: Seq,
    /// With `Config::in_order_acks`: the test server's payload that arrived beyond a hole, as
    /// `[start, end)` ranges (at most `OUT_OF_ORDER_MAX`), acknowledged once the hole is filled.
    out_of_order: Vec<(Seq, Seq)>,
    /// The client is gone from this connection (it reset it, or a new connection took its port):
    /// end with a RST once what it sent is delivered.
    reset_after_delivery: bool,
    dup_acks: u8,

    rto: Duration,
    /// `Config::rto_min` and `rto_max`.
    rto_bounds: (Duration, Duration),
    retries: u8,
    srtt: Option<Duration>,
    /// The last captured or reply packet (the idle and keep-alive timeouts run from it).
    heard_at: Time,
    syn_sent_at: Option<Time>,
    syn_retransmitted: bool,

    /// Test server's `rcv_nxt` when the current request started going out.
    resp_mark: Seq,
    /// When the test server's answer last grew, if that segment was pushed (or carried its FIN).
    pushed_at: Option<Time>,

    due: Pending,
    /// A RST to send in SYN-SENT, at this sequence number, before the SYN again.
    challenge_rst: Option<Seq>,

    timers: TimerTable,
    ip_id: u16,

    /// When the current connection's restart window began (the session's start, or its last
    /// rebuild), the wait before the next SYN after a refusal, and the rebuilds so far.
    window_from: Time,
    retry_wait: Duration,
    rebuilds: u8,
    /// The test server reset the connection between requests: nothing is sent on it any more.
    peer_reset: bool,
    /// The captured client completed its handshake with online: an ACK, data or a FIN of it was
    /// captured after its SYN. Only then is the test server's SYN-ACK acknowledged (see
    /// [`Self::ack_owed`]): a SYN whose client never answers online's SYN-ACK (a SYN flood's, a
    /// scan's) stays half-open at the test server as it did at online.
    client_acked: bool,
    /// Rebuilds since the test server last answered anything.
    rebuilds_in_a_row: u8,
    /// Where the request going out now began.
    request_start: Seq,
    /// Where the oldest request the test server has not answered at all began, if one before
    /// the request going out was let go unanswered (released by the response wait).
    unanswered_from: Option<Seq>,
    /// `Config::send_ahead`: for each request boundary not yet passed whose request went out
    /// already (sent ahead of the answer before it), in order from the next boundary, the test
    /// server's `rcv_nxt` when that request went out (no byte before it can answer that request).
    ahead: VecDeque<Seq>,
    /// The test server has answered a request on this connection (a boundary passed with answer
    /// bytes): only then may requests be sent ahead (a server-first protocol's greeting, a
    /// handshake, come first).
    answered_here: bool,

    outcome: Option<Outcome>,
    /// The RST an ended session owes the test server: its sequence number and flags.
    rst_due: Option<(Seq, u8)>,
    /// The deadline as registered in the engine's timer heap.
    pub(crate) timer_at: Option<Time>,
    /// `unsent_since` as indexed in the engine's lag index (see `Engine::replay_lag`).
    pub(crate) lag_at: Option<Time>,
    /// Whether the session sits in the engine's transmit queue.
    pub(crate) queued: bool,
    /// Whether the engine has asked for the test server's replies to be routed here (it does
    /// once the client has completed its handshake, see `Engine::after`).
    pub(crate) registered: bool,

    /// When the session started (its record's start).
    pub started: Time,
    /// Requests whose data went out (a session's first data, then each boundary passed with
    /// data after it), and payload bytes the test server acknowledged (its record's figures).
    pub requests: u64,
    pub delivered: u64,
    /// Request boundaries passed: new data counts a request while `requests` is not above it.
    boundaries_passed: u64,
    /// When new request data last went out while no answer had begun: the start of a response
    /// time.
    awaiting_answer_since: Option<Time>,
    /// When the captured bytes not yet sent were captured (the oldest's age is the lag).
    unsent: CaptureClock,
}

impl Session {
    /// A session that will open with a SYN of sequence number `isn` and options `syn_opts`.
    pub fn new(
        now: Time,
        key: CaptureKey,
        src: SocketAddr,
        dst: SocketAddr,
        isn: Seq,
        syn_opts: TcpOptions,
        cfg: &Config,
    ) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + cfg.handshake_timeout);
        timers.set(Timer::Idle, now + cfg.idle_timeout.min(cfg.keepalive()));
        Self {
            heard_at: now,
            key,
            src,
            dst,
            state: State::SynSent,
            isn,
            syn_opts,
            stream: ClientStream::new(isn + 1),
            snd_una: isn,
            snd_nxt: isn,
            snd_max: isn,
            snd_wnd: 0,
            peer_wscale: 0,
            our_wscale: 0,
            peer_mss: 536,
            mtu_mss: cfg.mtu.saturating_sub(if dst.is_ipv4() { 40 } else { 60 }),
            ts_recent: None,
            irs: Seq::new(0),
            rcv_nxt: Seq::new(0),
            out_of_order: Vec::new(),
            dup_acks: 0,
            // RFC 6298's initial 1 s: a SYN-ACK parked at intercept until our registration arrives
            // is not worth a second SYN (which a busy server may answer with another ISN).
            rto: cfg.rto_min.max(Duration::from_secs(1)),
            rto_bounds: (cfg.rto_min, cfg.rto_max),
            retries: 0,
            srtt: None,
            syn_sent_at: None,
            syn_retransmitted: false,
            resp_mark: Seq::new(0),
            pushed_at: None,
            reset_after_delivery: false,
            due: Pending {
                syn: true,
                ..Pending::default()
            },
            challenge_rst: None,
            timers,
            ip_id: (isn.raw() >> 16) as u16,
            window_from: now,
            retry_wait: FIRST_RETRY,
            rebuilds: 0,
            peer_reset: false,
            client_acked: false,
            rebuilds_in_a_row: 0,
            request_start: isn + 1,
            unanswered_from: None,
            ahead: VecDeque::new(),
            answered_here: false,
            outcome: None,
            rst_due: None,
            timer_at: None,
            lag_at: None,
            queued: false,
            registered: false,
            started: now,
            requests: 0,
            delivered: 0,
            boundaries_passed: 0,
            awaiting_answer_since: None,
            unsent: CaptureClock::default(),
        }
    }

    /// How the session ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// The connection's state towards the test server.
    #[cfg(test)]
    pub fn state(&self) -> State {
        self.state
    }

    /// Moves to `next`, logging the transition.
    fn set_state(&mut self, next: State) {
        if next != self.state {
            log::debug!("{} > {}: {} -> {}", self.src, self.dst, self.state, next);
            self.state = next;
        }
    }

    /// Whether the captured client completed its handshake with online (see `client_acked`).
    pub fn client_acked(&self) -> bool {
        self.client_acked
    }

    /// Whether a SYN is owed and may go: the first at once, a repeat (retransmission, retry of a
    /// refused or unanswered one) only once the client has completed its handshake with online.
    /// A flood's SYN reached online once; its replay is not sent again and again.
    fn syn_owed(&self) -> bool {
        self.due.syn && (self.client_acked || self.syn_sent_at.is_none())
    }

    /// Whether an ACK is owed and may go: the test server's SYN-ACK is acknowledged only once the
    /// captured client has acknowledged online's (every later ACK follows the client's data, so
    /// it is never held).
    fn ack_owed(&self) -> bool {
        self.due.ack && self.client_acked
    }

    /// Bytes held for this session.
    pub fn buffered(&self) -> usize {
        self.stream.buffered()
    }

    /// When the oldest captured byte not yet sent was captured, if any is unsent (the engine's
    /// lag index keeps sessions by it, see `Engine::replay_lag`).
    pub(crate) fn unsent_since(&self) -> Option<Time> {
        self.unsent.oldest()
    }

    /// The captured SYN's sequence number.
    pub fn isn(&self) -> Seq {
        self.isn
    }

    /// Ends the session (CLOSED); `rst` sends a RST to the test server first, if it ever saw our
    /// SYN.
    pub fn finish(&mut self, outcome: Outcome, rst: bool) {
        if self.outcome.is_some() {
            return;
        }
        self.outcome = Some(outcome);
        if rst && self.syn_sent_at.is_some() {
            self.rst_due = Some(if self.state == State::SynSent {
                (self.isn + 1, TcpFlags::RST)
            } else {
                (self.snd_nxt, TcpFlags::RST | TcpFlags::ACK)
            });
        }
        self.timers.stop_all();
        self.set_state(State::Closed);
    }

    /// The client is gone from this connection (it reset it, or a new connection took over its
    /// port): what it sent had reached online, so the session delivers it (paced as ever), then
    /// resets the test server's connection (see `reset_if_delivered`).
    pub fn end_after_delivery(&mut self) {
        self.reset_after_delivery = true;
        self.reset_if_delivered();
    }

    /// Once the client is gone: ends the session (with a RST) when every byte it sent before is
    /// acknowledged by the test server and the answer to it is over by the close rules (at once
    /// if there is nothing to deliver).
    fn reset_if_delivered(&mut self) {
        let nothing_sent = self.stream.end() == self.isn + 1;
        let delivered = self.state.is_synchronized()
            && !self.snd_una.before(self.stream.end())
            && self.stream.next_boundary().is_none();
        if self.reset_after_delivery && (nothing_sent || delivered) {
            self.finish(Outcome::Completed, true);
        }
    }

    /// Every captured byte and the client's FIN (if any) acknowledged by the test server.
    pub fn all_delivered(&self) -> bool {
        self.state.is_synchronized()
            && !self.stream.has_gap()
            && !self.snd_una.before(self.stream.end())
            && self.stream.fin().is_none_or(|f| self.snd_una.after(f))
    }

    /// A captured or reply packet at `now`: the idle timer runs again, to the earlier of the
    /// idle and keep-alive timeouts (which of them applies is decided when it expires).
    fn heard(&mut self, now: Time, cfg: &Config) {
        self.heard_at = now;
        self.timers
            .set(Timer::Idle, now + cfg.idle_timeout.min(cfg.keepalive()));
    }

    /// A captured client segment of this session.
    pub fn on_captured(&mut self, now: Time, cfg: &Config, seg: &TcpSegment<'_>) -> Accepted {
        self.heard(now, cfg);
        if seg.flags.rst() {
            if seg.flags.ack() {
                self.stream.note_reset(seg.ack);
            }
            self.end_after_delivery();
            return Accepted::default();
        }
        if seg.flags.syn() {
            return Accepted::default();
        }
        // The client's ACK of online's SYN-ACK (the first captured segment after its SYN: a pure
        // ACK, or data or a FIN when that ACK was not captured). The test server's SYN-ACK, if in,
        // is acknowledged now (the ACK it has been owed since then may go).
        self.client_acked = true;
        if seg.payload_len == 0 && !seg.flags.fin() {
            if seg.flags.ack() {
                self.stream.on_client_ack(seg.ack);
            }
            return Accepted::default();
        }
        let ack = seg.flags.ack().then_some(seg.ack);
        let end = self.stream.end();
        let acc = self
            .stream
            .insert(seg.seq, seg.payload, ack, seg.flags.fin());
        if acc.new > 0 {
            self.unsent.captured(end, now);
        }
        if !self.stream.has_gap() {
            self.timers.stop(Timer::CaptureGap);
        } else if self.timers.get(Timer::CaptureGap).is_none() {
            self.timers.set(Timer::CaptureGap, now + cfg.gap_timeout);
        }
        acc
    }

    /// A reply header from the test server (via intercept). Returns false (and does nothing) for a
    /// segment this connection cannot accept: one of an older connection on the same 4-tuple (a
    /// late retransmission, a reply intercept parked), by the RFC 793/5961 sequence and PAWS tests.
    pub fn on_response(
        &mut self,
        now: Time,
        cfg: &Config,
        stats: &mut Stats,
        seg: &TcpSegment<'_>,
    ) -> bool {
        if !self.acceptable(seg) {
            return false;
        }
        if self.client_acked {
            // A half-open connection's SYN-ACK (and its retransmissions) does not keep the
            // session alive: only its client could, by completing the handshake.
            self.heard(now, cfg);
        }
        if seg.flags.rst() {
            if self.state == State::SynSent {
                if self.in_restart_window(now, cfg) {
                    // Nothing listens now: the test server is restarting. Try again soon.
                    self.timers.stop(Timer::Retransmit);
                    self.timers.set(Timer::Restart, now + self.retry_wait);
                    self.retry_wait = (self.retry_wait * 2).min(LAST_RETRY);
                    stats.syn_retries += 1;
                } else {
                    self.finish(Outcome::Lost(LossReason::Refused), false);
                }
            } else if let Some(point) = self.resend_from() {
                // The test server closed before it answered the request(s) going out (a graceful
                // stop closes the connections whose request it has not read): they go again.
                self.rebuild(now, cfg, stats, point, false);
            } else if self.all_delivered() && self.stream.fin().is_some() {
                self.finish(Outcome::Completed, false);
            } else if self.all_delivered() && self.ahead.is_empty() {
                // Between requests (an idle keep-alive connection reset, a restart): a new
                // connection is made when the client says more. (Requests sent ahead of an
                // answer are not between requests: they go again, from the first of them.)
                self.peer_reset = true;
                self.timers.stop(Timer::Retransmit);
                self.set_state(State::CloseWait);
            } else {
                self.rebuild_after_reset(now, cfg, stats);
            }
            return true;
        }
        if self.state == State::SynSent {
            self.on_syn_ack(now, seg);
        } else {
            self.on_synchronized(now, cfg, stats, seg);
        }
        self.reset_if_delivered();
        if self.snd_una == self.snd_max {
            // Our FIN, if out, is acknowledged.
            match self.state {
                State::FinWait1 => {
                    self.timers.set(Timer::Close, now + cfg.response_wait);
                    self.set_state(State::FinWait2);
                }
                State::Closing => self.set_state(State::TimeWait),
                State::LastAck => self.set_state(State::Closed),
                _ => {}
            }
        }
        if matches!(self.state, State::TimeWait | State::Closed) {
            // Both directions closed; the final ACK of the server's FIN goes out on the way.
            self.finish(Outcome::Completed, false);
        }
        true
    }

    /// How far the test server's bytes have come with `seg` (which occupies sequence space): its
    /// end; with `Config::in_order_acks` only as far as they came in order.
    fn received_up_to(&mut self, cfg: &Config, seg: &TcpSegment<'_>, beyond_hole: bool) -> Seq {
        let end = seg.seq + seg.seq_len();
        if !cfg.in_order_acks {
            end
        } else if beyond_hole {
            // Remembered without its FIN, which the server sends again until it is
            // acknowledged; the duplicate ACK this draws makes it send the missing bytes.
            self.remember_out_of_order(seg.seq, seg.seq + seg.payload_len);
            self.rcv_nxt
        } else {
            // In order: carried on over the out-of-order ranges it reaches.
            self.filled_up_to(end)
        }
    }

    /// With `Config::in_order_acks`: the test server's payload `[start, end)` came beyond a
    /// hole. Kept as one of at most `OUT_OF_ORDER_MAX` ranges (merged with those it touches);
    /// past that it is forgotten, and the server sends it again.
    fn remember_out_of_order(&mut self, start: Seq, end: Seq) {
        if !end.after(start) {
            return;
        }
        let (mut start, mut end) = (start, end);
        self.out_of_order.retain(|&(s, e)| {
            let touches = !s.after(end) && !start.after(e);
            if touches {
                if s.before(start) {
                    start = s;
                }
                if e.after(end) {
                    end = e;
                }
            }
            !touches
        });
        if self.out_of_order.len() < OUT_OF_ORDER_MAX {
            self.out_of_order.push((start, end));
        }
    }

    /// With `Config::in_order_acks`: in-order bytes now reach `end`; how far the remembered
    /// out-of-order ranges carry that on (those covered are dropped).
    fn filled_up_to(&mut self, mut end: Seq) -> Seq {
        loop {
            let mut grew = false;
            self.out_of_order.retain(|&(s, e)| {
                if s.after(end) {
                    return true;
                }
                if e.after(end) {
                    end = e;
                    grew = true;
                }
                false
            });
            if !grew {
                return end;
            }
        }
    }

    /// The test server's FIN.
    fn on_peer_fin(&mut self) {
        let next = match self.state {
            State::Established => State::CloseWait,
            State::FinWait1 => State::Closing,
            State::FinWait2 => State::TimeWait,
            // A retransmission of the FIN.
            other => other,
        };
        self.set_state(next);
    }

    /// Our FIN went out (for the first time).
    fn on_fin_sent(&mut self) {
        let next = match self.state {
            State::Established => State::FinWait1,
            State::CloseWait => State::LastAck,
            other => other,
        };
        self.set_state(next);
    }

    fn acceptable(&self, seg: &TcpSegment<'_>) -> bool {
        if seg.flags.syn() && seg.flags.ack() && seg.ack == self.isn + 1 {
            // A SYN-ACK for our SYN, whatever its sequence number (see `on_synchronized`).
            return true;
        }
        if self.state == State::SynSent {
            // A SYN-ACK is checked by `on_syn_ack`; a RST must acknowledge our SYN.
            return !seg.flags.rst() || (seg.flags.ack() && seg.ack == self.isn + 1);
        }
        let window = i64::from(OUR_WINDOW) << self.our_wscale;
        let d = i64::from(seg.seq.diff(self.rcv_nxt));
        let in_window = (-window..=window).contains(&d);
        let fresh = self.ts_recent.is_none_or(|recent| {
            seg.options
                .timestamps
                .is_none_or(|(val, _)| val.wrapping_sub(recent).cast_signed() >= 0)
        });
        in_window && fresh
    }

    fn on_syn_ack(&mut self, now: Time, seg: &TcpSegment<'_>) {
        if seg.flags.ack() && seg.ack != self.isn + 1 {
            // An ACK for another connection on this 4-tuple (the test server still holds it, e.g.
            // in TIME-WAIT): reset that one, as a TCP in SYN-SENT does (RFC 793 p. 66), and send
            // the SYN again right away.
            if self.challenge_rst.is_none() {
                self.challenge_rst = Some(seg.ack);
                self.due.syn = true;
                self.syn_retransmitted = true;
            }
            return;
        }
        if !(seg.flags.syn() && seg.flags.ack()) {
            return;
        }
        let irs = seg.seq;
        self.irs = irs;
        self.rcv_nxt = irs + 1;
        self.snd_una = self.isn + 1;
        self.snd_nxt = self.snd_una;
        self.snd_max = self.snd_una;
        let scaled = self.syn_opts.window_scale.is_some() && seg.options.window_scale.is_some();
        self.peer_wscale = if scaled {
            seg.options.window_scale.unwrap_or(0)
        } else {
            0
        };
        self.snd_wnd = u32::from(seg.window);
        self.peer_mss = seg.options.mss.unwrap_or(536).max(64);
        self.ts_recent = seg
            .options
            .timestamps
            .filter(|_| self.syn_opts.timestamps.is_some())
            .map(|(val, _)| val);
        if let (Some(sent), false) = (self.syn_sent_at, self.syn_retransmitted) {
            let rtt = now.saturating_since(sent);
            self.srtt = Some(rtt);
            self.rto = (rtt * 3).clamp(self.rto_bounds.0, self.rto_bounds.1);
        }
        // The handshake's ACK goes once the client has acknowledged online's SYN-ACK (at once if
        // it has already; see `ack_owed`).
        self.set_state(State::Established);
        self.due.ack = true;
        self.timers.stop(Timer::Handshake);
        self.timers.stop(Timer::Retransmit);
        self.retries = 0;
        self.resp_mark = self.rcv_nxt;
    }

    /// A segment in a synchronized state.
    fn on_synchronized(
        &mut self,
        now: Time,
        cfg: &Config,
        stats: &mut Stats,
        seg: &TcpSegment<'_>,
    ) {
        if seg.flags.syn() {
            // A retransmitted SYN-ACK: our handshake ACK was lost. One with another initial
            // sequence number means the server answered our SYN again from scratch (its first
            // answer expired, or it fell back to SYN cookies): that one is the connection now,
            // as long as nothing has come from the server yet.
            if seg.flags.ack()
                && seg.ack == self.isn + 1
                && seg.seq + 1 != self.rcv_nxt
                && self.rcv_nxt == self.resp_mark
                && self.resp_mark == self.irs + 1
                && self.out_of_order.is_empty()
            {
                self.irs = seg.seq;
                self.rcv_nxt = seg.seq + 1;
                self.resp_mark = self.rcv_nxt;
                if let (Some(recent), Some((val, _))) =
                    (&mut self.ts_recent, seg.options.timestamps)
                {
                    *recent = val;
                }
            }
            self.due.ack = true;
            return;
        }
        let old_wnd = self.snd_wnd;
        self.snd_wnd = u32::from(seg.window) << self.peer_wscale;
        if seg.flags.ack() {
            let ack = seg.ack;
            if ack.after(self.snd_una) && !ack.after(self.snd_max) {
                // Payload bytes delivered: what the ack moved over, less our FIN.
                let fin_acked = self
                    .stream
                    .fin()
                    .is_some_and(|f| !self.snd_una.after(f) && ack.after(f));
                let moved = u64::try_from(ack.diff(self.snd_una)).unwrap_or(0);
                let bytes = moved - u64::from(fin_acked).min(moved);
                self.delivered += bytes;
                stats.payload_bytes_delivered += bytes;
                self.snd_una = ack;
                // The request going out is kept (up to RESEND_KEEP bytes) until its answer
                // begins: a test server that closes before it answers goes on without it.
                let first = self.unanswered_from.unwrap_or(self.request_start);
                let keep = if ack.diff(first) <= RESEND_KEEP {
                    first
                } else {
                    ack
                };
                self.stream.release(keep);
                self.dup_acks = 0;
                self.retries = 0;
                if self.snd_nxt.before(self.snd_una) {
                    self.snd_nxt = self.snd_una;
                }
                if self.snd_una.before(self.snd_max) {
                    self.timers.set(Timer::Retransmit, now + self.rto);
                } else {
                    self.timers.stop(Timer::Retransmit);
                }
            } else if ack == self.snd_una
                && seg.seq_len() == 0
                && self.snd_max.after(self.snd_una)
                && old_wnd == self.snd_wnd
            {
                self.dup_acks = self.dup_acks.saturating_add(1);
                if self.dup_acks == 3 {
                    self.due.rexmit_one = true;
                }
            }
        }
        // With in-order acknowledgements: a segment beyond a hole (RFC 7323: its timestamp is
        // not taken as the latest, or the older one of the segment that fills the hole would
        // be refused as stale).
        let beyond_hole = cfg.in_order_acks && seg.seq.after(self.rcv_nxt);
        let len = seg.seq_len();
        if len > 0 {
            self.due.ack = true;
            let end = self.received_up_to(cfg, seg, beyond_hole);
            let grew = end.after(self.rcv_nxt);
            if grew {
                self.rcv_nxt = end;
                if seg.payload_len > 0 {
                    self.rebuilds_in_a_row = 0;
                    if let Some(sent) = self.awaiting_answer_since.take() {
                        stats.response_time.observe(now.saturating_since(sent));
                    }
                }
                if seg.payload_len > 0 || seg.flags.fin() {
                    self.pushed_at = (seg.flags.psh() || seg.flags.fin()).then_some(now);
                }
            }
            let answer_grows = (grew && (seg.payload_len > 0 || seg.flags.fin()))
                || (beyond_hole && seg.payload_len > 0);
            if answer_grows && self.timers.get(Timer::ResponseWait).is_some() {
                // The answer grows (in order or beyond a hole): the held request, or the
                // client's close that would cut the answer short, waits on from now.
                self.timers
                    .set(Timer::ResponseWait, now + cfg.response_wait);
            }
            if seg.flags.fin() && !beyond_hole {
                self.on_peer_fin();
            }
        }
        if !beyond_hole
            && let (Some(recent), Some((val, _))) = (&mut self.ts_recent, seg.options.timestamps)
        {
            *recent = val;
        }
    }

    /// Handles the timers that have expired at `now`, in `Timer` order: the first that ends
    /// the session names its outcome.
    pub fn on_timeout(&mut self, now: Time, cfg: &Config, stats: &mut Stats) {
        let mut pace = false;
        for timer in Timer::VALUES {
            if !self.timers.is_expired(timer, now) {
                continue;
            }
            let outcome = match timer {
                Timer::Handshake if self.in_restart_window(now, cfg) => {
                    // Unanswered: the test server may be down for a restart. Again.
                    self.timers
                        .set(Timer::Handshake, now + cfg.handshake_timeout);
                    self.due.syn = true;
                    self.syn_retransmitted = true;
                    stats.syn_retries += 1;
                    continue;
                }
                // A client that never completed its handshake with online (a flood's) had nothing
                // more to replay: its SYN went, and the RST that ends it cleans the test server.
                Timer::Handshake if !self.client_acked => Outcome::Completed,
                Timer::Handshake => Outcome::Lost(LossReason::HandshakeTimeout),
                Timer::Restart => {
                    self.timers.stop(Timer::Restart);
                    self.timers
                        .set(Timer::Handshake, now + cfg.handshake_timeout);
                    self.due.syn = true;
                    self.syn_retransmitted = true;
                    continue;
                }
                Timer::CaptureGap => Outcome::Lost(LossReason::CaptureGap),
                Timer::Idle => {
                    // `-k` for a session with nothing outstanding, `-t` for one still waiting.
                    let (limit, outcome) = if self.all_delivered() {
                        (cfg.keepalive(), Outcome::Completed)
                    } else {
                        (cfg.idle_timeout, Outcome::Lost(LossReason::IdleTimeout))
                    };
                    let end = self.heard_at + limit;
                    if end > now {
                        self.timers.set(Timer::Idle, end);
                        continue;
                    }
                    outcome
                }
                // Our FIN is acknowledged and the test server keeps its side open: close it.
                // Our FIN is acknowledged, the test server answered nothing yet: it may be
                // stopping (its RST makes the requests go again); wait within the restart window.
                Timer::Close
                    if self.resend_from().is_some() && self.in_restart_window(now, cfg) =>
                {
                    self.timers.set(Timer::Close, now + cfg.response_wait);
                    continue;
                }
                // With in-order acknowledgements: the test server's FIN has not come (lost with
                // the answer's last bytes, or held behind a hole: out-of-order bytes are only
                // ever kept while it has not): what it sends again is waited for, up to
                // `HOLE_WAIT` after the last packet heard.
                Timer::Close
                    if cfg.in_order_acks
                        && !self.state.peer_closed()
                        && now < self.heard_at + HOLE_WAIT =>
                {
                    self.timers.set(Timer::Close, now + cfg.response_wait);
                    continue;
                }
                Timer::Close => Outcome::Completed,
                Timer::Retransmit => {
                    self.timers.stop(Timer::Retransmit);
                    self.on_rto(cfg);
                    continue;
                }
                Timer::Settle | Timer::ResponseWait => {
                    pace = true;
                    continue;
                }
            };
            self.finish(outcome, true);
            return;
        }
        if pace && self.outcome.is_none() {
            self.pass_boundaries(now, cfg, stats);
        }
    }

    fn on_rto(&mut self, cfg: &Config) {
        self.rto = (self.rto * 2).clamp(cfg.rto_min, cfg.rto_max);
        match self.state {
            State::SynSent => {
                self.due.syn = true;
                self.syn_retransmitted = true;
            }
            _ if self.snd_una.before(self.snd_max) => {
                self.retries += 1;
                if self.retries > cfg.max_retransmits {
                    self.finish(Outcome::Lost(LossReason::RetransmitLimit), true);
                    return;
                }
                // Go back to the first unacknowledged byte.
                self.snd_nxt = self.snd_una;
                self.dup_acks = 0;
            }
            _ => self.due.probe = true,
        }
    }

    /// Whether a refused or unanswered SYN may go again. Until the client has completed its
    /// handshake with online the window is the handshake timeout at most (the retry waits for
    /// the client, see `syn_owed`): a SYN whose client never answers (a flood's) ends then.
    fn in_restart_window(&self, now: Time, cfg: &Config) -> bool {
        let window = if self.client_acked {
            cfg.restart_window
        } else {
            cfg.restart_window.min(cfg.handshake_timeout)
        };
        now < self.window_from + window
    }

    /// The test server reset the connection before everything was delivered: a new connection
    /// takes over from the request going out if the test server did not answer any of it (it
    /// never saw it, or closed before it acted: it goes again), else from the next request (the
    /// test server acted on the one the reset cut: it is not sent twice), or from the end of what
    /// was captured when no request follows yet. A client that has closed has nothing more to
    /// say: the session is lost.
    fn rebuild_after_reset(&mut self, now: Time, cfg: &Config, stats: &mut Stats) {
        let next = self
            .stream
            .next_boundary()
            .map_or_else(|| self.stream.end(), |b| b.seq);
        let point = self.resume_point(next);
        if self.stream.fin().is_some_and(|f| !f.after(point)) || self.reset_after_delivery {
            self.finish(Outcome::Lost(LossReason::ResetByTarget), false);
            return;
        }
        self.rebuild(now, cfg, stats, point, false);
    }

    /// Where a new connection takes over from the one the test server closed or reset: the
    /// request going out, if the test server neither acknowledged nor answered any of it (its
    /// FIN is no answer) and its bytes are still held; else `next`.
    fn resume_point(&self, next: Seq) -> Seq {
        match self.resend_from() {
            Some(point) if point.before(next) => point,
            _ => next,
        }
    }

    /// Where the requests the test server has not answered begin, if there are any and their
    /// bytes are still held: the oldest let go unanswered, or the one going out if the test
    /// server neither acknowledged nor answered any of it (its FIN is no answer).
    fn resend_from(&self) -> Option<Seq> {
        let answer = self.rcv_nxt.diff(self.resp_mark) - i32::from(self.state.peer_closed());
        let current = (self.snd_una == self.request_start || answer <= 0)
            && self.request_start.before(self.stream.end());
        let from = self
            .unanswered_from
            .or_else(|| current.then_some(self.request_start))?;
        (!self.stream.start().after(from)).then_some(from)
    }

    /// Starts a new connection to the test server whose first byte is the client's `point` (its
    /// SYN's sequence number is `point - 1`), on the same address and port; `rst_old` resets the
    /// old connection first (the test server closed it with a FIN and waits in FIN-WAIT-2). The
    /// captured stream, the registration and the session's timers but the connection's carry on.
    pub(super) fn rebuild(
        &mut self,
        now: Time,
        cfg: &Config,
        stats: &mut Stats,
        point: Seq,
        rst_old: bool,
    ) {
        if self.rebuilds >= MAX_REBUILDS {
            self.finish(Outcome::Lost(LossReason::ResetByTarget), rst_old);
            return;
        }
        log::debug!(
            "{} > {}: the test server closed the connection mid-session; rebuilding from {}",
            self.src,
            self.dst,
            point.raw()
        );
        self.rebuilds += 1;
        stats.rebuilds += 1;
        self.peer_reset = false;
        self.challenge_rst = rst_old.then_some(self.snd_nxt);
        self.stream.restart_at(point);
        self.isn = point - 1;
        self.request_start = point;
        self.unanswered_from = None;
        self.ahead.clear();
        self.answered_here = false;
        self.snd_una = self.isn;
        self.snd_nxt = self.isn;
        self.snd_max = self.isn;
        self.snd_wnd = 0;
        self.peer_wscale = 0;
        self.our_wscale = 0;
        self.peer_mss = 536;
        self.ts_recent = None;
        self.irs = Seq::new(0);
        self.rcv_nxt = Seq::new(0);
        self.out_of_order.clear();
        self.dup_acks = 0;
        self.rto = cfg.rto_min.max(Duration::from_secs(1));
        self.retries = 0;
        self.syn_sent_at = None;
        self.syn_retransmitted = false;
        self.resp_mark = Seq::new(0);
        self.pushed_at = None;
        for t in [
            Timer::Close,
            Timer::Retransmit,
            Timer::Settle,
            Timer::ResponseWait,
            Timer::Restart,
        ] {
            self.timers.stop(t);
        }
        // The first rebuild connects at once; one after another without an answer between them
        // (a server still stopping accepts and resets) wait 100 ms, 200 ms, ... 2 s.
        let again = self.rebuilds_in_a_row;
        self.rebuilds_in_a_row = again.saturating_add(1);
        self.due = Pending {
            syn: again == 0,
            ..Pending::default()
        };
        if again == 0 {
            self.timers
                .set(Timer::Handshake, now + cfg.handshake_timeout);
        } else {
            let wait = (FIRST_RETRY * (1 << (again - 1).min(5))).min(LAST_RETRY);
            self.timers.set(Timer::Restart, now + wait);
        }
        self.window_from = now;
        self.retry_wait = FIRST_RETRY;
        self.set_state(State::SynSent);
    }

    /// How long a response must stay quiet after a PSH to count as over.
    fn settle(&self) -> Duration {
        self.srtt
            .map_or(MIN_SETTLE, |r| (r * 2).max(MIN_SETTLE))
            .min(Duration::from_millis(50))
    }

    /// Passes the request boundaries whose previous response is over (see the README's pacing
    /// section), counting what released each, and runs the [`Timer::Settle`] timer while a
    /// request is held.
    fn pass_boundaries(&mut self, now: Time, cfg: &Config, stats: &mut Stats) {
        // The settle rule releases requests, never a close: only a held request runs the timer.
        let held = self.release_boundaries(now, cfg, stats) == Held::Request;
        match self.pushed_at {
            Some(at) if held && self.rcv_nxt.after(self.resp_mark) => {
                self.timers.set(Timer::Settle, at + self.settle());
            }
            _ => self.timers.stop(Timer::Settle),
        }
    }

    /// Passes what boundaries it can; returns what is held at the next one, if anything (what
    /// comes before it is out, the answer to it is not over).
    fn release_boundaries(&mut self, now: Time, cfg: &Config, stats: &mut Stats) -> Held {
        while let Some(b) = self.stream.next_boundary() {
            if cfg.no_wait {
                self.stream.pass_boundary();
                continue;
            }
            if !self.state.is_synchronized() || self.snd_nxt.before(b.seq) {
                return Held::Nothing;
            }
            let got = u32::try_from(self.rcv_nxt.diff(self.resp_mark)).unwrap_or(0);
            if !self.snd_una.before(b.seq) && self.timers.get(Timer::ResponseWait).is_none() {
                // The request before is acknowledged: its answer gets the response wait.
                self.timers
                    .set(Timer::ResponseWait, now + cfg.response_wait);
            }
            // The client's close (its FIN, or the RST that ends a replay) waits for the whole
            // answer production had sent before it: a server that stops its work when the client
            // closes (HTTP/2 streams still unanswered) must not see it earlier.
            let closing = self.stream.fin() == Some(b.seq)
                || (self.reset_after_delivery && b.seq == self.stream.end());
            if !closing && self.state.peer_closed() && !self.answered_before_close(b, got) {
                // The test server closed this connection (keep-alive limit, idle close, a
                // restart) and the client has more to say: a new connection takes it from here
                // (from the first request it did not answer: one sent ahead goes again).
                let point = self.resume_point(b.seq);
                self.rebuild(now, cfg, stats, point, !self.peer_reset);
                return Held::Nothing;
            }
            if closing
                && self.state.peer_closed()
                && !self.peer_reset
                && got < b.expected
                && let Some(point) = self.resend_from()
            {
                // The test server closed without answering the request going out (one sent
                // ahead into a connection it was closing, or a keep-alive close racing it): the
                // request goes again on a new connection, the client's close after it.
                self.rebuild(now, cfg, stats, point, true);
                return Held::Nothing;
            }
            if closing && self.peer_reset {
                // The client closes a connection the test server has reset already.
                self.finish(Outcome::Completed, false);
                return Held::Nothing;
            }
            if got >= b.expected {
                stats.paced_by_bytes += 1;
            } else if closing && self.state.peer_closed() {
                // The test server closed first: nothing more will come.
                stats.paced_by_bytes += 1;
            } else if !closing
                && got > 0
                && self.pushed_at.is_some_and(|at| {
                    got >= b.expected - b.expected / 4 || now >= at + self.settle()
                })
            {
                // The answer ended with a push: at once if it is about as long as online's (the
                // same answer from another server seldom matches to the byte), else once quiet.
                stats.paced_by_burst_end += 1;
            } else if closing
                && cfg.in_order_acks
                && self.timers.is_expired(Timer::ResponseWait, now)
                && now < self.heard_at + HOLE_WAIT
            {
                // With in-order acknowledgements the client's close waits for the rest of the
                // answer (bytes the test server sends again) until the server is quiet for
                // `HOLE_WAIT`: a server that sees the close may cut its answer short.
                self.timers
                    .set(Timer::ResponseWait, now + cfg.response_wait);
                return Held::Close;
            } else if self.timers.is_expired(Timer::ResponseWait, now) {
                stats.paced_by_timeout += 1;
                if closing {
                    stats.closed_short += 1;
                }
            } else if closing {
                return Held::Close;
            } else {
                return Held::Request;
            }
            self.pass(now, b);
        }
        Held::Nothing
    }

    /// With the test server's side closed: whether the answer to the request before `b` came in
    /// full (`got` bytes, its FIN among them) while the request after `b` went out ahead of it.
    /// That boundary passes (the answer is over); a rebuild starts from the next one.
    fn answered_before_close(&self, b: Boundary, got: u32) -> bool {
        let answer = got.saturating_sub(1);
        !self.ahead.is_empty() && answer > 0 && answer >= b.expected - b.expected / 4
    }

    /// Passes the next boundary `b`: the answer to the request before it is over. The answer's
    /// end is where the test server's bytes are now, but when the request after `b` went out
    /// ahead of it, its answer may have come too: the bytes beyond online's answer are counted
    /// towards it then (never those that came before it went out).
    fn pass(&mut self, now: Time, b: Boundary) {
        self.stream.pass_boundary();
        let sent_ahead_at = self.ahead.pop_front();
        let mark = sent_ahead_at.map_or(self.rcv_nxt, |lo| {
            let lo = lo.max(self.resp_mark);
            (self.resp_mark + b.expected).max(lo).min(self.rcv_nxt)
        });
        let fin = u32::from(self.state.peer_closed() && mark == self.rcv_nxt);
        let answer = u32::try_from(mark.diff(self.resp_mark))
            .unwrap_or(0)
            .saturating_sub(fin);
        if answer == 0 {
            self.unanswered_from.get_or_insert(self.request_start);
        } else {
            self.unanswered_from = None;
            self.answered_here = true;
        }
        if sent_ahead_at.is_some() {
            // The request after `b` went out ahead: its response time runs from the end of the
            // answer before it (now), unless its own answer has begun already (not timed then).
            self.awaiting_answer_since = (mark == self.rcv_nxt).then_some(now);
        }
        self.request_start = b.seq;
        self.boundaries_passed += 1;
        self.resp_mark = mark;
        self.timers.stop(Timer::ResponseWait);
    }

    /// Whether requests may go out ahead of the answer before them now (`Config::send_ahead`):
    /// on an open connection whose test server has answered a request already.
    fn may_send_ahead(&self, cfg: &Config) -> bool {
        cfg.send_ahead > 0
            && !cfg.no_wait
            && self.state == State::Established
            && !self.peer_reset
            && self.answered_here
    }

    /// The earliest time `on_timeout` has something to do: the first timer to expire (none once
    /// the session has ended).
    pub fn deadline(&self) -> Option<Time> {
        self.timers.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        mapping::Mapping,
        wire::{Payload, build::Packet, parse},
    };

    const CLIENT: &str = "198.51.100.10:5000";
    const ONLINE: &str = "198.51.100.20:80";
    const TARGET: &str = "198.51.100.30:80";
    const ISN: u32 = 1000;
    const IRS: u32 = 7000;
    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;
    const FIN: u8 = TcpFlags::FIN;

    fn t(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    /// One session and what it needs, driven by hand.
    struct Bench {
        s: Session,
        cfg: Config,
        stats: Stats,
    }

    impl Bench {
        fn new() -> Self {
            let cfg = Config::new(vec![Mapping::parse("80-198.51.100.30:80").unwrap()]);
            let key = CaptureKey {
                client: CLIENT.parse().unwrap(),
                online: ONLINE.parse().unwrap(),
            };
            let opts = TcpOptions {
                mss: Some(1460),
                ..TcpOptions::default()
            };
            let s = Session::new(
                t(0),
                key,
                key.client,
                TARGET.parse().unwrap(),
                Seq::new(ISN),
                opts,
                &cfg,
            );
            Self {
                s,
                cfg,
                stats: Stats::default(),
            }
        }

        fn packet(src: &str, dst: &str, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
            Packet::tcp(src, dst).flags(flags).seq(seq).ack(ack).ip()
        }

        /// A captured client segment without payload.
        fn capture(&mut self, now: Time, flags: u8, seq: u32, ack: u32) {
            let bytes = Self::packet(CLIENT, ONLINE, flags, seq, ack);
            let p = parse(&bytes, Payload::Whole).unwrap();
            self.s.on_captured(now, &self.cfg, &p.tcp);
            self.s.progress(now, &self.cfg, &mut self.stats);
        }

        /// A reply of the test server without payload.
        fn reply(&mut self, now: Time, flags: u8, seq: u32, ack: u32) {
            let bytes = Self::packet(TARGET, CLIENT, flags, seq, ack);
            let p = parse(&bytes, Payload::Whole).unwrap();
            assert!(
                self.s.on_response(now, &self.cfg, &mut self.stats, &p.tcp),
                "acceptable"
            );
            self.s.progress(now, &self.cfg, &mut self.stats);
        }

        /// Sends what is due; returns how many segments.
        fn send(&mut self, now: Time) -> usize {
            let mut buf = [0; 200];
            let mut n = 0;
            while self
                .s
                .next_segment(now, &self.cfg, &mut self.stats, &mut buf)
                .is_some()
            {
                n += 1;
            }
            n
        }

        /// SYN out and answered, the client's FIN captured (no data).
        fn established_with_client_fin() -> Self {
            let mut b = Self::new();
            assert_eq!(b.s.state(), State::SynSent);
            assert_eq!(b.send(t(0)), 1);
            b.reply(t(1), SYN | ACK, IRS, ISN + 1);
            assert_eq!(b.s.state(), State::Established);
            b.capture(t(2), FIN | ACK, ISN + 1, 5001);
            b
        }
    }

    #[test]
    fn states_print_their_rfc_793_names() {
        let names: Vec<String> = [
            State::SynSent,
            State::Established,
            State::FinWait1,
            State::FinWait2,
            State::CloseWait,
            State::Closing,
            State::LastAck,
            State::TimeWait,
            State::Closed,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            [
                "SYN-SENT",
                "ESTABLISHED",
                "FIN-WAIT-1",
                "FIN-WAIT-2",
                "CLOSE-WAIT",
                "CLOSING",
                "LAST-ACK",
                "TIME-WAIT",
                "CLOSED"
            ]
        );
    }

    #[test]
    fn the_client_closes_first_fin_wait_1_fin_wait_2_then_closed() {
        let mut b = Bench::established_with_client_fin();
        assert_eq!(b.send(t(2)), 1, "the FIN");
        assert_eq!(b.s.state(), State::FinWait1);
        b.reply(t(3), ACK, IRS + 1, ISN + 2);
        assert_eq!(b.s.state(), State::FinWait2);
        // FIN-WAIT-2 lasts the response wait at most.
        assert_eq!(b.s.deadline(), Some(t(3) + b.cfg.response_wait));
        b.reply(t(4), FIN | ACK, IRS + 1, ISN + 2);
        assert_eq!(b.s.state(), State::Closed, "through TIME-WAIT");
        assert_eq!(b.s.outcome(), Some(Outcome::Completed));
        assert_eq!(b.s.deadline(), None);
    }

    #[test]
    fn crossing_fins_go_through_closing() {
        let mut b = Bench::established_with_client_fin();
        b.send(t(2));
        b.reply(t(3), FIN | ACK, IRS + 1, ISN + 1);
        assert_eq!(b.s.state(), State::Closing);
        b.reply(t(4), ACK, IRS + 2, ISN + 2);
        assert_eq!(b.s.state(), State::Closed);
        assert_eq!(b.s.outcome(), Some(Outcome::Completed));
    }

    #[test]
    fn the_test_server_closes_first_close_wait_last_ack_then_closed() {
        let mut b = Bench::new();
        b.send(t(0));
        b.reply(t(1), SYN | ACK, IRS, ISN + 1);
        b.reply(t(2), FIN | ACK, IRS + 1, ISN + 1);
        assert_eq!(b.s.state(), State::CloseWait);
        b.capture(t(3), FIN | ACK, ISN + 1, 5001);
        assert_eq!(
            b.send(t(3)),
            1,
            "the FIN (with the ACK of the test server's)"
        );
        assert_eq!(b.s.state(), State::LastAck);
        b.reply(t(4), ACK, IRS + 2, ISN + 2);
        assert_eq!(b.s.state(), State::Closed);
        assert_eq!(b.s.outcome(), Some(Outcome::Completed));
    }

    #[test]
    fn keepalive_timeout_ends_idle_sessions_with_nothing_outstanding() {
        for (keepalive, idle_end) in [
            (60_000, t(1) + Duration::from_mins(1)),
            (1_200_000, t(1) + Duration::from_mins(20)),
        ] {
            let mut b = Bench::new();
            b.cfg.keepalive_timeout = Some(Duration::from_millis(keepalive));
            b.send(t(0));
            // The client's handshake ACK, then the test server's SYN-ACK (acknowledged at once).
            b.capture(t(0), ACK, ISN + 1, 5001);
            b.reply(t(1), SYN | ACK, IRS, ISN + 1);
            assert_eq!(b.send(t(1)), 1, "the handshake's ACK");
            // Nothing outstanding: the keep-alive timeout (-k) applies, not -t (600 s).
            b.s.on_timeout(idle_end - Duration::from_millis(1), &b.cfg, &mut b.stats);
            assert_eq!(b.s.outcome(), None);
            let deadline = b.s.deadline().unwrap();
            assert_eq!(deadline, idle_end);
            b.s.on_timeout(deadline, &b.cfg, &mut b.stats);
            assert_eq!(b.s.outcome(), Some(Outcome::Completed));
        }
        // A client FIN the test server has not acknowledged: -t, whatever -k says.
        let mut b = Bench::established_with_client_fin();
        b.cfg.keepalive_timeout = Some(Duration::from_mins(20));
        let end = t(2) + b.cfg.idle_timeout;
        b.s.on_timeout(end - Duration::from_millis(1), &b.cfg, &mut b.stats);
        assert_eq!(b.s.outcome(), None);
        b.s.on_timeout(end, &b.cfg, &mut b.stats);
        assert_eq!(b.s.outcome(), Some(Outcome::Lost(LossReason::IdleTimeout)));
    }

    #[test]
    fn the_deadline_is_the_earliest_running_timer() {
        let mut b = Bench::new();
        // SYN-SENT before the SYN: the handshake timeout (3 s) comes before the idle one.
        assert_eq!(b.s.deadline(), Some(t(3000)));
        b.send(t(0));
        // The SYN's retransmission timeout (1 s).
        assert_eq!(b.s.deadline(), Some(t(1000)));
        b.capture(t(0), ACK, ISN + 1, 5001);
        b.reply(t(1), SYN | ACK, IRS, ISN + 1);
        // ESTABLISHED with nothing in flight: only the idle timeout runs.
        assert_eq!(b.s.deadline(), Some(t(1) + b.cfg.idle_timeout));
        b.s.on_timeout(t(1) + b.cfg.idle_timeout, &b.cfg, &mut b.stats);
        assert_eq!(b.s.outcome(), Some(Outcome::Completed));
        assert_eq!(b.s.state(), State::Closed);
        assert_eq!(b.s.deadline(), None);
    }
}
