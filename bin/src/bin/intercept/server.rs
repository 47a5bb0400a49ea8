//! intercept's control server: tcpcopy instances connect, register the client addresses they
//! replay, and receive the reply headers of those clients in batches.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    time::Duration,
};

use tcpcopy_proto::{Event, InterceptEnd, Reply, encode_replies, encode_response, v6};
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

/// What connection tasks tell the workers (each gets every event).
#[derive(Clone, Debug)]
pub enum ConnEvent {
    Open(ConnId, SocketAddr, mpsc::Sender<Vec<u8>>),
    /// The connection speaks protocol version 7 from now on.
    Upgraded(ConnId),
    Register(ConnId, Key),
    Deregister(ConnId, Key),
    Closed(ConnId),
}

/// Counters of the control side.
#[derive(Default, Debug, Clone, Copy)]
pub struct RouterStats {
    pub forwarded: u64,
    pub parked: u64,
    pub expired: u64,
    pub dropped_slow: u64,
    pub not_tcp: u64,
    /// Routes withdrawn by their tcpcopy (protocol version 7).
    pub deregistered: u64,
}

struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    version: u16,
    pending: Vec<Reply>,
}

/// Routes reply records to the connection that registered their client.
pub struct Router {
    batch: usize,
    routes: HashMap<Key, ConnId>,
    conns: HashMap<ConnId, Conn>,
    parked: VecDeque<(Instant, Reply)>,
    pub stats: RouterStats,
}

impl RouterStats {
    /// Adds another worker's counters.
    pub fn add(&mut self, o: &RouterStats) {
        self.forwarded += o.forwarded;
        self.parked += o.parked;
        self.expired += o.expired;
        self.dropped_slow += o.dropped_slow;
        self.not_tcp += o.not_tcp;
        self.deregistered += o.deregistered;
    }
}

impl Router {
    pub fn new(batch: usize) -> Self {
        Self {
            batch: batch.clamp(1, 1024),
            routes: HashMap::new(),
            conns: HashMap::new(),
            parked: VecDeque::new(),
            stats: RouterStats::default(),
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

    pub fn on_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Open(id, peer, tx) => {
                log::info!("tcpcopy {peer} connected (connection {id})");
                self.conns.insert(
                    id,
                    Conn {
                        tx,
                        version: v6::VERSION,
                        pending: Vec::new(),
                    },
                );
            }
            ConnEvent::Upgraded(id) => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.version = tcpcopy_proto::v7::VERSION;
                }
            }
            ConnEvent::Register(id, key) => {
                log::debug!("register {key:?} on connection {id}");
                self.routes.insert(key, id);
                if self.parked.iter().any(|(_, r)| key_of(r) == key) {
                    let parked = std::mem::take(&mut self.parked);
                    for (at, r) in parked {
                        if key_of(&r) == key {
                            self.deliver(id, r);
                        } else {
                            self.parked.push_back((at, r));
                        }
                    }
                }
            }
            ConnEvent::Deregister(id, key) => {
                if self.routes.get(&key) == Some(&id) {
                    self.routes.remove(&key);
                    self.stats.deregistered += 1;
                }
            }
            ConnEvent::Closed(id) => {
                log::info!("tcpcopy connection {id} closed");
                self.conns.remove(&id);
                self.routes.retain(|_, c| *c != id);
            }
        }
    }

    /// A caught reply's record: to the connection that registered its client, or parked until
    /// that registration comes.
    pub fn on_reply(&mut self, now: Instant, reply: Reply) {
        let key = key_of(&reply);
        match self.routes.get(&key) {
            Some(&id) if self.conns.contains_key(&id) => self.deliver(id, reply),
            _ => {
                log::debug!("park {key:?}");
                if self.parked.len() >= PARK_MAX {
                    self.parked.pop_front();
                    self.stats.expired += 1;
                }
                self.parked.push_back((now, reply));
                self.stats.parked += 1;
            }
        }
    }

    /// A caught reply (its IP packet): routed, or counted when it is no TCP packet.
    pub fn on_packet(&mut self, now: Instant, ip: &[u8]) {
        match encode_response(ip) {
            Ok(reply) => self.on_reply(now, reply),
            Err(_) => self.stats.not_tcp += 1,
        }
    }

    fn deliver(&mut self, id: ConnId, rec: Reply) {
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
        let mut msg = Vec::with_capacity(2 + conn.pending.len() * v6::RESPONSE_RECORD_LEN);
        // Nothing is lost here: a version-6 connection cannot register an IPv6 route.
        encode_replies(conn.version, &conn.pending, batch, &mut msg);
        let n = conn.pending.len() as u64;
        conn.pending.clear();
        if conn.tx.try_send(msg).is_err() {
            // The tcpcopy end does not keep up: drop rather than stall every other connection.
            stats.dropped_slow += n;
        }
    }

    /// Sends every partial batch.
    pub fn send_pending(&mut self) {
        for conn in self.conns.values_mut() {
            if !conn.pending.is_empty() {
                Self::send(conn, self.batch, &mut self.stats);
            }
        }
    }

    /// Sends every partial batch and expires parked replies (the timed flush: every millisecond
    /// here, every 2 ms in the original).
    pub fn flush(&mut self, now: Instant) {
        self.send_pending();
        while let Some((at, _)) = self.parked.front() {
            if now.duration_since(*at) < PARK_FOR {
                break;
            }
            if let Some((_, r)) = self.parked.pop_front() {
                log::debug!("reply for unregistered {:?} expired", key_of(&r));
            }
            self.stats.expired += 1;
        }
    }
}

/// Accepts tcpcopy connections on `listener` forever.
pub async fn accept(listener: TcpListener, events: mpsc::Sender<ConnEvent>, accept_v7: bool) {
    let mut next: ConnId = 0;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        next += 1;
        // IPv4 peers of the dual-stack socket as plain IPv4 addresses.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        tokio::spawn(connection(next, stream, peer, events.clone(), accept_v7));
    }
}

async fn connection(
    id: ConnId,
    stream: TcpStream,
    peer: SocketAddr,
    events: mpsc::Sender<ConnEvent>,
    accept_v7: bool,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4096);
    let mut end = InterceptEnd::new(accept_v7, nonce());
    let mut buf = vec![0u8; 16384];
    if events.send(ConnEvent::Open(id, peer, tx)).await.is_err() {
        return;
    }
    'conn: loop {
        tokio::select! {
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
                            break 'conn;
                        }
                    };
                    let ev = match ev {
                        Event::Upgraded { .. } => {
                            log::info!("tcpcopy {peer} speaks protocol version 7");
                            // The accept goes out before any reply of the new version.
                            if let Some(b) = end.poll_transmit()
                                && wr.write_all(&b).await.is_err()
                            {
                                break 'conn;
                            }
                            ConnEvent::Upgraded(id)
                        }
                        Event::Register(c, t) => ConnEvent::Register(id, (c, t)),
                        Event::Deregister(c, t) => ConnEvent::Deregister(id, (c, t)),
                        Event::Ignored(kind) => {
                            log::debug!("tcpcopy {peer}: record type {kind} ignored");
                            continue;
                        }
                    };
                    if events.send(ev).await.is_err() {
                        return;
                    }
                }
            }
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                if wr.write_all(&msg).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = events.send(ConnEvent::Closed(id)).await;
}

/// The reply's route key.
fn key_of(r: &Reply) -> Key {
    (r.client, r.target)
}

/// A nonce for the accept: not secret, only different per connection.
fn nonce() -> [u8; 16] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    t.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply from `target` to `client` (IPv4 or IPv6), as caught.
    fn rec(client: &str, target: &str) -> Reply {
        let (c, t): (SocketAddr, SocketAddr) = (client.parse().unwrap(), target.parse().unwrap());
        let mut p = Vec::new();
        match (c.ip(), t.ip()) {
            (std::net::IpAddr::V4(c), std::net::IpAddr::V4(t)) => {
                p.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]);
                p.extend_from_slice(&t.octets());
                p.extend_from_slice(&c.octets());
            }
            (std::net::IpAddr::V6(c), std::net::IpAddr::V6(t)) => {
                p.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
                p.extend_from_slice(&t.octets());
                p.extend_from_slice(&c.octets());
            }
            _ => unreachable!(),
        }
        p.extend_from_slice(&t.port().to_be_bytes());
        p.extend_from_slice(&c.port().to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        encode_response(&p).unwrap()
    }

    #[tokio::test]
    async fn replies_go_to_the_registering_connection_and_wait_for_late_registrations() {
        let mut r = Router::new(2);
        let (tx1, mut rx1) = mpsc::channel(16);
        let (tx2, mut rx2) = mpsc::channel(16);
        r.on_event(ConnEvent::Open(1, "127.0.0.1:1".parse().unwrap(), tx1));
        r.on_event(ConnEvent::Open(2, "127.0.0.1:2".parse().unwrap(), tx2));
        let a = (
            "192.0.2.1:1000".parse().unwrap(),
            "198.51.100.30:80".parse().unwrap(),
        );
        r.on_event(ConnEvent::Register(1, a));
        let now = Instant::now();
        // A reply before its registration is parked, then delivered.
        r.on_reply(now, rec("192.0.2.2:2000", "198.51.100.30:80"));
        assert_eq!(r.stats.parked, 1);
        r.on_event(ConnEvent::Register(
            2,
            (
                "192.0.2.2:2000".parse().unwrap(),
                "198.51.100.30:80".parse().unwrap(),
            ),
        ));
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
        r.on_event(ConnEvent::Closed(1));
        r.on_reply(now, rec("192.0.2.1:1000", "198.51.100.30:80"));
        assert_eq!(r.stats.parked, 3, "routes of a closed connection are gone");
    }

    #[tokio::test]
    async fn version_7_connections_get_ipv6_replies_and_lose_deregistered_routes() {
        let mut r = Router::new(16);
        let (tx, mut rx) = mpsc::channel(16);
        r.on_event(ConnEvent::Open(1, "127.0.0.1:1".parse().unwrap(), tx));
        r.on_event(ConnEvent::Upgraded(1));
        let (c, t) = ("[2001:db8:2::7]:40000", "[2001:db8:100::30]:80");
        let key = (c.parse().unwrap(), t.parse().unwrap());
        r.on_event(ConnEvent::Register(1, key));
        let now = Instant::now();
        r.on_reply(now, rec(c, t));
        r.flush(now);
        let m = rx.try_recv().unwrap();
        // One version-7 reply message: type 1, length 60 (IPv6 + TCP headers).
        assert_eq!(&m[..4], &[1, 0, 0, 60]);
        assert_eq!(m.len(), 64);
        r.on_event(ConnEvent::Deregister(2, key));
        assert_eq!(
            r.stats.deregistered, 0,
            "only the registering connection withdraws"
        );
        r.on_event(ConnEvent::Deregister(1, key));
        assert_eq!(r.stats.deregistered, 1);
        r.on_reply(now, rec(c, t));
        assert_eq!(r.stats.parked, 1);
    }
}
