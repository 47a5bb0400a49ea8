//! The main loop: captured frames and intercept replies into the engine, its packets out through
//! the sender, its registrations to the intercepts; counters now and then, a summary at the end.

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use tcpcopy_engine::{Engine, Event, Time};
use tcpcopy_host::report::sleep_until;
use tokio::{sync::mpsc, time::Instant};

use tcpcopy_xsk::capture::Capture;

use crate::offline::Offline;

use crate::{
    compare::Comparer,
    link::{self, Link, LinkEvent, Route},
    report::{Snapshot, WorkerCtx},
    send::Sender,
    sessions::{self, SessionLog},
};

/// Frames or replies handled before the engine's output is flushed.
const BATCH: usize = 1024;

struct State {
    engine: Engine,
    sender: Sender,
    links: Vec<Link>,
    registered: HashSet<(SocketAddr, SocketAddr)>,
    start: Instant,
    /// Registrations no connected link could carry (IPv6 where every intercept speaks protocol
    /// version 6).
    unregistrable: u64,
    /// Registrations sent, and those no connected link could take.
    registrations: u64,
    unsent_registrations: u64,
    /// Connections the intercepts refused (see `LinkEvent::Refused`).
    refusals: u64,
    /// Packets are waiting for the sender to have room.
    held_back: bool,
    /// `--session-log`, this worker's number, and its lines not yet written.
    records: Option<std::sync::Arc<SessionLog>>,
    worker: usize,
    pending_records: Vec<u8>,
    /// `--compare`: this worker's comparisons.
    compare: Option<Comparer>,
}

/// FNV-1a of a client address and port: which link carries its routes.
fn client_hash(client: SocketAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    match client.ip() {
        std::net::IpAddr::V4(a) => a.octets().into_iter().for_each(&mut eat),
        std::net::IpAddr::V6(a) => a.octets().into_iter().for_each(&mut eat),
    }
    client.port().to_be_bytes().into_iter().for_each(&mut eat);
    h
}

/// Engine time: microseconds since the Unix epoch, read once at start and then advanced by the
/// monotonic clock. TCP timestamps derive from it, so they keep growing across tcpcopy restarts
/// and a test server that still holds a previous run's connections (TIME-WAIT) accepts the new SYNs.
fn now(start: Instant) -> Time {
    time_at(start, Instant::now())
}

/// The instant `at` (not before `start`) in engine time (see [`now`]).
fn time_at(start: Instant, at: Instant) -> Time {
    let base = *EPOCH_US.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0))
    });
    let since = at.saturating_duration_since(start);
    Time::from_micros(base + u64::try_from(since.as_micros()).unwrap_or(0))
}

static EPOCH_US: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

impl State {
    fn new(
        engine: Engine,
        sender: Sender,
        links: Vec<Link>,
        records: Option<std::sync::Arc<SessionLog>>,
        worker: usize,
        compare: Option<Comparer>,
    ) -> Self {
        State {
            engine,
            sender,
            links,
            registered: HashSet::new(),
            start: Instant::now(),
            unregistrable: 0,
            registrations: 0,
            unsent_registrations: 0,
            held_back: false,
            refusals: 0,
            records,
            worker,
            pending_records: Vec::new(),
            compare,
        }
    }

    fn flush(&mut self) {
        let t = now(self.start);
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::Register { client, target } => {
                    self.registered.insert((client, target));
                    self.route(Route::Register(client, target), client);
                }
                Event::Closed {
                    client,
                    target,
                    outcome,
                    record,
                } => {
                    if self.records.is_some() {
                        sessions::append(
                            &mut self.pending_records,
                            self.worker,
                            client,
                            target,
                            outcome,
                            &record,
                        );
                    }
                    if self.registered.remove(&(client, target)) {
                        self.route(Route::Deregister(client, target), client);
                    }
                    if let Some(c) = &mut self.compare {
                        c.on_closed((client, target), record.started, outcome);
                    }
                }
            }
        }
        self.held_back = false;
        while self.sender.has_room() {
            let engine = &mut self.engine;
            let compare = &mut self.compare;
            if self
                .sender
                .emit(|buf| {
                    let tx = engine.poll_transmit(t, buf)?;
                    if let Some(c) = compare {
                        c.on_sent(t, &buf[..tx.size]);
                    }
                    Some(tx)
                })
                .is_none()
            {
                self.sender.flush();
                return;
            }
        }
        // No frame free: the engine keeps the rest until the driver has sent some.
        self.sender.flush();
        self.held_back = true;
    }

    /// A route change on one connected link of every intercept that can carry it: the same
    /// link for the same client while the links stay up (chosen by a hash of the client), so a
    /// deregistration reaches the connection that registered (intercept takes it only from
    /// there), and the sessions spread over the links.
    fn route(&mut self, route: Route, client: SocketAddr) {
        let mut done: Vec<SocketAddr> = Vec::new();
        let mut carried = false;
        let n = self.links.len();
        let start = usize::try_from(client_hash(client)).unwrap_or(0) % n.max(1);
        for k in 0..n {
            let link = &self.links[(start + k) % n];
            if !link.carries(client) {
                continue;
            }
            carried = true;
            if !done.contains(&link.intercept) && link.send(route) {
                done.push(link.intercept);
            }
        }
        if !matches!(route, Route::Register(..)) {
            return;
        }
        if !done.is_empty() {
            self.registrations += 1;
        } else if carried || self.links.iter().all(|l| l.version.is_none()) {
            self.unsent_registrations += 1;
        } else {
            self.unregistrable += 1;
        }
    }

    fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Connected(id, version) => {
                self.links[id].version = Some(version);
                // Every live session this link is now the chosen one for (see `route`).
                let n = self.links.len();
                let intercept = self.links[id].intercept;
                for &(c, t) in &self.registered {
                    let start = usize::try_from(client_hash(c)).unwrap_or(0) % n.max(1);
                    let chosen = (0..n).map(|k| (start + k) % n).find(|&i| {
                        self.links[i].intercept == intercept && self.links[i].carries(c)
                    });
                    if chosen == Some(id) {
                        self.links[id].send(Route::Register(c, t));
                    }
                }
            }
            LinkEvent::Disconnected(id) => self.links[id].version = None,
            LinkEvent::Refused => self.refusals += 1,
            LinkEvent::Reply(r) => {
                let t = now(self.start);
                self.engine.handle_response(t, r.headers.as_slice());
                if let Some(c) = &mut self.compare {
                    c.on_reply(t, r.headers.as_slice(), r.payload.as_deref());
                }
            }
        }
    }

    /// Writes the session records collected since the last call.
    fn write_records(&mut self) {
        if let Some(log) = &self.records
            && !self.pending_records.is_empty()
        {
            log.write(&self.pending_records);
            self.pending_records.clear();
        }
    }

    fn snapshot(&self, source: &Source) -> Snapshot {
        Snapshot {
            active_sessions: self.engine.session_count(),
            lag: self.engine.replay_lag(now(self.start)),
            engine: *self.engine.stats(),
            send_errors: self.sender.errors(),
            links_up: self.links.iter().filter(|l| l.version.is_some()).count(),
            links: self.links.len(),
            links_v7: self.links.iter().filter(|l| l.version == Some(7)).count(),
            link_refusals: self.refusals,
            registrations: self.registrations,
            unsent_registrations: self.unsent_registrations,
            unregistrable: self.unregistrable,
            progress: match source {
                Source::Offline(f) => Some(f.progress()),
                Source::Live(_) => None,
            },
            compare: self.compare.as_ref().map(|c| c.totals.clone()),
            // Only where it matters: the comparison's times (`--mirror --compare`).
            unstamped: match source {
                Source::Live(c) if self.compare.is_some() => c.unstamped(),
                _ => None,
            },
            xsk_dropped: match source {
                Source::Live(c) => c.xsk_dropped(),
                Source::Offline(_) => None,
            },
        }
    }
}

/// Where captured packets come from (one of them per run: the size difference does not matter).
#[allow(clippy::large_enum_variant, reason = "one value per run")]
pub enum Source {
    /// The XDP program on the capture interface.
    Live(Capture),
    /// A capture file.
    Offline(Offline),
}

/// How soon packets held back for want of transmit room are tried again.
const RETRY_SEND: Duration = Duration::from_micros(50);

/// How long sessions may take to finish after the end of a capture file.
const DRAIN: Duration = Duration::from_secs(10);

/// How often a worker publishes its counters for the stats lines.
const PUBLISH: Duration = Duration::from_millis(100);

/// How long after the last frame it took the reader goes on sweeping its ring every
/// millisecond. The sweep finds the records the XDP program wrote without waking the reader:
/// those come at most 100 µs after a record from the same CPU that did wake it (`WAKE_GAP_NS`
/// in `ebpf/src/copy.rs`), and the reader takes that record after its wake-up, so every
/// unannounced record was written less than 100 µs after the reader last took a frame; a few
/// sweeps after each take find them all, and a ring that handed nothing over for longer is
/// woken by its next frame. A tcpcopy replaying nothing (`-r 1` whose sessions are not
/// selected, a quiet service) wakes only for its timers and the publish tick, and one replaying
/// sparse sessions a few times per frame, not a thousand times a second per worker on the
/// production host.
const SWEEP_AFTER_FRAME: Duration = Duration::from_millis(5);

/// When the ring last handed over a frame, if it has yet (see [`SWEEP_AFTER_FRAME`]).
struct LastFrame(Option<Instant>);

impl LastFrame {
    fn took(&mut self, frames: usize) {
        if frames > 0 {
            self.0 = Some(Instant::now());
        }
    }

    /// Whether the millisecond sweep goes on.
    fn recent(&self) -> bool {
        self.0.is_some_and(|at| at.elapsed() < SWEEP_AFTER_FRAME)
    }
}

/// One worker's loop: runs until told to stop (live) or the end of the file's last pass
/// (offline), publishing its counters every [`PUBLISH`] and at the end.
pub async fn run(
    engine: Engine,
    mut source: Source,
    sender: Sender,
    control: &link::Control,
    records: Option<std::sync::Arc<SessionLog>>,
    compare: Option<std::sync::Arc<crate::compare::Settings>>,
    ctx: &mut WorkerCtx,
) -> anyhow::Result<()> {
    let (events_tx, mut events_rx) = mpsc::channel(65536);
    let links = link::start(control, &events_tx);
    let compare = compare.map(|settings| match &source {
        // Production's time plays at the file's speed: its latencies are scaled back by it.
        Source::Offline(file) => Comparer::new(settings).playing_at(file.speed()),
        Source::Live(_) => Comparer::new(settings),
    });
    let mut st = State::new(engine, sender, links, records, ctx.index, compare);
    let mut sweep = tokio::time::interval(tcpcopy_xsk::capture::SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut publish = tokio::time::interval(PUBLISH);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drain_from: Option<Instant> = None;
    let mut frames = LastFrame(None);
    loop {
        let sweeping = frames.recent();
        let deadline = st.engine.poll_timeout().map(|t| {
            let ahead = t.saturating_since(now(st.start));
            Instant::now() + ahead
        });
        let timer = sleep_until(deadline);
        let drain_deadline = drain_from.map(|t| t + DRAIN);
        let drained = sleep_until(drain_deadline);
        // Held-back packets are tried again shortly.
        let retry = sleep_until(st.held_back.then(|| Instant::now() + RETRY_SEND));
        let start = st.start;
        let engine = &mut st.engine;
        let compare = &mut st.compare;
        let captured = async {
            match &mut source {
                Source::Live(capture) => {
                    capture
                        .read_timed(BATCH, |ts, ip| match compare {
                            Some(c) => c.on_captured(now(start), ts, ip, engine),
                            None => engine.handle_captured(now(start), ip),
                        })
                        .await
                }
                Source::Offline(file) => match file.due(Instant::now()) {
                    Some(due) => {
                        tokio::time::sleep_until(due).await;
                        Ok(feed_offline(file, engine, compare, start, Instant::now()))
                    }
                    None => std::future::pending().await,
                },
            }
        };
        // Not biased: under load the ring is always ready, and replies must not wait behind it
        // (a SYN-ACK held back makes the engine retransmit its SYN).
        tokio::select! {
            _ = ctx.stop.changed() => break,
            r = captured => frames.took(r?),
            ev = events_rx.recv() => {
                if let Some(ev) = ev {
                    st.on_link(ev);
                }
            }
            () = timer => st.engine.handle_timeout(now(st.start)),
            () = drained => {}
            () = retry => {}
            _ = publish.tick() => {
                st.write_records();
                if let Some(c) = &mut st.compare {
                    c.tick(now(st.start));
                }
                ctx.publish(st.snapshot(&source));
            }
            // The ring is drained below, after every event.
            _ = sweep.tick(), if sweeping => {}
        }
        // Whatever else has arrived meanwhile, before the output goes out.
        for _ in 0..BATCH {
            let Ok(ev) = events_rx.try_recv() else { break };
            st.on_link(ev);
        }
        if let Source::Live(capture) = &mut source {
            frames.took(drain_ring(capture, &mut st.engine, &mut st.compare, start));
        }
        st.flush();
        // Let the intercept connections' tasks run: under load this loop is always ready, and
        // on this one-thread runtime replies waiting in their sockets would otherwise queue up
        // (tens of milliseconds of ACK delay: the test server's window stalls).
        tokio::task::yield_now().await;
        if let Source::Offline(file) = &mut source
            && file.at_end()
        {
            // The pass is over once its sessions are (or after `DRAIN`): then the next pass or
            // the end; pausing only as long as the sessions need.
            let since = *drain_from.get_or_insert_with(Instant::now);
            if st.engine.session_count() == 0 || since.elapsed() > DRAIN {
                drain_from = None;
                if !file.next_pass()? {
                    break;
                }
            }
        }
    }
    st.write_records();
    if let Some(c) = &mut st.compare {
        c.finish_all();
    }
    ctx.publish(st.snapshot(&source));
    match &mut source {
        Source::Offline(file) => offline_outcome(file, st.engine.stats()),
        Source::Live(_) => Ok(()),
    }
}

/// Hands the capture file's packets due by `wall` (now) to the engine, or with `--compare` to
/// the comparer (which keeps production's responses, the file's server-to-client packets, and
/// hands the requests on), production's time of each being the engine time it was due: the
/// file's time as the replay plays it (`-a`, `-I`), on the clock of the test side and of the
/// comparison's deadlines; how many.
fn feed_offline(
    file: &mut Offline,
    engine: &mut Engine,
    compare: &mut Option<Comparer>,
    start: Instant,
    wall: Instant,
) -> usize {
    let now = time_at(start, wall);
    file.feed(wall, |due, p| match compare {
        Some(c) => c.on_captured_packet(now, time_at(start, due), p, engine),
        None => engine.handle_captured_packet(now, p),
    })
}

/// Records the ring may hand over in one turn of the loop besides the branch that woke it.
const DRAIN_MAX: usize = 16 * BATCH;

/// Takes what the capture ring holds (up to [`DRAIN_MAX`] records) into the engine, on every
/// turn of the loop whatever woke it, before the output goes out.
///
/// The XDP program wakes this reader at most once per 100 µs per CPU, so a request captured
/// just after another waits in the ring unannounced: taken here, it is in the engine when the
/// answer that releases it comes back from intercept (a fast keep-alive connection otherwise
/// waits for the next wake-up or the millisecond sweep at every request). And when the replay
/// is slower than the capture (a bulk upload outrunning the transmit path), one read of
/// [`BATCH`] records per turn of a loop whose turns are long with sending fell behind the
/// ring, which then overflowed: a dropped frame is a hole in the client's stream, and the
/// session was lost (`capture_gap`) after two seconds. Draining the ring on every turn moves
/// the backlog into the session's buffer (`--session-buffer-mib`), where it waits its turn.
/// With `--compare`, every frame goes through the comparer (which keeps production's responses
/// and hands the requests on to the engine). Returns how many records it took.
fn drain_ring(
    capture: &mut tcpcopy_xsk::capture::Capture,
    engine: &mut Engine,
    compare: &mut Option<Comparer>,
    start: Instant,
) -> usize {
    let mut taken = 0;
    while taken < DRAIN_MAX {
        let n = capture.read_now_timed(BATCH, |ts, ip| match compare {
            Some(c) => c.on_captured(now(start), ts, ip, engine),
            None => engine.handle_captured(now(start), ip),
        });
        taken += n;
        if n < BATCH {
            break;
        }
    }
    taken
}

/// How an offline replay ended: the file's damage, or a file with nothing to replay, is an
/// error.
fn offline_outcome(file: &mut Offline, s: &tcpcopy_engine::Stats) -> anyhow::Result<()> {
    if let Some(e) = file.error.take() {
        return Err(anyhow::anyhow!(
            "{e} (the sessions before it were replayed)"
        ));
    }
    if s.sessions_started == 0 {
        anyhow::bail!(
            "no TCP session of the mapping in the file: {} packets read, {} to other ports, {} left out by the filter",
            s.captured,
            s.captured_unmapped,
            file.filtered
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tcpcopy_compare::Reason;
    use tcpcopy_engine::{
        Config, Mapping,
        wire::{TcpFlags, build::Packet},
    };

    use super::*;
    use crate::{compare::Settings, offline::Playback};

    const ONLINE: &str = "198.51.100.20:80";
    /// A connection whose production response lost its first 10 bytes in the capture (a gap
    /// that never fills), and one answered 500 ms after its request.
    const GAPPED: &str = "198.51.100.10:40000";
    const ANSWERED: &str = "198.51.100.10:40001";
    const REQUEST: &[u8] = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    /// When the gapped response's bytes after the gap were captured (seconds into the file).
    const GAP_AT: u64 = 20;

    /// A classic pcap file of raw IP packets, each at its capture time in milliseconds.
    fn write_pcap(path: &std::path::Path, packets: &[(u64, Vec<u8>)]) {
        let mut f = Vec::new();
        for word in [0xa1b2_c3d4_u32, 0x0004_0002, 0, 0, 65_535, 101] {
            f.extend_from_slice(&word.to_le_bytes());
        }
        for (ms, ip) in packets {
            let len = u32::try_from(ip.len()).unwrap();
            for word in [
                u32::try_from(ms / 1000).unwrap(),
                u32::try_from(ms % 1000 * 1000).unwrap(),
                len,
                len,
            ] {
                f.extend_from_slice(&word.to_le_bytes());
            }
            f.extend_from_slice(ip);
        }
        std::fs::write(path, f).unwrap();
    }

    /// Both connections as recorded on the online host.
    fn capture() -> Vec<(u64, Vec<u8>)> {
        let seg = |src: &str, dst: &str, seq: u32, ack: u32, flags: u8, payload: &[u8]| {
            Packet::tcp(src, dst)
                .seq(seq)
                .ack(ack)
                .flags(flags)
                .payload(payload)
                .ip()
        };
        let (syn, syn_ack) = (TcpFlags::SYN, TcpFlags::SYN | TcpFlags::ACK);
        let data = TcpFlags::PSH | TcpFlags::ACK;
        vec![
            (0, seg(GAPPED, ONLINE, 1000, 0, syn, &[])),
            (1, seg(ONLINE, GAPPED, 5000, 1001, syn_ack, &[])),
            (2, seg(GAPPED, ONLINE, 1001, 5001, data, REQUEST)),
            (100, seg(ANSWERED, ONLINE, 2000, 0, syn, &[])),
            (101, seg(ONLINE, ANSWERED, 6000, 2001, syn_ack, &[])),
            (200, seg(ANSWERED, ONLINE, 2001, 6001, data, REQUEST)),
            (700, seg(ONLINE, ANSWERED, 6001, 2029, data, RESPONSE)),
            // The first 10 bytes of the answer were not captured.
            (
                GAP_AT * 1000,
                seg(ONLINE, GAPPED, 5011, 1029, data, &RESPONSE[10..]),
            ),
        ]
    }

    /// The test side of the replayed connection of `client`: the request as sent, and the test
    /// server's whole answer.
    fn test_side(c: &mut Comparer, engine: &Engine, now: Time, client: &str) {
        let (replayed, target) = engine
            .replay_of(client.parse().unwrap(), ONLINE.parse().unwrap())
            .expect("a replayed session");
        let tcp = Packet::between;
        let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
        let data = TcpFlags::PSH | TcpFlags::ACK;
        c.on_sent(now, &tcp(replayed, target).seq(77).flags(syn).ip());
        let request = tcp(replayed, target).seq(78).ack(901).flags(data);
        c.on_sent(now, &request.payload(REQUEST).ip());
        let syn_ack = tcp(target, replayed).seq(900).ack(78).flags(syn | ack).ip();
        c.on_reply(now, &syn_ack, None);
        let answer = tcp(target, replayed).seq(901).ack(105).flags(data);
        let answer = answer.payload(RESPONSE).ip();
        c.on_reply(now, &answer[..40], Some(RESPONSE));
    }

    /// A capture file replayed with `--compare` at `-a 10` and `-a 0.5`: production's times are
    /// those the replay plays its packets at, on the engine's clock, so the gap in a response
    /// is given up `gap_timeout` of the replay after its bytes came (they came at the file's 20 s
    /// as played: 2 s, 40 s), neither before nor after (production's times as the file's
    /// timestamps made it 18 s late at `-a 10`, 20 s early at `-a 0.5`); production's latency
    /// is the recorded one (500 ms) at either speed.
    #[test]
    fn production_times_of_a_capture_file_are_on_the_engine_clock_its_latencies_as_recorded() {
        for speed in [10.0, 0.5] {
            let path = std::env::temp_dir().join(format!(
                "tcpcopy-replay-clock-{}-{speed}.pcap",
                std::process::id()
            ));
            write_pcap(&path, &capture());
            let play = Playback {
                speed,
                idle_cap: None,
                loops: 1,
                filter: tcpcopy_abi::filter::FilterProgram::default(),
            };
            let mut file = Offline::open(&path, play).unwrap();
            let _ = std::fs::remove_file(&path);
            let mapping = Mapping::parse("80-198.51.100.30:80").unwrap();
            let mut engine = Engine::new(Config::new(vec![mapping])).unwrap();
            let config = Arc::new(tcpcopy_compare::Config::default());
            let gap_timeout = config.gap_timeout;
            let settings = Arc::new(Settings { config, log: None });
            let mut compare = Some(Comparer::new(settings).playing_at(file.speed()));
            let start = Instant::now();
            // The pass starts now; then everything up to the gapped response's rest is due.
            assert_eq!(
                feed_offline(&mut file, &mut engine, &mut compare, start, start),
                1
            );
            let gap_at = start + Duration::from_secs(GAP_AT).div_f64(speed);
            let n = feed_offline(&mut file, &mut engine, &mut compare, start, gap_at);
            assert_eq!(n, capture().len() - 1, "at -a {speed}");
            assert!(file.at_end());
            let c = compare.as_mut().unwrap();
            let now = time_at(start, gap_at);
            test_side(c, &engine, now, ANSWERED);
            test_side(c, &engine, now, GAPPED);
            let t = &c.totals;
            assert_eq!(t.stats.same, 1, "at -a {speed}");
            assert_eq!(t.online.count, 1, "at -a {speed}");
            let off_us = t.online.sum_us.abs_diff(500_000);
            assert!(off_us <= 20, "at -a {speed}: {} us", t.online.sum_us);
            let gaps = |c: &Comparer| c.totals.stats.not_compared_for(Reason::Gap);
            c.tick(now + gap_timeout - Duration::from_micros(1));
            assert_eq!(gaps(c), 0, "not before gap_timeout, at -a {speed}");
            c.tick(now + gap_timeout);
            assert_eq!(gaps(c), 1, "at gap_timeout, at -a {speed}");
        }
    }
}
