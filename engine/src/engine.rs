//! The engine: every replayed session of one worker, their timers and their output.
//!
//! # Call order
//! Feed inputs as they come: [`Engine::handle_captured`] for each captured client packet,
//! [`Engine::handle_response`] for each reply header from intercept, [`Engine::handle_timeout`]
//! when [`Engine::poll_timeout`]'s deadline has passed. After a batch of inputs, drain the outputs:
//! [`Engine::poll_event`] (registrations first: a session's comes before the packets it sends
//! once its client has completed its handshake with online) and [`Engine::poll_transmit`] until
//! it returns `None`. Time is always an
//! argument; the engine never reads a clock and never does I/O, so the same inputs give the same
//! outputs.

use std::{
    cmp::Reverse,
    collections::{BTreeSet, BinaryHeap, HashMap, VecDeque},
    net::SocketAddr,
};

use foldhash::fast::RandomState;

use crate::{
    config::{Config, ConfigError},
    mapping::Mapping,
    select::{TupleSource, ramped, selected},
    session::{CaptureKey, Session},
    stats::{LossReason, Outcome, Stats},
    time::Time,
    wire::{self, Payload, TcpOptions, TcpSegment},
};

/// Something the caller must act on besides packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Tell intercept to route the target's replies to `client` to us: once the captured client
    /// has completed its handshake with online (its SYN may have gone before: intercept holds
    /// replies a second for their registration; a SYN flood's sessions are never registered).
    Register {
        client: SocketAddr,
        target: SocketAddr,
    },
    /// A replayed session ended.
    Closed {
        client: SocketAddr,
        target: SocketAddr,
        outcome: Outcome,
        record: SessionRecord,
    },
}

/// What a per-session record needs besides the replay's 4-tuple and outcome (which
/// [`Event::Closed`] carries): the captured connection, when the session started and ended
/// (the caller's `now` values), and what it replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The client as captured, and the online service it talked to.
    pub captured_client: SocketAddr,
    pub online: SocketAddr,
    pub started: Time,
    pub ended: Time,
    /// Payload bytes the test server acknowledged.
    pub bytes: u64,
    /// Requests whose data went out.
    pub requests: u64,
}

type SessionId = u32;

/// The copies of one captured connection; one without allocating in the common case.
#[derive(Clone, Debug)]
enum Copies {
    One(SessionId),
    Many(Vec<SessionId>),
}

impl Copies {
    fn ids(&self) -> &[SessionId] {
        match self {
            Copies::One(id) => std::slice::from_ref(id),
            Copies::Many(v) => v,
        }
    }

    fn push(&mut self, id: SessionId) {
        match self {
            Copies::One(first) => *self = Copies::Many(vec![*first, id]),
            Copies::Many(v) => v.push(id),
        }
    }

    /// Removes `id`; returns whether none is left.
    fn remove(&mut self, id: SessionId) -> bool {
        match self {
            Copies::One(only) => *only == id,
            Copies::Many(v) => {
                v.retain(|&i| i != id);
                v.is_empty()
            }
        }
    }
}

/// A packet [`Engine::poll_transmit`] wrote: from which replayed client to which target, and
/// its length in the caller's buffer. The caller routes it by `destination` without reading it.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub size: usize,
}

/// The replay engine of one worker.
pub struct Engine {
    cfg: Config,
    tuples: TupleSource,
    sessions: Vec<Option<Box<Session>>>,
    free: Vec<SessionId>,
    by_capture: HashMap<CaptureKey, Copies, RandomState>,
    by_replay: HashMap<(SocketAddr, SocketAddr), SessionId, RandomState>,
    timers: BinaryHeap<Reverse<(Time, SessionId)>>,
    /// Every session with captured bytes not yet sent, by when the oldest of them was captured:
    /// the replay's lag is the first entry's age, without walking the sessions.
    unsent: BTreeSet<(Time, SessionId)>,
    transmit: VecDeque<SessionId>,
    /// Last packets of closed sessions (their RSTs): source, destination, bytes.
    finals: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    events: VecDeque<Event>,
    stats: Stats,
    memory: usize,
    started_at: Option<Time>,
    scratch: Vec<u8>,
    /// Captured connections whose replay ended, until their tombstone expires: their remaining
    /// packets must not start a new (partial) replay. Expiry order is insertion order.
    ended: HashMap<CaptureKey, Time, RandomState>,
    ended_order: VecDeque<(Time, CaptureKey)>,
}

/// How long the packets of an ended connection are ignored (unless a new SYN reuses the port).
const TOMBSTONE: std::time::Duration = std::time::Duration::from_mins(1);

impl Engine {
    pub fn new(cfg: Config) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Self {
            tuples: TupleSource::for_worker(
                cfg.client_addrs.clone(),
                cfg.instance,
                cfg.worker,
                cfg.copies,
            ),
            cfg,
            sessions: Vec::new(),
            free: Vec::new(),
            by_capture: HashMap::default(),
            by_replay: HashMap::default(),
            timers: BinaryHeap::new(),
            unsent: BTreeSet::new(),
            transmit: VecDeque::new(),
            finals: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            memory: 0,
            started_at: None,
            scratch: vec![0; 128],
            ended: HashMap::default(),
            ended_order: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sessions alive now.
    pub fn session_count(&self) -> usize {
        self.by_replay.len()
    }

    /// How far the replay runs behind the capture at `now`: the longest any live session's
    /// oldest captured byte not yet sent has waited (see the README; zero when every captured
    /// byte has gone out). The oldest entry of an index kept as sessions change, so asking is
    /// cheap however many sessions there are (a walk over 200,000 sessions every report tick
    /// took most of a starved worker's time under a SYN flood).
    pub fn replay_lag(&self, now: Time) -> std::time::Duration {
        self.unsent
            .first()
            .map(|&(since, _)| now.saturating_since(since))
            .unwrap_or_default()
    }

    /// Bytes buffered by all sessions.
    pub fn memory(&self) -> usize {
        self.memory
    }

    fn mapping_for(&self, online: SocketAddr) -> Option<Mapping> {
        self.cfg
            .mappings
            .iter()
            .find(|m| {
                m.online_port == online.port() && m.online_ip.is_none_or(|ip| ip == online.ip())
            })
            .copied()
    }

    /// The replayed connection (replayed client, target) of the first copy of the captured
    /// connection `client` -> `online`, while it lives (what `--compare` compares with the
    /// captured one).
    pub fn replay_of(
        &self,
        client: SocketAddr,
        online: SocketAddr,
    ) -> Option<(SocketAddr, SocketAddr)> {
        let copies = self.by_capture.get(&CaptureKey { client, online })?;
        let s = self.session(*copies.ids().first()?)?;
        Some((s.src, s.dst))
    }

    /// When the session [`Self::replay_of`] names started (its [`SessionRecord::started`]): tells
    /// the replay of a new connection on a tuple handed out again from the one before it, whose
    /// [`Event::Closed`] may not have been taken yet.
    pub fn replay_started(&self, client: SocketAddr, online: SocketAddr) -> Option<Time> {
        let copies = self.by_capture.get(&CaptureKey { client, online })?;
        Some(self.session(*copies.ids().first()?)?.started)
    }

    /// Whether `online` (a captured packet's destination) is a service of a mapping (`-x`).
    pub fn is_mapped(&self, online: SocketAddr) -> bool {
        self.mapping_for(online).is_some()
    }

    /// A captured client packet (an IP packet, no link-layer header).
    pub fn handle_captured(&mut self, now: Time, packet: &[u8]) {
        if let Ok(p) = wire::parse(packet, Payload::Whole) {
            self.handle_captured_packet(now, &p);
        } else {
            self.stats.captured += 1;
            self.started_at.get_or_insert(now);
            self.stats.captured_malformed += 1;
        }
    }

    /// [`Self::handle_captured`] for a packet the caller has already parsed (with
    /// [`Payload::Whole`]), so it is parsed once.
    pub fn handle_captured_packet(&mut self, now: Time, p: &wire::Packet<'_>) {
        self.stats.captured += 1;
        self.started_at.get_or_insert(now);
        let online = SocketAddr::new(p.dst, p.tcp.dst_port);
        let Some(mapping) = self.mapping_for(online) else {
            self.stats.captured_unmapped += 1;
            return;
        };
        let key = CaptureKey {
            client: SocketAddr::new(p.src, p.tcp.src_port),
            online,
        };
        let seg = p.tcp;
        if let Some(copies) = self.by_capture.get(&key).cloned() {
            let ids = copies.ids();
            let new_syn = seg.flags.syn()
                && !seg.flags.ack()
                && self.session(ids[0]).is_some_and(|s| s.isn() != seg.seq);
            let mut reused = new_syn;
            if !reused {
                for &id in ids {
                    let mut jump = false;
                    self.with_session(now, id, |s, cfg, stats| {
                        let acc = s.on_captured(now, cfg, &seg);
                        stats.client_retransmitted_bytes += u64::from(acc.duplicate);
                        jump = acc.jump;
                    });
                    reused |= jump;
                }
                if !reused {
                    return;
                }
            }
            // The client's port carries a new connection. The old replay may still be behind
            // (online's server closed first, so the client could reuse the port at once): it
            // keeps its own tuple, delivers what it has and then resets, as after a client
            // reset; the new connection gets a session (and a tuple) of its own.
            self.by_capture.remove(&key);
            for &id in ids {
                self.with_session(now, id, |s, _, _| s.end_after_delivery());
            }
        }
        self.start(now, key, mapping.target, &seg);
    }

    fn start(&mut self, now: Time, key: CaptureKey, target: SocketAddr, seg: &TcpSegment<'_>) {
        let syn = seg.flags.syn() && !seg.flags.ack();
        if !syn && self.ended.contains_key(&key) {
            self.stats.captured_orphan += 1;
            return;
        }
        if syn {
            self.ended.remove(&key);
        }
        if !syn && (self.cfg.only_syn || seg.payload_len == 0 || seg.flags.rst()) {
            self.stats.captured_orphan += 1;
            return;
        }
        let elapsed = now.saturating_since(self.started_at.unwrap_or(now));
        let percentage = if self.cfg.ramp {
            ramped(self.cfg.percentage, elapsed)
        } else {
            self.cfg.percentage
        };
        if self.cfg.ramp && !syn && percentage < self.cfg.percentage {
            // While ramping, only sessions seen from their SYN start, so each is whole.
            self.stats.captured_orphan += 1;
            return;
        }
        if !selected(key.client, percentage) {
            if syn {
                self.stats.sessions_skipped += 1;
            }
            return;
        }
        let (isn, syn_opts) = if syn {
            let o = seg.options;
            let opts = TcpOptions {
                mss: Some(o.mss.unwrap_or(self.cfg.mss)),
                window_scale: o.window_scale,
                sack_permitted: o.sack_permitted,
                timestamps: o.timestamps.map(|_| (0, 0)),
            };
            (seg.seq, opts)
        } else {
            let opts = TcpOptions {
                mss: Some(self.cfg.mss),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((0, 0)),
            };
            (seg.seq - 1, opts)
        };
        for copy in 0..self.cfg.copies {
            let by_replay = &self.by_replay;
            let Some(src) = self
                .tuples
                .candidates(key.client, copy, target)
                .find(|c| !by_replay.contains_key(&(*c, target)))
            else {
                self.stats.lost.add(LossReason::NoFreeTuple);
                continue;
            };
            let session = Box::new(Session::new(
                now, key, src, target, isn, syn_opts, &self.cfg,
            ));
            let id = if let Some(id) = self.free.pop() {
                self.sessions[id as usize] = Some(session);
                id
            } else {
                self.sessions.push(Some(session));
                SessionId::try_from(self.sessions.len() - 1).expect("fewer than 2^32 sessions")
            };
            self.by_replay.insert((src, target), id);
            self.by_capture
                .entry(key)
                .and_modify(|c| c.push(id))
                .or_insert(Copies::One(id));
            // Registered (`Event::Register`) once its client has completed its handshake with
            // online (see `after`).
            self.stats.sessions_started += 1;
            if !syn {
                self.stats.sessions_faked_syn += 1;
            }
            self.with_session(now, id, |s, cfg, _| {
                if !syn {
                    s.on_captured(now, cfg, seg);
                }
            });
        }
    }

    /// A reply header from intercept: the test server's IP and TCP headers (options included,
    /// payload left out; its length is taken from the IP header).
    pub fn handle_response(&mut self, now: Time, headers: &[u8]) {
        self.stats.responses += 1;
        let Ok(p) = wire::parse(headers, Payload::HeadersOnly) else {
            self.stats.responses_malformed += 1;
            return;
        };
        let key = (
            SocketAddr::new(p.dst, p.tcp.dst_port),
            SocketAddr::new(p.src, p.tcp.src_port),
        );
        let Some(&id) = self.by_replay.get(&key) else {
            self.stats.responses_unknown += 1;
            return;
        };
        let seg = p.tcp;
        self.with_session(now, id, |s, cfg, stats| {
            if !s.on_response(now, cfg, stats, &seg) {
                stats.responses_stale += 1;
            }
        });
    }

    /// Runs the timers whose deadline is `now` or earlier.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(&(at, key)) = self.ended_order.front() {
            if at + TOMBSTONE > now {
                break;
            }
            self.ended_order.pop_front();
            if self.ended.get(&key) == Some(&at) {
                self.ended.remove(&key);
            }
        }
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let due = self.session(id).is_some_and(|s| s.timer_at == Some(at));
            if due {
                self.with_session(now, id, |s, cfg, stats| {
                    s.timer_at = None;
                    s.on_timeout(now, cfg, stats);
                });
            }
        }
    }

    /// The next time `handle_timeout` has work, if any.
    pub fn poll_timeout(&mut self) -> Option<Time> {
        let tombstone = self.ended_order.front().map(|(at, _)| *at + TOMBSTONE);
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if self.session(id).is_some_and(|s| s.timer_at == Some(at)) {
                return Some(tombstone.map_or(at, |t| t.min(at)));
            }
            self.timers.pop();
        }
        tombstone
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Writes the next packet for the test server (an IP packet) into `buf`: where it goes and
    /// how long it is. `buf` must hold the configured MTU: a shorter one gets `None` and takes
    /// nothing (no packet is ever cut, and no call loops on a packet that cannot fit).
    #[must_use]
    pub fn poll_transmit(&mut self, now: Time, buf: &mut [u8]) -> Option<Transmit> {
        if buf.len() < usize::from(self.cfg.mtu) {
            return None;
        }
        if let Some((source, destination, p)) = self.finals.pop_front() {
            // A final segment is a bare RST, far below any MTU.
            buf[..p.len()].copy_from_slice(&p);
            self.stats.packets_sent += 1;
            return Some(Transmit {
                source,
                destination,
                size: p.len(),
            });
        }
        while let Some(id) = self.transmit.pop_front() {
            let Some(Some(s)) = self.sessions.get_mut(id as usize) else {
                continue;
            };
            s.queued = false;
            let Some(w) = s.next_segment(now, &self.cfg, &mut self.stats, buf) else {
                self.after(now, id);
                continue;
            };
            self.stats.packets_sent += 1;
            self.stats.payload_bytes_sent += u64::from(w.payload);
            self.stats.retransmits += u64::from(w.retransmit);
            let (source, destination) = (s.src, s.dst);
            self.after(now, id);
            return Some(Transmit {
                source,
                destination,
                size: w.len,
            });
        }
        None
    }

    fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(id as usize).and_then(|s| s.as_deref())
    }

    /// Runs `f` on session `id`, then accounts its memory, enforces the limits, and queues its
    /// output and timer (or closes it).
    fn with_session(
        &mut self,
        now: Time,
        id: SessionId,
        f: impl FnOnce(&mut Session, &Config, &mut Stats),
    ) {
        let Some(Some(s)) = self.sessions.get_mut(id as usize) else {
            return;
        };
        let before = s.buffered();
        f(s, &self.cfg, &mut self.stats);
        let after = s.buffered();
        self.memory = self.memory + after - before.min(self.memory + after);
        if after > self.cfg.session_buffer_limit {
            s.finish(Outcome::Lost(LossReason::BufferLimit), true);
        } else if self.memory > self.cfg.memory_limit && after > before {
            s.finish(Outcome::Lost(LossReason::MemoryCap), true);
        }
        self.after(now, id);
    }

    fn after(&mut self, now: Time, id: SessionId) {
        let Some(Some(s)) = self.sessions.get_mut(id as usize) else {
            return;
        };
        s.progress(now, &self.cfg, &mut self.stats);
        let since = s.unsent_since();
        if s.lag_at != since {
            if let Some(old) = s.lag_at {
                self.unsent.remove(&(old, id));
            }
            if let Some(new) = since {
                self.unsent.insert((new, id));
            }
            s.lag_at = since;
        }
        if s.outcome().is_some() {
            self.close(now, id);
            return;
        }
        if !s.registered && s.client_acked() {
            // The test server's replies are asked for once the client has completed its
            // handshake with online: a SYN flood's sessions (whose clients never do) cost
            // intercept no route and the control channel nothing. Their SYN went at once; its
            // SYN-ACK, and a real client's that comes before its ACK is captured, waits at
            // intercept (parked) for the registration.
            s.registered = true;
            self.events.push_back(Event::Register {
                client: s.src,
                target: s.dst,
            });
        }
        if !s.queued && s.wants_to_send(&self.cfg) {
            s.queued = true;
            self.transmit.push_back(id);
        }
        // One live heap entry per session: a new one only when the deadline moves earlier. An
        // entry that fires before the real deadline (it moved later) finds nothing to do and
        // registers the real one; so busy sessions do not fill the heap.
        if let Some(d) = s.deadline()
            && s.timer_at.is_none_or(|t| d < t)
        {
            s.timer_at = Some(d);
            self.timers.push(Reverse((d, id)));
        }
    }

    fn close(&mut self, now: Time, id: SessionId) {
        let Some(mut s) = self.sessions.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        self.free.push(id);
        if let Some(since) = s.lag_at {
            self.unsent.remove(&(since, id));
        }
        self.memory -= s.buffered().min(self.memory);
        if let Some(n) = s.final_segment(now, &mut self.scratch) {
            self.finals
                .push_back((s.src, s.dst, self.scratch[..n].to_vec()));
        }
        self.by_replay.remove(&(s.src, s.dst));
        if let Some(copies) = self.by_capture.get_mut(&s.key)
            && copies.remove(id)
        {
            self.by_capture.remove(&s.key);
            // A half-open session's client may yet complete its handshake (online's SYN-ACK
            // lost twice): its data then starts a session of its own (faked SYN). A flood's
            // sessions leave no tombstone behind either.
            if s.client_acked() {
                self.ended.insert(s.key, now);
                self.ended_order.push_back((now, s.key));
            }
        }
        let outcome = s.outcome().unwrap_or(Outcome::Completed);
        if !s.client_acked() {
            self.stats.half_open += 1;
        }
        match outcome {
            Outcome::Completed => self.stats.sessions_completed += 1,
            Outcome::Lost(reason) => self.stats.lost.add(reason),
        }
        self.events.push_back(Event::Closed {
            client: s.src,
            target: s.dst,
            outcome,
            record: SessionRecord {
                captured_client: s.key.client,
                online: s.key.online,
                started: s.started,
                ended: now,
                bytes: s.delivered,
                requests: s.requests,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wire::{TcpFlags, build::Packet};

    const ISN: u32 = 1000;
    const IRS: u32 = 7000;

    fn packet(src: &str, dst: &str, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let p = Packet::tcp(src, dst)
            .seq(seq)
            .ack(ack)
            .flags(flags)
            .payload(payload);
        if flags & TcpFlags::SYN != 0 {
            p.mss(1460)
        } else {
            p
        }
        .ip()
    }

    /// The lag as a walk over every session finds it.
    fn walked(e: &Engine, now: Time) -> std::time::Duration {
        e.sessions
            .iter()
            .flatten()
            .filter_map(|s| s.unsent_since())
            .min()
            .map(|t| now.saturating_since(t))
            .unwrap_or_default()
    }

    #[test]
    fn the_lag_index_agrees_with_a_walk_over_the_sessions() {
        let cfg = Config::new(vec![Mapping::parse("80-198.51.100.30:80").unwrap()]);
        let mut e = Engine::new(cfg).unwrap();
        let mut buf = vec![0; 2048];
        let t = Time::from_millis;
        let client = |i: u64| format!("198.51.100.10:{}", 5000 + i);
        let (online, target) = ("198.51.100.20:80", "198.51.100.30:80");
        let check = |e: &Engine, now: Time| assert_eq!(e.replay_lag(now), walked(e, now));
        // Forty sessions, each a SYN and a request captured 10 ms apart: unsent until the test
        // server answers the SYN.
        for i in 0..40 {
            let now = t(10 * i);
            e.handle_captured(now, &packet(&client(i), online, ISN, 0, TcpFlags::SYN, b""));
            let req = packet(
                &client(i),
                online,
                ISN + 1,
                1,
                TcpFlags::ACK,
                b"GET / HTTP/1.1\r\n\r\n",
            );
            e.handle_captured(now, &req);
            while e.poll_transmit(now, &mut buf).is_some() {}
            check(&e, now + Duration::from_millis(3));
        }
        assert_eq!(
            e.replay_lag(t(400)),
            Duration::from_millis(400),
            "the first request waits"
        );
        // The test server answers every third SYN, in reverse order: those requests go out.
        for i in (0..40).rev().filter(|i| i % 3 == 0) {
            let now = t(400 + i);
            let syn_ack = packet(
                target,
                &client(i),
                IRS,
                ISN + 1,
                TcpFlags::SYN | TcpFlags::ACK,
                b"",
            );
            e.handle_response(now, &syn_ack);
            while e.poll_transmit(now, &mut buf).is_some() {}
            check(&e, now);
        }
        assert_eq!(
            e.replay_lag(t(500)),
            Duration::from_millis(490),
            "the second is the oldest"
        );
        // Sessions that end leave the index: every session ends at the handshake timeout.
        for ms in (500..60_000).step_by(500) {
            e.handle_timeout(t(ms));
            while e.poll_transmit(t(ms), &mut buf).is_some() {}
            check(&e, t(ms));
        }
        assert_eq!(e.session_count(), 0);
        assert!(e.unsent.is_empty());
    }
}
