//! intercept's control server: tcpcopy instances connect, register the client addresses they
//! replay, and receive the reply headers of those clients in batches.

use std::{
    collections::{HashMap, VecDeque},
    net::{SocketAddr, SocketAddrV4},
    time::Duration,
};

use tcpcopy_proto::{
    ClientDecoder, RESPONSE_RECORD_LEN, Response, TYPE_DELETE, TYPE_REGISTER, VERSION,
    encode_batch, encode_response,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

pub type ConnId = u64;
type Key = (SocketAddrV4, SocketAddrV4);
type Record = [u8; RESPONSE_RECORD_LEN];

/// How long a reply for an unregistered client waits for its registration.
const PARK_FOR: Duration = Duration::from_secs(1);
/// Replies parked at most (the oldest go first).
const PARK_MAX: usize = 65536;

/// What connection tasks tell the workers (each gets every event).
#[derive(Clone, Debug)]
pub enum ConnEvent {
    Open(ConnId, SocketAddr, mpsc::Sender<Vec<u8>>),
    Register(ConnId, Key),
    Closed(ConnId),
}

/// Counters of the control side.
#[derive(Default, Debug, Clone, Copy)]
pub struct RouterStats {
    pub forwarded: u64,
    pub parked: u64,
    pub expired: u64,
    pub dropped_slow: u64,
    pub not_ipv4_tcp: u64,
}

struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Vec<Record>,
}

/// Routes reply records to the connection that registered their client.
pub struct Router {
    batch: usize,
    routes: HashMap<Key, ConnId>,
    conns: HashMap<ConnId, Conn>,
    parked: VecDeque<(Instant, Key, Record)>,
    pub stats: RouterStats,
}

impl RouterStats {
    /// Adds another worker's counters.
    pub fn add(&mut self, o: &RouterStats) {
        self.forwarded += o.forwarded;
        self.parked += o.parked;
        self.expired += o.expired;
        self.dropped_slow += o.dropped_slow;
        self.not_ipv4_tcp += o.not_ipv4_tcp;
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

    pub fn on_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Open(id, peer, tx) => {
                log::info!("tcpcopy {peer} connected (connection {id})");
                self.conns.insert(
                    id,
                    Conn {
                        tx,
                        pending: Vec::new(),
                    },
                );
            }
            ConnEvent::Register(id, key) => {
                log::debug!("register {key:?} on connection {id}");
                self.routes.insert(key, id);
                if self.parked.iter().any(|(_, k, _)| *k == key) {
                    let parked = std::mem::take(&mut self.parked);
                    for (at, k, rec) in parked {
                        if k == key {
                            self.deliver(id, rec);
                        } else {
                            self.parked.push_back((at, k, rec));
                        }
                    }
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
    pub fn on_reply(&mut self, now: Instant, reply: Response) {
        let (key, rec) = ((reply.client, reply.target), reply.record);
        match self.routes.get(&key) {
            Some(&id) if self.conns.contains_key(&id) => self.deliver(id, rec),
            _ => {
                log::debug!("park {key:?}");
                if self.parked.len() >= PARK_MAX {
                    self.parked.pop_front();
                    self.stats.expired += 1;
                }
                self.parked.push_back((now, key, rec));
                self.stats.parked += 1;
            }
        }
    }

    /// A caught reply (its IP packet): routed, or counted when it is no IPv4 TCP packet.
    pub fn on_packet(&mut self, now: Instant, ip: &[u8]) {
        match encode_response(ip) {
            Ok(reply) => self.on_reply(now, reply),
            Err(_) => self.stats.not_ipv4_tcp += 1,
        }
    }

    fn deliver(&mut self, id: ConnId, rec: Record) {
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
        let mut msg = Vec::with_capacity(2 + conn.pending.len() * RESPONSE_RECORD_LEN);
        for chunk in conn.pending.chunks(batch) {
            encode_batch(chunk, &mut msg);
        }
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
        while let Some((at, _, _)) = self.parked.front() {
            if now.duration_since(*at) < PARK_FOR {
                break;
            }
            if let Some((_, key, _)) = self.parked.pop_front() {
                log::debug!("reply for unregistered {key:?} expired");
            }
            self.stats.expired += 1;
        }
    }
}

/// Accepts tcpcopy connections on `listener` forever.
pub async fn accept(listener: TcpListener, events: mpsc::Sender<ConnEvent>) {
    let mut next: ConnId = 0;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        next += 1;
        tokio::spawn(connection(next, stream, peer, events.clone()));
    }
}

async fn connection(
    id: ConnId,
    stream: TcpStream,
    peer: SocketAddr,
    events: mpsc::Sender<ConnEvent>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4096);
    let mut decoder = ClientDecoder::default();
    let mut buf = vec![0u8; 16384];
    let mut version_seen = false;
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
                decoder.feed(&buf[..n]);
                while let Some(rec) = decoder.next_record() {
                    if !version_seen {
                        if rec.kind != VERSION {
                            log::error!("tcpcopy {peer} speaks protocol version {}, this intercept speaks {VERSION}; closing", rec.kind);
                            break 'conn;
                        }
                        version_seen = true;
                        continue;
                    }
                    match rec.kind {
                        TYPE_REGISTER => {
                            if events.send(ConnEvent::Register(id, (rec.client, rec.target))).await.is_err() {
                                return;
                            }
                        }
                        TYPE_DELETE => {}
                        other => log::debug!("tcpcopy {peer}: record type {other} ignored"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(client: &str, target: &str) -> Response {
        Response {
            record: [0u8; RESPONSE_RECORD_LEN],
            client: client.parse().unwrap(),
            target: target.parse().unwrap(),
        }
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
        assert_eq!(m1.len(), 2 + 2 * RESPONSE_RECORD_LEN);
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
}
