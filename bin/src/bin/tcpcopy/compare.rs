//! `--compare`: every replayed session's responses compared with production's, request by
//! request, by the sans-IO core (crate `tcpcopy-compare`), fed by the worker's loop:
//!
//! - the online side: the captured requests and production's responses (the tc egress program
//!   puts them into the same worker's ring, by the connection's hash; with `--mirror`, the XDP
//!   program takes both from the mirror port to the same worker), with the kernel's
//!   timestamps (`FrameHeader::ts_ns`, or the AF_XDP frame's metadata, brought onto the
//!   engine's clock); replaying a capture
//!   file, its client-to-server packets and its server-to-client ones (production's responses,
//!   recorded with the requests), each at the engine time the replay plays it (the file's
//!   timestamps at `-a`/`-I` speed), production's latencies scaled back by `-a`;
//! - the test side: the requests as replayed (each packet as the engine writes it, at the time it
//!   goes out) and the test server's responses with their payloads from intercept (protocol
//!   version 7, capability 4).
//!
//! One comparison per captured connection, with its first copy (`-n`). Verdicts are counted
//! (the stats line, metrics), their latencies go into two histograms, and a differing request
//! becomes a `differ` line of `--compare-log` (`tcpcopy_compare::log`).

use std::{collections::HashMap, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use crate::sessions::LineLog;
use foldhash::fast::RandomState;
use tcpcopy_compare::{
    Config, Direction, Outcome, Progress, Segment, Session, Stats, Verdict, Which,
    log::{DifferLine, Histogram, SummaryLine},
};
use tcpcopy_engine::{
    Engine, Time,
    wire::{self, Packet, Payload, TcpSegment},
};

/// What every worker's comparison shares.
pub struct Settings {
    pub config: Arc<Config>,
    pub log: Option<Arc<CompareLog>>,
}

/// `--compare-log FILE`: JSON lines, appended whole (each worker writes its lines at once),
/// reopened on SIGHUP.
pub struct CompareLog(LineLog);

impl CompareLog {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        LineLog::open("--compare-log", path).map(Self)
    }

    /// Appends whole lines.
    pub fn write(&self, lines: &[u8]) {
        self.0.write(lines);
    }

    /// A `summary` line of `totals` (`final` at the end).
    pub fn summary(&self, totals: &Totals, is_final: bool) {
        let line = SummaryLine::new(
            wall_us(),
            &totals.stats,
            totals.online.clone(),
            totals.test.clone(),
            is_final,
        );
        if let Ok(mut text) = serde_json::to_vec(&line) {
            text.push(b'\n');
            self.write(&text);
        }
    }

    /// Opens the file by its name again (SIGHUP).
    pub fn reopen(&self) {
        self.0.reopen();
    }
}

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A worker's (or all workers') verdict counters and latency histograms.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub stats: Stats,
    /// Production's response times.
    pub online: Histogram,
    /// The test server's.
    pub test: Histogram,
    /// Replies from intercept without the payload their headers announce (intercept could not
    /// send it): their bytes are missing from the test side.
    pub payloads_missing: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.stats += &o.stats;
        self.online.merge(&o.online);
        self.test.merge(&o.test);
        self.payloads_missing += o.payloads_missing;
    }
}

impl std::fmt::Display for Totals {
    /// `compare same=.. differ=.. not_compared=..` and what the not compared were.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        let by: Vec<String> = tcpcopy_compare::Reason::ALL
            .iter()
            .filter(|r| s.not_compared_for(**r) > 0)
            .map(|r| format!("{}:{}", r.name(), s.not_compared_for(*r)))
            .collect();
        write!(
            f,
            "compare same={} differ={} not_compared={} compare_not_compared_by={} compare_sessions_over_cap={} compare_payloads_missing={}",
            s.same,
            s.differ,
            s.not_compared(),
            if by.is_empty() {
                "-".to_owned()
            } else {
                by.join(",")
            },
            s.sessions_over_cap,
            self.payloads_missing
        )
    }
}

/// A captured connection: (client, online service).
type Online = (SocketAddr, SocketAddr);
/// A replayed connection: (replayed client, target).
type Replayed = (SocketAddr, SocketAddr);

struct Entry {
    session: Session,
    /// The captured client and the online service, for the log.
    client: SocketAddr,
    online: SocketAddr,
    /// When the engine's session started (`SessionRecord::started`): an `Event::Closed` of the
    /// tuple is this comparison's only with this start (the engine hands a tuple out again once
    /// its session closed, maybe before the caller took that session's event).
    started: Time,
}

/// One worker's comparisons.
pub struct Comparer {
    settings: Arc<Settings>,
    sessions: HashMap<Replayed, Entry, RandomState>,
    by_online: HashMap<Online, Replayed, RandomState>,
    pub totals: Totals,
    /// `differ` lines not yet written.
    lines: Vec<u8>,
    /// Engine time minus the kernel's monotonic clock, in microseconds (from the first
    /// timestamped frame).
    offset_us: Option<i128>,
    /// How many times faster than recorded production's times run (a capture file played
    /// with `-a`; none live): its latencies are multiplied by it.
    speed: Option<f64>,
}

impl Comparer {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self {
            settings,
            sessions: HashMap::default(),
            by_online: HashMap::default(),
            totals: Totals::default(),
            lines: Vec::new(),
            offset_us: None,
            speed: None,
        }
    }

    /// Production's packets come `speed` times faster than they were recorded (a capture file
    /// played with `-a`): its latencies are scaled back to the recorded ones.
    #[must_use]
    pub fn playing_at(mut self, speed: f64) -> Self {
        self.speed = Some(speed);
        self
    }

    /// A kernel timestamp on the engine's clock (`now` where there is none).
    fn online_time(&mut self, now: Time, ts_ns: Option<u64>) -> Time {
        let Some(ns) = ts_ns.filter(|n| *n > 0) else {
            return now;
        };
        let k = i128::from(ns / 1000);
        let off = *self
            .offset_us
            .get_or_insert(i128::from(now.as_micros()) - k);
        Time::from_micros(u64::try_from((k + off).max(0)).unwrap_or(0))
    }

    /// A captured packet: a request goes to the engine (and, once its session exists, into the
    /// comparison), a response of a service (from the tc egress program) into the comparison
    /// only.
    pub fn on_captured(&mut self, now: Time, ts_ns: Option<u64>, ip: &[u8], engine: &mut Engine) {
        let Ok(p) = wire::parse(ip, Payload::Whole) else {
            engine.handle_captured(now, ip);
            return;
        };
        let seen = self.online_time(now, ts_ns);
        self.on_captured_packet(now, seen, &p, engine);
    }

    /// [`Self::on_captured`] for a packet already parsed, which production saw at engine time
    /// `seen` (a capture file's, whose server-to-client packets are production's responses, at
    /// the time the replay plays it).
    pub fn on_captured_packet(
        &mut self,
        now: Time,
        seen: Time,
        p: &Packet<'_>,
        engine: &mut Engine,
    ) {
        let (src, dst) = (
            SocketAddr::new(p.src, p.tcp.src_port),
            SocketAddr::new(p.dst, p.tcp.dst_port),
        );
        if !engine.is_mapped(dst) && engine.is_mapped(src) {
            self.online_response(seen, (dst, src), p);
            return;
        }
        engine.handle_captured_packet(now, p);
        let Some(replayed) = engine.replay_of(src, dst) else {
            return;
        };
        let started = engine.replay_started(src, dst).unwrap_or(now);
        if self
            .sessions
            .get(&replayed)
            .is_some_and(|e| e.started != started)
        {
            // The engine handed the tuple to a new connection's replay: the one before it has
            // closed (its event not taken yet), and so is its comparison.
            self.finish(replayed, "its tuple went to a new replay");
        }
        let settings = &self.settings;
        let entry = self.sessions.entry(replayed).or_insert_with(|| Entry {
            session: Session::new(Arc::clone(&settings.config)),
            client: src,
            online: dst,
            started,
        });
        self.by_online.insert((src, dst), replayed);
        entry.session.handle_segment(
            seen,
            Which::Online,
            Direction::Request,
            segment(&p.tcp, p.tcp.payload),
        );
        self.drain(replayed);
    }

    fn online_response(&mut self, t: Time, online: Online, p: &Packet<'_>) {
        let Some(&replayed) = self.by_online.get(&online) else {
            return;
        };
        if let Some(e) = self.sessions.get_mut(&replayed) {
            e.session.handle_segment(
                t,
                Which::Online,
                Direction::Response,
                segment(&p.tcp, p.tcp.payload),
            );
            self.drain(replayed);
        }
    }

    /// A packet the engine wrote for the test server, as it goes out.
    pub fn on_sent(&mut self, now: Time, ip: &[u8]) {
        let Ok(p) = wire::parse(ip, Payload::Whole) else {
            return;
        };
        let replayed = (
            SocketAddr::new(p.src, p.tcp.src_port),
            SocketAddr::new(p.dst, p.tcp.dst_port),
        );
        if let Some(e) = self.sessions.get_mut(&replayed) {
            e.session.handle_segment(
                now,
                Which::Test,
                Direction::Request,
                segment(&p.tcp, p.tcp.payload),
            );
            self.drain(replayed);
        }
    }

    /// A reply from intercept: its headers and, when it came with it, its payload. A reply
    /// whose payload did not come leaves a gap (its bytes are counted missing).
    pub fn on_reply(&mut self, now: Time, headers: &[u8], payload: Option<&[u8]>) {
        let Ok(p) = wire::parse(headers, Payload::HeadersOnly) else {
            return;
        };
        let replayed = (
            SocketAddr::new(p.dst, p.tcp.dst_port),
            SocketAddr::new(p.src, p.tcp.src_port),
        );
        let Some(e) = self.sessions.get_mut(&replayed) else {
            return;
        };
        let mut seg = segment(&p.tcp, payload.unwrap_or_default());
        if log::log_enabled!(log::Level::Debug) {
            let before = e.session.progress(Which::Test);
            if !seg.syn && before.requests == 0 && before.server_bytes == 0 && !before.ended {
                // Before the test server's SYN-ACK: an older connection's late segment on a
                // tuple the engine handed out again (the comparison ignores it).
                log::debug!(
                    "compare: reply to {} -> {} before the replay's first request: seq {} ack {} flags {:#x} {} bytes; test: {before}",
                    replayed.0,
                    replayed.1,
                    p.tcp.seq.raw(),
                    p.tcp.ack.raw(),
                    p.tcp.flags.0,
                    p.tcp.payload_len,
                );
            }
        }
        let len = p.tcp.payload_len;
        if payload.is_none() && len > 0 {
            // Its bytes will not come (the engine acknowledged them): a gap on the test side,
            // its flags (a FIN, often in the answer's last segment) taken all the same.
            self.totals.payloads_missing += 1;
            let at = if seg.syn { seg.seq + 1 } else { seg.seq };
            let n = usize::try_from(len).unwrap_or(usize::MAX);
            e.session
                .handle_lost(now, Which::Test, Direction::Response, at, n);
            seg = Segment {
                seq: at + len,
                syn: false,
                ..seg
            };
        }
        e.session
            .handle_segment(now, Which::Test, Direction::Response, seg);
        self.drain(replayed);
    }

    /// The replayed session that started at `started` ended (`Event::Closed`, `outcome` for the
    /// log): what is open is decided. A close of an earlier replay on the same tuple (whose
    /// comparison already ended when the tuple was handed out again) is ignored.
    pub fn on_closed(
        &mut self,
        replayed: Replayed,
        started: Time,
        outcome: tcpcopy_engine::Outcome,
    ) {
        match self.sessions.get(&replayed) {
            Some(e) if e.started == started => {
                self.finish(replayed, &format!("closed {outcome:?}"));
            }
            Some(_) => log::debug!(
                "compare: close of an earlier replay {} -> {} ignored",
                replayed.0,
                replayed.1
            ),
            None => {}
        }
    }

    /// Ends the comparison of `replayed` (`why`, for the log): what is open is decided.
    fn finish(&mut self, replayed: Replayed, why: &str) {
        let Some(mut e) = self.sessions.remove(&replayed) else {
            return;
        };
        let before = log::log_enabled!(log::Level::Debug).then(|| {
            (
                e.session.progress(Which::Online),
                e.session.progress(Which::Test),
            )
        });
        e.session.finish();
        let lines = self.settings.log.is_some().then_some(&mut self.lines);
        let ctx = Context {
            replayed,
            progress: before,
            why,
        };
        take_verdicts(&mut e, &mut self.totals, self.speed, lines, &ctx);
        if e.session.is_over_cap() {
            self.totals.stats.sessions_over_cap += 1;
        }
        let online = (e.client, e.online);
        if self.by_online.get(&online) == Some(&replayed) {
            self.by_online.remove(&online);
        }
    }

    /// Gives up on gaps whose time has come, and writes the `differ` lines collected.
    pub fn tick(&mut self, now: Time) {
        let due: Vec<Replayed> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            if let Some(e) = self.sessions.get_mut(&k) {
                e.session.handle_timeout(now);
                self.drain(k);
            }
        }
        self.write_lines();
    }

    /// Writes the `differ` lines collected.
    pub fn write_lines(&mut self) {
        if let Some(log) = &self.settings.log
            && !self.lines.is_empty()
        {
            log.write(&self.lines);
        }
        self.lines.clear();
    }

    /// Ends every comparison (the worker stops).
    pub fn finish_all(&mut self) {
        let all: Vec<Replayed> = self.sessions.keys().copied().collect();
        for k in all {
            self.finish(k, "tcpcopy stops");
        }
        self.write_lines();
    }

    fn drain(&mut self, replayed: Replayed) {
        if let Some(e) = self.sessions.get_mut(&replayed) {
            let lines = self.settings.log.is_some().then_some(&mut self.lines);
            let ctx = Context {
                replayed,
                progress: None,
                why: "",
            };
            take_verdicts(e, &mut self.totals, self.speed, lines, &ctx);
        }
    }
}

/// What the debug log says of a comparison's requests not compared: its replayed tuple, both
/// sides' progress (taken before the end, which forgets the streams) and why it ended.
struct Context<'a> {
    replayed: Replayed,
    progress: Option<(Progress, Progress)>,
    why: &'a str,
}

/// Counts the verdicts `e` has given (production's latencies scaled by `speed`, see
/// [`Comparer::playing_at`]), and with a log, writes a `differ` line for each differing request
/// into `lines`; a request not compared is logged at debug level with its reason.
fn take_verdicts(
    e: &mut Entry,
    totals: &mut Totals,
    speed: Option<f64>,
    mut lines: Option<&mut Vec<u8>>,
    ctx: &Context<'_>,
) {
    while let Some(mut v) = e.session.poll_verdict() {
        if let Some(speed) = speed {
            as_recorded(&mut v, speed);
        }
        if let Outcome::NotCompared(reason) = v.outcome
            && log::log_enabled!(log::Level::Debug)
        {
            let (online, test) = ctx.progress.unwrap_or_else(|| {
                (
                    e.session.progress(Which::Online),
                    e.session.progress(Which::Test),
                )
            });
            let ended = if ctx.why.is_empty() {
                String::new()
            } else {
                format!(" ({})", ctx.why)
            };
            log::debug!(
                "compare: request {} of {} -> {} (replayed {} -> {}) not compared: {}{ended}; online: {online}; test: {test}",
                v.index,
                e.client,
                e.online,
                ctx.replayed.0,
                ctx.replayed.1,
                reason.name(),
            );
        }
        count(totals, lines.as_deref_mut(), e.client, e.online, &v);
    }
}

/// Production's latencies of `v` measured on a replay played `speed` times faster than it was
/// recorded, brought back to the recorded ones (to the microsecond times `speed`: the times are
/// the engine's microseconds).
fn as_recorded(v: &mut Verdict, speed: f64) {
    let scale = |d: Duration| Duration::try_from_secs_f64(d.as_secs_f64() * speed).unwrap_or(d);
    v.online_latency = v.online_latency.map(scale);
    if let Outcome::Differ(record) = &mut v.outcome {
        let online = &mut record.online.latency_us;
        *online = online.map(|us| micros(scale(Duration::from_micros(us))));
    }
}

fn count(
    t: &mut Totals,
    lines: Option<&mut Vec<u8>>,
    client: SocketAddr,
    online: SocketAddr,
    v: &Verdict,
) {
    t.stats.count(v);
    if let Some(d) = v.online_latency {
        t.online.record(micros(d));
    }
    if let Some(d) = v.test_latency {
        t.test.record(micros(d));
    }
    if let (Outcome::Differ(record), Some(lines)) = (&v.outcome, lines) {
        let line = DifferLine::new(wall_us(), client.to_string(), online.to_string(), record);
        if serde_json::to_writer(&mut *lines, &line).is_ok() {
            lines.push(b'\n');
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The comparison's view of a TCP segment with `payload`.
fn segment<'a>(tcp: &TcpSegment<'_>, payload: &'a [u8]) -> Segment<'a> {
    Segment {
        seq: tcp.seq,
        syn: tcp.flags.syn(),
        fin: tcp.flags.fin(),
        rst: tcp.flags.rst(),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use tcpcopy_compare::Reason;
    use tcpcopy_engine::{
        Config as EngineConfig, Event, Mapping,
        wire::{TcpFlags, build::Packet},
    };

    use super::*;

    const CLIENT: &str = "198.51.100.10:40000";
    const ONLINE: &str = "198.51.100.20:80";
    const REQUEST: &[u8] = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;
    const DATA: u8 = TcpFlags::PSH | TcpFlags::ACK;

    /// An engine and its comparer, driven as the worker's loop drives them.
    struct Rig {
        engine: Engine,
        c: Comparer,
        now: Time,
    }

    impl Rig {
        fn new() -> Self {
            let mapping = Mapping::parse("80-198.51.100.30:80").unwrap();
            let settings = Settings {
                config: Arc::new(Config::default()),
                log: None,
            };
            Self {
                engine: Engine::new(EngineConfig::new(vec![mapping])).unwrap(),
                c: Comparer::new(Arc::new(settings)),
                now: Time::from_millis(1),
            }
        }

        fn at(&mut self, ms: u64) -> &mut Self {
            self.now = Time::from_millis(ms);
            self
        }

        /// A packet captured on the online host (a client's, or production's answer).
        fn captured(&mut self, src: &str, dst: &str, seq: u32, ack: u32, flags: u8, data: &[u8]) {
            let ip = Packet::tcp(src, dst)
                .seq(seq)
                .ack(ack)
                .flags(flags)
                .payload(data)
                .ip();
            self.c.on_captured(self.now, None, &ip, &mut self.engine);
        }

        /// The engine's events and packets taken, as after a batch of input.
        fn flush(&mut self) {
            while let Some(ev) = self.engine.poll_event() {
                if let Event::Closed {
                    client,
                    target,
                    outcome,
                    record,
                } = ev
                {
                    self.c.on_closed((client, target), record.started, outcome);
                }
            }
            let mut buf = vec![0u8; 9000];
            while let Some(tx) = self.engine.poll_transmit(self.now, &mut buf) {
                self.c.on_sent(self.now, &buf[..tx.size]);
            }
        }

        /// A reply of the test server to the replay of `CLIENT`, with its payload or without.
        fn reply(&mut self, seq: u32, ack: u32, flags: u8, data: &[u8], with_payload: bool) {
            let (replayed, target) = self
                .engine
                .replay_of(CLIENT.parse().unwrap(), ONLINE.parse().unwrap())
                .expect("a replay");
            let ip = Packet::between(target, replayed)
                .seq(seq)
                .ack(ack)
                .flags(flags)
                .payload(data)
                .ip();
            let headers = &ip[..ip.len() - data.len()];
            self.engine.handle_response(self.now, headers);
            self.c
                .on_reply(self.now, headers, with_payload.then_some(data));
            self.flush();
        }

        /// A whole exchange of the connection from `CLIENT` whose ISN is `isn` (its SYN captured
        /// already): production's handshake and answer, the request, and the test server's
        /// handshake and answer (without its payload unless `payload`), with its FIN.
        fn exchange(&mut self, isn: u32, payload: bool) {
            self.captured(ONLINE, CLIENT, 7000, isn + 1, SYN | ACK, &[]);
            self.captured(CLIENT, ONLINE, isn + 1, 7001, DATA, REQUEST);
            self.captured(ONLINE, CLIENT, 7001, isn + 29, DATA, RESPONSE);
            self.flush();
            self.reply(900, isn + 1, SYN | ACK, &[], true);
            let fin = DATA | TcpFlags::FIN;
            self.reply(901, isn + 29, fin, RESPONSE, payload);
        }

        fn stats(&self) -> Stats {
            self.c.totals.stats
        }
    }

    /// The engine hands a tuple out again once its session closed: a client that reuses its
    /// port (its old replay just over, online's server having closed first) gets the same
    /// replayed tuple in the same batch, before the old session's `Event::Closed` is taken. The
    /// new connection's packets are its own comparison's, and that close ends only the old one
    /// (matched by its start): before, they went into the old comparison, which the close then
    /// ended (`incomplete`). And the old replay's final RST, sent on the same tuple after the
    /// new comparison began, is not the new connection's: before, it ended its test side
    /// (`incomplete`).
    #[test]
    fn a_tuple_handed_out_again_in_the_same_batch_is_a_new_comparison() {
        let mut r = Rig::new();
        r.captured(CLIENT, ONLINE, 1000, 0, SYN, &[]);
        r.flush();
        // Nothing was sent of the first connection: the new SYN ends its replay at once.
        r.at(2).captured(CLIENT, ONLINE, 50_000, 0, SYN, &[]);
        r.exchange(50_000, true);
        assert_eq!(r.stats().same, 1, "{:?}", r.stats());
        r.c.finish_all();
        assert_eq!(r.stats().not_compared(), 0, "{:?}", r.stats());
        assert_eq!(r.stats().same, 1);
    }

    /// A reply whose payload intercept could not send (counted missing): its bytes are a gap
    /// on the test side and its FIN (in the same segment) still closes the stream: the request
    /// is `gap`, not `incomplete`.
    #[test]
    fn a_reply_without_its_payload_is_a_gap() {
        let mut r = Rig::new();
        r.captured(CLIENT, ONLINE, 1000, 0, SYN, &[]);
        r.exchange(1000, false);
        r.c.finish_all();
        let s = r.stats();
        assert_eq!(s.not_compared_for(Reason::Gap), 1, "{s:?}");
        assert_eq!(s.not_compared(), 1, "{s:?}");
        assert_eq!(r.c.totals.payloads_missing, 1);
    }
}
