//! intercept's control server: tcpcopy instances connect, register the client addresses they
//! replay, and receive the reply headers of those clients in batches.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    time::Duration,
};

use tcpcopy_proto::{Event, InterceptEnd, Reply, encode_replies, encode_response, v6, v7};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

pub type ConnId = u64;
/// A replayed connection: (client, target).
type Key = (SocketAddr, SocketAddr);

/// How long a reply for an unregistered client waits for its registration.
const PARK_FOR: Duration = Duration::from_secs(1);
/// Replies parked at most (the oldest go first).
const PARK_MAX: usize = 65536;
/// Bytes of payload-carrying messages one connection may have queued for its socket; past it
/// replies go as headers alone and their payloads are counted as dropped (`payload_dropped`),
/// so a slow tcpcopy costs comparisons, never memory or the replay.
const PAYLOAD_BACKLOG: usize = 8 << 20;

/// Bytes queued for a connection's socket and not yet written (shared by the workers, which
/// add, and the connection's task, which subtracts).
pub type Backlog = std::sync::Arc<std::sync::atomic::AtomicUsize>;

/// A connection's socket as the workers write it: straight from a worker's thread while nothing
/// waits in the connection task's queue, else into that queue behind what waits there, so the
/// order holds. A reply's way back to its tcpcopy is part of the replay's round trip (a paced
/// keep-alive connection sends its next request when the answer is back): written here it does
/// not wait for the control thread to wake up and take it from the queue.
#[derive(Debug)]
pub struct Direct {
    /// A duplicate of the connection's socket (non-blocking, as the task's).
    sock: std::net::TcpStream,
    /// Messages in the task's queue (or being written by it) not yet written. Held by a worker
    /// for its whole write, and by the task to count a write of its own, so the two never
    /// write at once.
    queued: std::sync::Mutex<usize>,
}

impl Direct {
    /// The workers' side of `stream` (none if its descriptor cannot be duplicated: then every
    /// message goes through the queue).
    fn of(stream: &TcpStream) -> Option<std::sync::Arc<Self>> {
        use std::os::fd::AsFd as _;
        let fd = stream.as_fd().try_clone_to_owned().ok()?;
        Some(std::sync::Arc::new(Self {
            sock: std::net::TcpStream::from(fd),
            queued: std::sync::Mutex::new(0),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends a worker's message on a connection: straight to the socket `this` while nothing
    /// waits in the connection task's queue, else (and what the socket did not take of it) into
    /// that queue, `tx`, behind what waits there, counted until the task has written it.
    fn send(this: Option<&Self>, tx: &mpsc::Sender<Vec<u8>>, mut msg: Vec<u8>) -> Sent {
        let mut queued = this.map(Self::lock);
        if let (Some(d), Some(&0)) = (this, queued.as_deref()) {
            use std::io::Write as _;
            match (&d.sock).write(&msg) {
                Ok(k) if k == msg.len() => return Sent::Written,
                // The socket is full (the rest goes through the queue, which waits for room),
                // or broken (the task finds out and closes the connection).
                Ok(0) | Err(_) => {}
                Ok(k) => {
                    msg.drain(..k);
                }
            }
        }
        let len = msg.len();
        // With nothing queued the queue has room: it refuses a message the socket took part of
        // only once the connection's task has ended, and that task shut the socket down as it
        // ended (`Direct::close`): no stream is left live with half a message in it.
        if tx.try_send(msg).is_err() {
            return Sent::Dropped;
        }
        if let Some(q) = queued.as_deref_mut() {
            *q += 1;
        }
        Sent::Queued(len)
    }

    /// The connection's task ends: the socket is shut down. The workers hold this duplicate
    /// until each has seen `Closed`, which kept the connection half open until then (the peer's
    /// bytes still taken in and acknowledged); shut down, it ends at once (the peer's further
    /// bytes are answered with a reset, the workers' writes fail).
    fn close(this: Option<&Self>) {
        if let Some(d) = this {
            let _ = d.sock.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The task wrote one queued message (or one of its own, counted by `queue_own`).
    fn written(this: Option<&Self>) {
        if let Some(d) = this {
            let mut q = d.lock();
            *q = q.saturating_sub(1);
        }
    }

    /// The task is about to write a message of its own: the workers queue theirs behind it.
    fn queue_own(this: Option<&Self>) {
        if let Some(d) = this {
            *d.lock() += 1;
        }
    }
}

/// What became of a worker's message ([`Direct::send`]).
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// Written to the socket whole.
    Written,
    /// Into the connection task's queue: its bytes (what the socket did not take).
    Queued(usize),
    /// Dropped: the queue is full (the tcpcopy end does not keep up) or gone.
    Dropped,
}

/// A caught reply and, when some connection wants payloads and the frame held it whole, its
/// payload.
#[derive(Clone, Debug)]
pub struct Caught {
    reply: Reply,
    payload: Option<Box<[u8]>>,
}

/// What connection tasks tell the workers (each gets every event).
#[derive(Clone, Debug)]
pub enum ConnEvent {
    Open(
        ConnId,
        SocketAddr,
        mpsc::Sender<Vec<u8>>,
        Backlog,
        Option<std::sync::Arc<Direct>>,
    ),
    /// The connection speaks protocol version 7 from now on, with these capabilities.
    Upgraded(ConnId, u32),
    Register(ConnId, Key),
    Deregister(ConnId, Key),
    Closed(ConnId),
}

/// Counters of the replies a worker handled.
#[derive(Default, Debug, Clone, Copy)]
pub struct RouterStats {
    pub forwarded: u64,
    pub parked: u64,
    pub expired: u64,
    pub dropped_slow: u64,
    pub not_tcp: u64,
    /// Replies sent with their payloads (to tcpcopys that asked: `--compare`).
    pub payloads: u64,
    /// Replies sent without the payload that was asked for: the frame did not hold it whole, or
    /// the connection's backlog was full.
    pub payload_dropped: u64,
}

/// The routing table's counters (every worker keeps the same table: one worker's say it all).
#[derive(Default, Debug, Clone, Copy)]
pub struct TableStats {
    /// Routes now.
    pub routes: usize,
    /// Routes withdrawn by their tcpcopy (protocol version 7).
    pub deregistered: u64,
    /// Registrations refused by the per-connection or the total limit.
    pub refused: u64,
    /// Routes removed after `Limits::idle` without a registration or a reply.
    pub idle_expired: u64,
}

/// Bounds of the routing table.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Routes one connection may hold.
    pub per_connection: usize,
    /// Routes all connections together may hold.
    pub total: usize,
    /// A route unused (no registration, no reply) this long is removed: version-6 peers never
    /// withdraw theirs.
    pub idle: Duration,
}

struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    backlog: Backlog,
    direct: Option<std::sync::Arc<Direct>>,
    version: u16,
    /// Replies go with their payloads (protocol version 7, capability 4).
    payloads: bool,
    pending: Vec<Caught>,
    /// Routes this connection holds.
    routes: usize,
    /// Whether a refused registration of this connection was logged.
    warned: bool,
}

struct Route {
    conn: ConnId,
    used: Instant,
}

/// Replies waiting for their registration: by key, each key's in arrival order, and all of
/// them in arrival order for expiry. A registration takes its own at once, however many others
/// wait (a look through all of them for each registration made a SYN flood's registrations,
/// whose replies often come first, cost the square of the replies parked).
#[derive(Default)]
struct Parked {
    by_key: HashMap<Key, VecDeque<(u64, Caught)>>,
    /// (arrival, serial, key) of every reply parked; entries of replies taken by their
    /// registration are left behind and skipped.
    order: VecDeque<(Instant, u64, Key)>,
    next: u64,
    /// Replies waiting.
    len: usize,
}

impl Parked {
    /// Whether a reply must go before another is parked: PARK_MAX wait.
    fn full(&self) -> bool {
        self.len >= PARK_MAX
    }

    fn push(&mut self, now: Instant, key: Key, reply: Caught) {
        if self.order.len() >= 2 * PARK_MAX {
            // Most entries are of replies taken since: forget those (after this the order holds
            // fewer than PARK_MAX, so this runs at most once per PARK_MAX pushes).
            let by_key = &self.by_key;
            self.order
                .retain(|(_, n, key)| Self::waits(by_key, *n, key));
        }
        let n = self.next;
        self.next += 1;
        self.by_key.entry(key).or_default().push_back((n, reply));
        self.order.push_back((now, n, key));
        self.len += 1;
    }

    /// The replies waiting for `key`, in arrival order.
    fn take(&mut self, key: &Key) -> VecDeque<(u64, Caught)> {
        let q = self.by_key.remove(key).unwrap_or_default();
        self.len -= q.len();
        q
    }

    /// Whether the order entry (serial `n` of `key`) is a reply still waiting.
    fn waiting(&self, n: u64, key: &Key) -> bool {
        Self::waits(&self.by_key, n, key)
    }

    /// [`Self::waiting`] in `by_key`: a key's replies leave from the front (expiry) or all at
    /// once (their registration), so serial `n` waits if it is not older than the key's first.
    fn waits(by_key: &HashMap<Key, VecDeque<(u64, Caught)>>, n: u64, key: &Key) -> bool {
        by_key
            .get(key)
            .and_then(VecDeque::front)
            .is_some_and(|(m, _)| *m <= n)
    }

    /// When the oldest reply waiting came.
    fn oldest(&mut self) -> Option<Instant> {
        loop {
            let &(at, n, key) = self.order.front()?;
            if self.waiting(n, &key) {
                return Some(at);
            }
            self.order.pop_front();
        }
    }

    /// Drops the oldest reply waiting; whether there was one.
    fn drop_oldest(&mut self) -> bool {
        while let Some((_, n, key)) = self.order.pop_front() {
            if self.waiting(n, &key) {
                let q = self.by_key.get_mut(&key).expect("waiting");
                q.pop_front();
                if q.is_empty() {
                    self.by_key.remove(&key);
                }
                self.len -= 1;
                log::debug!("reply for unregistered {key:?} expired");
                return true;
            }
        }
        false
    }
}

/// How often idle routes are looked for.
const IDLE_SWEEP: Duration = Duration::from_secs(1);

/// Routes reply records to the connection that registered their client.
pub struct Router {
    batch: usize,
    limits: Limits,
    routes: HashMap<Key, Route>,
    conns: HashMap<ConnId, Conn>,
    parked: Parked,
    last_sweep: Option<Instant>,
    /// Connections that take payloads (payloads are kept only while there are some).
    payload_conns: usize,
    pub stats: RouterStats,
    pub table: TableStats,
}

impl RouterStats {
    /// Adds another worker's counters.
    pub fn add(&mut self, o: &RouterStats) {
        self.forwarded += o.forwarded;
        self.parked += o.parked;
        self.expired += o.expired;
        self.dropped_slow += o.dropped_slow;
        self.not_tcp += o.not_tcp;
        self.payloads += o.payloads;
        self.payload_dropped += o.payload_dropped;
    }
}

impl Router {
    pub fn new(batch: usize, limits: Limits) -> Self {
        Self {
            batch: batch.clamp(1, 1024),
            limits,
            routes: HashMap::new(),
            conns: HashMap::new(),
            parked: Parked::default(),
            last_sweep: None,
            payload_conns: 0,
            stats: RouterStats::default(),
            table: TableStats::default(),
        }
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Connections that speak protocol version 7.
    pub fn connections_v7(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.version == tcpcopy_proto::v7::VERSION)
            .count()
    }

    pub fn on_event(&mut self, now: Instant, ev: ConnEvent) {
        match ev {
            ConnEvent::Open(id, peer, tx, backlog, direct) => {
                log::info!("tcpcopy {peer} connected (connection {id})");
                self.conns.insert(
                    id,
                    Conn {
                        tx,
                        backlog,
                        direct,
                        version: v6::VERSION,
                        payloads: false,
                        pending: Vec::new(),
                        routes: 0,
                        warned: false,
                    },
                );
            }
            ConnEvent::Upgraded(id, caps) => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.version = v7::VERSION;
                    conn.payloads = caps & v7::CAP_PAYLOAD != 0;
                    self.payload_conns += usize::from(conn.payloads);
                }
            }
            ConnEvent::Register(id, key) => self.register(now, id, key),
            ConnEvent::Deregister(id, key) => {
                if self.routes.get(&key).is_some_and(|r| r.conn == id) {
                    self.remove(&key);
                    self.table.deregistered += 1;
                }
            }
            ConnEvent::Closed(id) => {
                log::info!("tcpcopy connection {id} closed");
                if self.conns.remove(&id).is_some_and(|c| c.payloads) {
                    self.payload_conns -= 1;
                }
                self.routes.retain(|_, r| r.conn != id);
            }
        }
        self.table.routes = self.routes.len();
    }

    fn register(&mut self, now: Instant, id: ConnId, key: Key) {
        log::debug!("register {key:?} on connection {id}");
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match self.routes.get_mut(&key) {
            Some(r) if r.conn == id => r.used = now,
            existing => {
                let full = conn.routes >= self.limits.per_connection
                    || (existing.is_none() && self.routes.len() >= self.limits.total);
                if full {
                    self.table.refused += 1;
                    if !conn.warned {
                        conn.warned = true;
                        log::warn!(
                            "connection {id}: route limit reached ({} on this connection, {} in all; limits {} and {}): further registrations refused and counted",
                            conn.routes,
                            self.routes.len(),
                            self.limits.per_connection,
                            self.limits.total
                        );
                    }
                    return;
                }
                conn.routes += 1;
                let old = self.routes.insert(
                    key,
                    Route {
                        conn: id,
                        used: now,
                    },
                );
                if let Some(prev) = old.and_then(|o| self.conns.get_mut(&o.conn)) {
                    prev.routes = prev.routes.saturating_sub(1);
                }
            }
        }
        for (_, r) in self.parked.take(&key) {
            self.deliver(id, r);
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(r) = self.routes.remove(key)
            && let Some(conn) = self.conns.get_mut(&r.conn)
        {
            conn.routes = conn.routes.saturating_sub(1);
        }
    }

    /// A caught reply's record: to the connection that registered its client, or parked until
    /// that registration comes.
    pub fn on_reply(&mut self, now: Instant, reply: Caught) {
        let key = key_of(&reply.reply);
        match self.routes.get_mut(&key) {
            Some(r) if self.conns.contains_key(&r.conn) => {
                r.used = now;
                let id = r.conn;
                self.deliver(id, reply);
            }
            _ => {
                log::debug!("park {key:?}");
                if self.parked.full() && self.parked.drop_oldest() {
                    self.stats.expired += 1;
                }
                self.parked.push(now, key, reply);
                self.stats.parked += 1;
            }
        }
    }

    /// A caught reply (its IP packet): routed, or counted when it is no TCP packet.
    pub fn on_packet(&mut self, now: Instant, ip: &[u8]) {
        match encode_response(ip) {
            Ok(reply) => {
                // A payload is kept only while some connection takes payloads.
                let payload = if self.payload_conns > 0 {
                    tcpcopy_proto::payload_of(ip).map(Box::from)
                } else {
                    None
                };
                self.on_reply(now, Caught { reply, payload });
            }
            Err(_) => self.stats.not_tcp += 1,
        }
    }

    fn deliver(&mut self, id: ConnId, rec: Caught) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.pending.push(rec);
        self.stats.forwarded += 1;
        if conn.pending.len() >= self.batch {
            Self::send(conn, self.batch, &mut self.stats);
        }
    }

    fn send(conn: &mut Conn, batch: usize, stats: &mut RouterStats) {
        use std::sync::atomic::Ordering::Relaxed;
        let n = conn.pending.len() as u64;
        let msg = if conn.payloads {
            Self::encode_payloads(conn, stats)
        } else {
            let replies: Vec<Reply> = conn.pending.iter().map(|c| c.reply).collect();
            let mut msg = Vec::with_capacity(2 + replies.len() * v6::RESPONSE_RECORD_LEN);
            // Nothing is lost here: a version-6 connection cannot register an IPv6 route.
            encode_replies(conn.version, &replies, batch, &mut msg);
            msg
        };
        conn.pending.clear();
        match Direct::send(conn.direct.as_deref(), &conn.tx, msg) {
            Sent::Written => {}
            Sent::Queued(len) => {
                if conn.payloads {
                    conn.backlog.fetch_add(len, Relaxed);
                }
            }
            // The tcpcopy end does not keep up: dropped rather than stall every other
            // connection.
            Sent::Dropped => stats.dropped_slow += n,
        }
    }

    /// The pending replies of a connection that takes payloads (version 7, type 3), each with
    /// its payload while the connection's backlog has room, else (and when the frame did not
    /// hold it) its headers alone, counted.
    fn encode_payloads(conn: &Conn, stats: &mut RouterStats) -> Vec<u8> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut room = PAYLOAD_BACKLOG.saturating_sub(conn.backlog.load(Relaxed));
        let mut msg = Vec::new();
        for c in &conn.pending {
            match &c.payload {
                Some(p) if p.len() + tcpcopy_proto::MAX_HEADERS + 4 <= room => {
                    let before = msg.len();
                    if v7::encode_reply_payload(&c.reply.headers, p, &mut msg) {
                        stats.payloads += 1;
                    } else {
                        stats.payload_dropped += 1;
                    }
                    room = room.saturating_sub(msg.len() - before);
                }
                _ => {
                    v7::encode_reply(&c.reply.headers, &mut msg);
                    if has_payload(&c.reply) {
                        stats.payload_dropped += 1;
                    }
                }
            }
        }
        msg
    }

    /// Sends every partial batch.
    pub fn send_pending(&mut self) {
        for conn in self.conns.values_mut() {
            if !conn.pending.is_empty() {
                Self::send(conn, self.batch, &mut self.stats);
            }
        }
    }

    /// Sends every partial batch, expires parked replies and, every second, idle routes (the
    /// timed flush: every millisecond here, every 2 ms in the original).
    pub fn flush(&mut self, now: Instant) {
        self.send_pending();
        while let Some(at) = self.parked.oldest() {
            if now.duration_since(at) < PARK_FOR {
                break;
            }
            self.parked.drop_oldest();
            self.stats.expired += 1;
        }
        if self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= IDLE_SWEEP)
        {
            self.last_sweep = Some(now);
            let idle = self.limits.idle;
            let before = self.routes.len();
            let conns = &mut self.conns;
            self.routes.retain(|_, r| {
                let keep = now.duration_since(r.used) < idle;
                if !keep && let Some(c) = conns.get_mut(&r.conn) {
                    c.routes = c.routes.saturating_sub(1);
                }
                keep
            });
            self.table.idle_expired += (before - self.routes.len()) as u64;
            self.table.routes = self.routes.len();
        }
    }
}

/// Who may use the control channel, and how.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Answer version-7 offers.
    pub accept_v7: bool,
    /// Peers accepted (`--allow`); empty: any.
    pub allow: Vec<ipnet::IpNet>,
    /// The shared secret every tcpcopy must prove (`--secret-file`).
    pub secret: Option<tcpcopy_proto::Secret>,
}

impl Policy {
    fn allows(&self, peer: std::net::IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&peer))
    }
}

/// Control-channel peers turned away.
#[derive(Default, Debug)]
pub struct Refusals {
    /// Connections from outside `--allow`.
    pub not_allowed: std::sync::atomic::AtomicU64,
    /// Connections closed for breaking the protocol (garbage, a wrong version, no proof of the
    /// secret).
    pub broken: std::sync::atomic::AtomicU64,
}

/// Accepts tcpcopy connections on `listener` forever. An accept error (out of file descriptors,
/// say) is retried with backoff (1 ms doubling to 1 s) rather than at once, so it never spins.
pub async fn accept(
    listener: TcpListener,
    events: mpsc::Sender<ConnEvent>,
    policy: std::sync::Arc<Policy>,
    refusals: std::sync::Arc<Refusals>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut next: ConnId = 0;
    let mut backoff = Duration::from_millis(1);
    let mut logged_refusals = 0u32;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => {
                backoff = Duration::from_millis(1);
                a
            }
            Err(e) => {
                log::warn!("accepting a tcpcopy connection: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        // IPv4 peers of the dual-stack socket as plain IPv4 addresses.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        if !policy.allows(peer.ip()) {
            refusals.not_allowed.fetch_add(1, Relaxed);
            // The first few are logged; a flood is counted only.
            if logged_refusals < 10 {
                logged_refusals += 1;
                log::warn!("refused a control connection from {peer}: not in --allow");
            }
            drop(stream);
            continue;
        }
        next += 1;
        tokio::spawn(connection(
            next,
            stream,
            peer,
            events.clone(),
            std::sync::Arc::clone(&policy),
            std::sync::Arc::clone(&refusals),
        ));
    }
}

async fn connection(
    id: ConnId,
    stream: TcpStream,
    peer: SocketAddr,
    events: mpsc::Sender<ConnEvent>,
    policy: std::sync::Arc<Policy>,
    refusals: std::sync::Arc<Refusals>,
) {
    let _ = stream.set_nodelay(true);
    let direct = Direct::of(&stream);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4096);
    let backlog = Backlog::default();
    let Some(nonce) = nonce() else {
        log::error!("no random bytes for the nonce; closing the connection from {peer}");
        return;
    };
    let mut end = InterceptEnd::new(policy.accept_v7, nonce, policy.secret.clone());
    let mut buf = vec![0u8; 16384];
    let counted = std::sync::Arc::clone(&backlog);
    let open = ConnEvent::Open(id, peer, tx, counted, direct.clone());
    if events.send(open).await.is_err() {
        return;
    }
    let mut offer_due = None;
    'conn: loop {
        // A peer that must prove the secret but said version 6 has the offer's moment to
        // upgrade (the original tcpcopy never does).
        if !end.awaiting_offer() {
            offer_due = None;
        } else if offer_due.is_none() {
            offer_due = Some(tokio::time::Instant::now() + tcpcopy_proto::OFFER_TIMEOUT);
        }
        tokio::select! {
            () = tcpcopy_host::report::sleep_until(offer_due) => {
                log::warn!("tcpcopy {peer} speaks protocol version 6, which cannot prove the shared secret; closing the connection");
                refusals.broken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                break 'conn;
            }
            n = rd.read(&mut buf) => {
                let Ok(n) = n else { break };
                if n == 0 {
                    break;
                }
                end.handle_input(&buf[..n]);
                loop {
                    let ev = match end.poll_request() {
                        Ok(Some(ev)) => ev,
                        Ok(None) => break,
                        Err(e) => {
                            log::warn!("tcpcopy {peer}: {e}; closing the connection");
                            refusals.broken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            break 'conn;
                        }
                    };
                    let ev = match ev {
                        Event::Upgraded { caps } => {
                            log::info!("tcpcopy {peer} speaks protocol version 7");
                            // The accept goes out before any reply of the new version.
                            if let Some(b) = end.poll_transmit()
                                && own_write(&mut wr, direct.as_deref(), &b).await.is_err()
                            {
                                break 'conn;
                            }
                            if caps & v7::CAP_PAYLOAD != 0 {
                                log::info!("tcpcopy {peer} asks for the replies' payloads (--compare)");
                            }
                            ConnEvent::Upgraded(id, caps)
                        }
                        Event::Proven => {
                            log::info!("tcpcopy {peer} proved the shared secret");
                            if let Some(b) = end.poll_transmit()
                                && own_write(&mut wr, direct.as_deref(), &b).await.is_err()
                            {
                                break 'conn;
                            }
                            continue;
                        }
                        Event::Register(c, t) => ConnEvent::Register(id, (c, t)),
                        Event::Deregister(c, t) => ConnEvent::Deregister(id, (c, t)),
                        Event::Ignored(kind) => {
                            log::debug!("tcpcopy {peer}: record type {kind} ignored");
                            continue;
                        }
                    };
                    if events.send(ev).await.is_err() {
                        break 'conn;
                    }
                }
            }
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                if wr.write_all(&msg).await.is_err() {
                    break;
                }
                Direct::written(direct.as_deref());
                written(&backlog, msg.len());
            }
        }
    }
    Direct::close(direct.as_deref());
    let _ = events.send(ConnEvent::Closed(id)).await;
}

/// Writes a message of the connection task's own (the version-7 accept, the proof's answer),
/// with the workers' direct writes held back meanwhile.
async fn own_write(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    direct: Option<&Direct>,
    b: &[u8],
) -> std::io::Result<()> {
    Direct::queue_own(direct);
    let r = wr.write_all(b).await;
    Direct::written(direct);
    r
}

/// `n` bytes of a connection's queue written to its socket. (The workers count only the
/// messages of connections that take payloads; saturating for the others.)
fn written(backlog: &Backlog, n: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let _ = backlog.fetch_update(Relaxed, Relaxed, |b| Some(b.saturating_sub(n)));
}

/// Whether a reply carried payload bytes (its headers announce some).
fn has_payload(r: &Reply) -> bool {
    tcpcopy_wire::IpHeader::parse(r.headers.as_slice()).is_ok_and(|ip| {
        let h = r.headers.as_slice();
        ip.total_len > h.len()
    })
}

/// The reply's route key.
fn key_of(r: &Reply) -> Key {
    (r.client, r.target)
}

/// A nonce for the accept: random, fresh for every connection (the proof of the secret is bound
/// to it, so a recorded proof is worth nothing on another connection).
fn nonce() -> Option<[u8; 16]> {
    let mut n = [0u8; 16];
    getrandom::fill(&mut n).ok()?;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const LIMITS: Limits = Limits {
        per_connection: 4,
        total: 6,
        idle: Duration::from_mins(15),
    };

    fn now0() -> Instant {
        Instant::now()
    }

    /// A reply from `target` to `client` (IPv4 or IPv6), as caught.
    fn rec(client: &str, target: &str) -> Caught {
        Caught {
            reply: encode_response(&packet(client, target, 0)).unwrap(),
            payload: None,
        }
    }

    /// The IP packet of a reply from `target` to `client` with `payload` bytes (0, 1, 2, ...).
    fn packet(client: &str, target: &str, payload: usize) -> Vec<u8> {
        let (c, t): (SocketAddr, SocketAddr) = (client.parse().unwrap(), target.parse().unwrap());
        let mut p = Vec::new();
        match (c.ip(), t.ip()) {
            (std::net::IpAddr::V4(c), std::net::IpAddr::V4(t)) => {
                let len = u16::try_from(40 + payload).unwrap().to_be_bytes();
                p.extend_from_slice(&[0x45, 0, len[0], len[1], 0, 0, 0, 0, 64, 6, 0, 0]);
                p.extend_from_slice(&t.octets());
                p.extend_from_slice(&c.octets());
            }
            (std::net::IpAddr::V6(c), std::net::IpAddr::V6(t)) => {
                let len = u16::try_from(20 + payload).unwrap().to_be_bytes();
                p.extend_from_slice(&[0x60, 0, 0, 0, len[0], len[1], 6, 64]);
                p.extend_from_slice(&t.octets());
                p.extend_from_slice(&c.octets());
            }
            _ => unreachable!(),
        }
        p.extend_from_slice(&t.port().to_be_bytes());
        p.extend_from_slice(&c.port().to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend((0..payload).map(|i| u8::try_from(i % 251).unwrap()));
        p
    }

    fn open(id: ConnId, tx: mpsc::Sender<Vec<u8>>) -> ConnEvent {
        ConnEvent::Open(
            id,
            SocketAddr::from(([127, 0, 0, 1], u16::try_from(id).unwrap())),
            tx,
            Backlog::default(),
            None,
        )
    }

    #[tokio::test]
    async fn payloads_go_to_connections_that_asked_and_a_full_backlog_costs_them_not_memory() {
        use std::sync::atomic::Ordering::Relaxed;
        let mut r = Router::new(16, LIMITS);
        let (tx1, mut rx1) = mpsc::channel(16);
        let (tx2, mut rx2) = mpsc::channel(16);
        let backlog = Backlog::default();
        r.on_event(
            now0(),
            ConnEvent::Open(
                1,
                "127.0.0.1:1".parse().unwrap(),
                tx1,
                Arc::clone(&backlog),
                None,
            ),
        );
        r.on_event(now0(), open(2, tx2));
        r.on_event(now0(), ConnEvent::Upgraded(1, v7::CAPS | v7::CAP_PAYLOAD));
        r.on_event(now0(), ConnEvent::Upgraded(2, v7::CAPS));
        let (asked, other) = ("192.0.2.1:1000", "192.0.2.2:2000");
        let target = "198.51.100.30:80";
        r.on_event(
            now0(),
            ConnEvent::Register(1, (asked.parse().unwrap(), target.parse().unwrap())),
        );
        r.on_event(
            now0(),
            ConnEvent::Register(2, (other.parse().unwrap(), target.parse().unwrap())),
        );
        let now = Instant::now();
        r.on_packet(now, &packet(asked, target, 1000));
        r.on_packet(now, &packet(other, target, 1000));
        // Cut to its headers (as the ring copies without payloads): headers alone, counted.
        r.on_packet(now, &packet(asked, target, 1000)[..60]);
        r.flush(now);
        let m = rx1.try_recv().unwrap();
        let mut inbox = tcpcopy_proto::TcpcopyEnd::offering(
            std::time::Instant::now(),
            true,
            None,
            v7::CAPS | v7::CAP_PAYLOAD,
        );
        inbox
            .handle_input(
                &v7::Accept {
                    caps: v7::CAPS | v7::CAP_PAYLOAD,
                    nonce: [0; 16],
                }
                .encode(),
            )
            .unwrap();
        inbox.handle_input(&m).unwrap();
        let first = inbox.poll_reply().unwrap().unwrap();
        assert_eq!(
            first.payload.as_deref(),
            Some(&packet(asked, target, 1000)[40..])
        );
        assert_eq!(inbox.poll_reply().unwrap().unwrap().payload, None);
        assert_eq!(backlog.load(Relaxed), m.len());
        // The other connection did not ask: a headers-only message.
        assert_eq!(rx2.try_recv().unwrap().len(), 4 + 40);
        assert_eq!((r.stats.payloads, r.stats.payload_dropped), (1, 1));
        // The socket does not drain: past the backlog bound replies go without payloads.
        backlog.store(PAYLOAD_BACKLOG, Relaxed);
        r.on_packet(now, &packet(asked, target, 1000));
        r.flush(now);
        assert_eq!(rx1.try_recv().unwrap().len(), 4 + 40);
        assert_eq!((r.stats.payloads, r.stats.payload_dropped), (1, 2));
    }

    /// A worker writes a connection's replies straight to its socket while nothing waits in the
    /// connection task's queue, and behind the queue (in order) while something does.
    #[tokio::test]
    async fn replies_go_straight_to_the_socket_unless_the_queue_holds_some() {
        use tokio::io::AsyncReadExt as _;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        let direct = Direct::of(&ours).unwrap();
        let mut r = Router::new(16, LIMITS);
        let (tx, mut rx) = mpsc::channel(16);
        r.on_event(
            now0(),
            ConnEvent::Open(
                1,
                "127.0.0.1:1".parse().unwrap(),
                tx,
                Backlog::default(),
                Some(Arc::clone(&direct)),
            ),
        );
        let (client, target) = ("192.0.2.1:1000", "198.51.100.30:80");
        r.on_event(
            now0(),
            ConnEvent::Register(1, (client.parse().unwrap(), target.parse().unwrap())),
        );
        let one = 2 + v6::RESPONSE_RECORD_LEN;
        r.on_packet(now0(), &packet(client, target, 0));
        r.send_pending();
        // Written by the router itself: on the peer's side, nothing in the queue.
        let mut got = vec![0u8; one];
        tokio::time::timeout(Duration::from_secs(5), peer.read_exact(&mut got))
            .await
            .expect("the reply within 5 s")
            .unwrap();
        assert_eq!(&got[..2], &[0, 1]);
        assert!(rx.try_recv().is_err());
        // The task has a message of its own going out: the next reply waits in the queue.
        Direct::queue_own(Some(&direct));
        r.on_packet(now0(), &packet(client, target, 0));
        r.send_pending();
        assert_eq!(rx.try_recv().unwrap().len(), one);
        // Its own written, the queued one not yet: still behind the queue.
        Direct::written(Some(&direct));
        r.on_packet(now0(), &packet(client, target, 0));
        r.send_pending();
        assert_eq!(rx.try_recv().unwrap().len(), one);
        // Both queued ones written: straight to the socket again.
        Direct::written(Some(&direct));
        Direct::written(Some(&direct));
        r.on_packet(now0(), &packet(client, target, 0));
        r.send_pending();
        assert!(rx.try_recv().is_err());
        let mut got = vec![0u8; one];
        tokio::time::timeout(Duration::from_secs(5), peer.read_exact(&mut got))
            .await
            .expect("the reply within 5 s")
            .unwrap();
        assert_eq!(r.stats.forwarded, 4);
        assert_eq!(r.stats.dropped_slow, 0);
    }

    /// A connection that ends (here: its peer breaks the protocol) is shut down at once, though
    /// a worker still holds the duplicate of its socket: the peer sees the end, its further
    /// bytes are refused (reset) rather than taken in by a socket nobody reads, and the worker's
    /// next reply for it is counted dropped.
    #[tokio::test]
    async fn an_ended_connection_is_shut_down_though_a_worker_holds_its_socket() {
        use std::sync::atomic::Ordering::Relaxed;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        const LIMIT: Duration = Duration::from_secs(5);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (ours, from) = listener.accept().await.unwrap();
        let (events, mut seen) = mpsc::channel(16);
        let policy = Arc::new(Policy {
            accept_v7: true,
            allow: Vec::new(),
            secret: None,
        });
        let refusals = Arc::new(Refusals::default());
        let task = tokio::spawn(connection(
            1,
            ours,
            from,
            events,
            policy,
            Arc::clone(&refusals),
        ));
        // A worker's router: it holds the socket's duplicate until it sees `Closed`.
        let mut r = Router::new(16, LIMITS);
        let open = seen.recv().await.unwrap();
        assert!(
            matches!(open, ConnEvent::Open(1, _, _, _, Some(_))),
            "{open:?}"
        );
        r.on_event(now0(), open);
        let (client, target) = ("192.0.2.1:1000", "198.51.100.30:80");
        r.on_event(
            now0(),
            ConnEvent::Register(1, (client.parse().unwrap(), target.parse().unwrap())),
        );
        // Not a version record: the task closes the connection.
        peer.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let closed = tokio::time::timeout(LIMIT, seen.recv())
            .await
            .expect("the task's end within 5 s")
            .unwrap();
        assert!(matches!(closed, ConnEvent::Closed(1)), "{closed:?}");
        tokio::time::timeout(LIMIT, task)
            .await
            .expect("the task's end within 5 s")
            .unwrap();
        assert_eq!(refusals.broken.load(Relaxed), 1);
        // The router has not seen `Closed`: the duplicate is open. The peer sees the end...
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(LIMIT, peer.read(&mut buf))
            .await
            .expect("the end of the stream within 5 s")
            .unwrap();
        assert_eq!(n, 0, "the end of the stream");
        // ...and what it sends from now on is refused (a reset).
        let refused = async {
            while peer.write_all(b"more").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(LIMIT, refused)
            .await
            .expect("a reset for the bytes sent after the end, within 5 s");
        // The worker's next reply has nowhere to go: counted, not written.
        r.on_packet(now0(), &packet(client, target, 0));
        r.send_pending();
        assert_eq!((r.stats.forwarded, r.stats.dropped_slow), (1, 1));
    }

    #[tokio::test]
    async fn replies_go_to_the_registering_connection_and_wait_for_late_registrations() {
        let mut r = Router::new(2, LIMITS);
        let (tx1, mut rx1) = mpsc::channel(16);
        let (tx2, mut rx2) = mpsc::channel(16);
        r.on_event(now0(), open(1, tx1));
        r.on_event(now0(), open(2, tx2));
        let a = (
            "192.0.2.1:1000".parse().unwrap(),
            "198.51.100.30:80".parse().unwrap(),
        );
        r.on_event(now0(), ConnEvent::Register(1, a));
        let now = Instant::now();
        // A reply before its registration is parked, then delivered.
        r.on_reply(now, rec("192.0.2.2:2000", "198.51.100.30:80"));
        assert_eq!(r.stats.parked, 1);
        r.on_event(
            now0(),
            ConnEvent::Register(
                2,
                (
                    "192.0.2.2:2000".parse().unwrap(),
                    "198.51.100.30:80".parse().unwrap(),
                ),
            ),
        );
        r.on_reply(now, rec("192.0.2.1:1000", "198.51.100.30:80"));
        r.on_reply(now, rec("192.0.2.1:1000", "198.51.100.30:80"));
        // Batch of 2 went out on connection 1 right away.
        let m1 = rx1.try_recv().unwrap();
        assert_eq!(m1.len(), 2 + 2 * v6::RESPONSE_RECORD_LEN);
        assert_eq!(&m1[..2], &[0, 2]);
        r.flush(now);
        let m2 = rx2.try_recv().unwrap();
        assert_eq!(&m2[..2], &[0, 1]);
        // Unregistered replies expire after a second.
        r.on_reply(now, rec("192.0.2.9:9", "198.51.100.30:80"));
        r.flush(now + Duration::from_secs(2));
        assert_eq!(r.stats.expired, 1);
        r.on_event(now0(), ConnEvent::Closed(1));
        r.on_reply(now, rec("192.0.2.1:1000", "198.51.100.30:80"));
        assert_eq!(r.stats.parked, 3, "routes of a closed connection are gone");
    }

    /// A registration takes its own parked replies (in order) and leaves the others; expiry
    /// goes by arrival and skips the replies taken.
    #[test]
    fn parked_replies_are_taken_by_key_and_expire_in_arrival_order() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let key = |c: &str| (c.parse().unwrap(), "198.51.100.30:80".parse().unwrap());
        let (a, b, c) = ("192.0.2.1:1", "192.0.2.2:2", "192.0.2.3:3");
        let mut p = Parked::default();
        for (i, k) in [a, b, a, c, b].into_iter().enumerate() {
            p.push(ms(i as u64), key(k), rec(k, "198.51.100.30:80"));
        }
        assert_eq!(p.len, 5);
        let taken: Vec<u64> = p.take(&key(a)).into_iter().map(|(n, _)| n).collect();
        assert_eq!(taken, [0, 2]);
        assert_eq!(p.len, 3);
        assert!(p.take(&key(a)).is_empty());
        // The oldest still waiting is b's first (a's went).
        assert_eq!(p.oldest(), Some(ms(1)));
        assert!(p.drop_oldest());
        assert_eq!(p.oldest(), Some(ms(3)), "c's, a's second skipped");
        assert!(p.drop_oldest());
        let left: Vec<u64> = p.take(&key(b)).into_iter().map(|(n, _)| n).collect();
        assert_eq!(left, [4]);
        assert_eq!((p.len, p.oldest()), (0, None));
        assert!(!p.drop_oldest());
    }

    /// A reply waiting behind many taken ones is not dropped: only PARK_MAX waiting replies
    /// make room, the taken ones' order entries are forgotten as they pile up.
    #[test]
    fn replies_taken_by_their_registrations_leave_room_for_the_waiting() {
        let t0 = Instant::now();
        let server = "198.51.100.30:80";
        let waiting: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let mut p = Parked::default();
        p.push(
            t0,
            (waiting, server.parse().unwrap()),
            rec("192.0.2.1:1", server),
        );
        for i in 0..3 * PARK_MAX {
            let port = u16::try_from(i % 60_000).unwrap() + 2;
            let client = SocketAddr::new("192.0.2.2".parse().unwrap(), port);
            let key = (client, server.parse().unwrap());
            assert!(!p.full(), "after {i} replies taken");
            p.push(t0, key, rec(&client.to_string(), server));
            assert_eq!(p.take(&key).len(), 1);
        }
        assert!(p.order.len() < 2 * PARK_MAX, "{}", p.order.len());
        assert_eq!((p.len, p.oldest()), (1, Some(t0)), "the first still waits");
    }

    #[tokio::test]
    async fn version_7_connections_get_ipv6_replies_and_lose_deregistered_routes() {
        let mut r = Router::new(16, LIMITS);
        let (tx, mut rx) = mpsc::channel(16);
        r.on_event(now0(), open(1, tx));
        r.on_event(now0(), ConnEvent::Upgraded(1, v7::CAPS));
        let (c, t) = ("[2001:db8:2::7]:40000", "[2001:db8:100::30]:80");
        let key = (c.parse().unwrap(), t.parse().unwrap());
        r.on_event(now0(), ConnEvent::Register(1, key));
        let now = Instant::now();
        r.on_reply(now, rec(c, t));
        r.flush(now);
        let m = rx.try_recv().unwrap();
        // One version-7 reply message: type 1, length 60 (IPv6 + TCP headers).
        assert_eq!(&m[..4], &[1, 0, 0, 60]);
        assert_eq!(m.len(), 64);
        r.on_event(now0(), ConnEvent::Deregister(2, key));
        assert_eq!(
            r.table.deregistered, 0,
            "only the registering connection withdraws"
        );
        r.on_event(now0(), ConnEvent::Deregister(1, key));
        assert_eq!(r.table.deregistered, 1);
        r.on_reply(now, rec(c, t));
        assert_eq!(r.stats.parked, 1);
    }

    #[tokio::test]
    async fn routes_are_bounded_per_connection_and_in_all_and_expire_when_idle() {
        let mut r = Router::new(16, LIMITS);
        let t0 = Instant::now();
        let (tx1, _rx1) = mpsc::channel(16);
        let (tx2, _rx2) = mpsc::channel(16);
        r.on_event(t0, open(1, tx1));
        r.on_event(t0, open(2, tx2));
        let key = |i: u16| {
            (
                SocketAddr::from(([192, 0, 2, 1], i)),
                SocketAddr::from(([198, 51, 100, 30], 80)),
            )
        };
        for i in 0..10 {
            r.on_event(t0, ConnEvent::Register(1, key(i)));
        }
        assert_eq!(
            (r.table.routes, r.table.refused),
            (4, 6),
            "4 per connection"
        );
        // Registering the same key again is no new route.
        r.on_event(t0, ConnEvent::Register(1, key(0)));
        assert_eq!((r.table.routes, r.table.refused), (4, 6));
        for i in 100..110 {
            r.on_event(t0, ConnEvent::Register(2, key(i)));
        }
        assert_eq!((r.table.routes, r.table.refused), (6, 14), "6 in all");
        // A withdrawn route makes room.
        r.on_event(t0, ConnEvent::Deregister(1, key(0)));
        r.on_event(t0, ConnEvent::Register(2, key(200)));
        assert_eq!(r.table.routes, 6);
        // A reply keeps its route in use; the others expire after `idle`.
        let later = t0 + Duration::from_mins(10);
        r.on_reply(later, rec("192.0.2.1:1", "198.51.100.30:80"));
        r.flush(t0 + Duration::from_secs(901));
        assert_eq!((r.table.routes, r.table.idle_expired), (1, 5));
        r.flush(t0 + Duration::from_secs(1502));
        assert_eq!((r.table.routes, r.table.idle_expired), (0, 6));
    }
}
