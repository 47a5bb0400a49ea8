//! A simulated network for the engine: a client, the online server and the test server are real
//! TCP stacks (smoltcp, written by nobody here); the engine sits between a capture tap on the
//! online server's link and the test server, as tcpcopy and intercept do. Time is fake and
//! advances to the next event; loss, reordering and duplication are seeded knobs.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

mod apps;
mod device;

use std::collections::VecDeque;

use apps::Client;
pub use apps::{ClientScript, Server};
use device::QueueDevice;
use smoltcp::{
    iface::{Config as IfaceConfig, Interface, SocketSet},
    time::Instant,
    wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address},
};
use tcpcopy_engine::{Config, Engine, Event, Time};

pub const CLIENT: Ipv4Address = Ipv4Address::new(198, 51, 100, 10);
pub const ONLINE: Ipv4Address = Ipv4Address::new(198, 51, 100, 20);
pub const TEST: Ipv4Address = Ipv4Address::new(198, 51, 100, 30);
pub const PORT: u16 = 80;

/// Seeded impairments of the links the engine uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Knobs {
    /// Engine -> test server: drop, hold back behind the next packet, send twice (per mille).
    pub loss: u32,
    pub reorder: u32,
    pub duplicate: u32,
    /// Test server -> engine (reply headers): drop (per mille).
    pub response_loss: u32,
    /// Capture tap: drop (per mille) captured client packets that carry data.
    pub capture_loss: u32,
    /// Capture tap: start capturing only at this time (sessions already open are mid-stream).
    pub capture_from_us: u64,
}

/// One host: a smoltcp interface, its device queues and sockets.
pub struct Host {
    pub iface: Interface,
    pub dev: QueueDevice,
    pub sockets: SocketSet<'static>,
}

impl Host {
    fn new(addr: Ipv4Address, seed: u64) -> Self {
        let mut dev = QueueDevice::default();
        let mut cfg = IfaceConfig::new(HardwareAddress::Ip);
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut dev, Instant::from_micros(0));
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(addr), 24)).unwrap();
        });
        iface
            .routes_mut()
            .add_default_ipv4_route(Ipv4Address::new(198, 51, 100, 1))
            .unwrap();
        Self {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
        }
    }

    fn poll(&mut self, now: Instant) {
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dest {
    Client,
    Online,
    Test,
    /// A reply header for the engine.
    Engine,
}

/// The whole simulation.
pub struct Net {
    pub now_us: u64,
    pub client: Host,
    pub online: Host,
    pub test: Host,
    pub engine: Engine,
    pub clients: Vec<Client>,
    pub online_app: Server,
    pub test_app: Server,
    pub knobs: Knobs,
    pub latency_us: u64,
    pub events: Vec<Event>,
    pub captured_packets: u64,
    /// The test server's packets that reached the engine (headers), in order of arrival: kept
    /// only when asked for ([`Net::recording_replies`]).
    pub replies: Option<Vec<Vec<u8>>>,
    in_flight: Vec<(u64, Dest, Vec<u8>)>,
    held: Option<Vec<u8>>,
    rng: u64,
    buf: Vec<u8>,
}

impl Net {
    pub fn new(cfg: Config, online_app: Server, test_app: Server, knobs: Knobs, seed: u64) -> Self {
        let online = Host::new(ONLINE, seed ^ 1);
        let test = Host::new(TEST, seed ^ 2);
        Self {
            now_us: 0,
            client: Host::new(CLIENT, seed ^ 3),
            online,
            test,
            engine: Engine::new(cfg).expect("valid config"),
            clients: Vec::new(),
            online_app,
            test_app,
            knobs,
            latency_us: 500,
            events: Vec::new(),
            captured_packets: 0,
            replies: None,
            in_flight: Vec::new(),
            held: None,
            rng: seed | 1,
            buf: vec![0; 2048],
        }
    }

    /// Keeps the test server's packets that reach the engine in [`Net::replies`].
    #[must_use]
    pub fn recording_replies(mut self) -> Self {
        self.replies = Some(Vec::new());
        self
    }

    /// Adds a client connection that starts at `at_us`.
    pub fn add_client(&mut self, script: ClientScript, at_us: u64) {
        let port = 40_000 + u16::try_from(self.clients.len()).unwrap();
        self.clients
            .push(Client::new(&mut self.client.sockets, script, port, at_us));
    }

    fn chance(&mut self, per_mille: u32) -> bool {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        per_mille > 0 && (r >> 33) % 1000 < u64::from(per_mille)
    }

    fn time(&self) -> Time {
        Time::from_micros(self.now_us)
    }

    fn send(&mut self, dest: Dest, pkt: Vec<u8>) {
        self.in_flight
            .push((self.now_us + self.latency_us, dest, pkt));
    }

    /// One round at the current time: hosts and apps run, packets move, the engine runs.
    fn round(&mut self) {
        let now = Instant::from_micros(i64::try_from(self.now_us).unwrap());
        // Deliver what is due.
        let due: Vec<(u64, Dest, Vec<u8>)>;
        (due, self.in_flight) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(t, _, _)| *t <= self.now_us);
        for (_, dest, pkt) in due {
            match dest {
                Dest::Client => self.client.dev.rx.push_back(pkt),
                Dest::Online => {
                    if self.now_us >= self.knobs.capture_from_us {
                        let has_data =
                            tcpcopy_engine::wire::parse(&pkt, tcpcopy_engine::wire::Payload::Whole)
                                .is_ok_and(|p| p.tcp.payload_len > 0);
                        if !(has_data && self.chance(self.knobs.capture_loss)) {
                            self.captured_packets += 1;
                            self.engine.handle_captured(self.time(), &pkt);
                        }
                    }
                    self.online.dev.rx.push_back(pkt);
                }
                Dest::Test => self.test.dev.rx.push_back(pkt),
                Dest::Engine => {
                    self.engine.handle_response(self.time(), &pkt);
                    if let Some(r) = &mut self.replies {
                        r.push(pkt);
                    }
                }
            }
        }
        for c in &mut self.clients {
            c.run(
                self.now_us,
                &mut self.client.iface,
                &mut self.client.sockets,
            );
        }
        self.online_app.run(self.now_us, &mut self.online.sockets);
        self.test_app.run(self.now_us, &mut self.test.sockets);
        self.client.poll(now);
        self.online.poll(now);
        self.test.poll(now);
        for pkt in std::mem::take(&mut self.client.dev.tx) {
            self.send(Dest::Online, pkt);
        }
        for pkt in std::mem::take(&mut self.online.dev.tx) {
            self.send(Dest::Client, pkt);
        }
        for pkt in std::mem::take(&mut self.test.dev.tx) {
            if !self.chance(self.knobs.response_loss) {
                let headers = headers_only(&pkt);
                self.send(Dest::Engine, headers);
            }
        }
        self.engine.handle_timeout(self.time());
        while let Some(e) = self.engine.poll_event() {
            self.events.push(e);
        }
        let mut out = VecDeque::new();
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(t) = self.engine.poll_transmit(self.time(), &mut buf) {
            out.push_back(buf[..t.size].to_vec());
        }
        self.buf = buf;
        while let Some(e) = self.engine.poll_event() {
            self.events.push(e);
        }
        for pkt in out {
            if self.chance(self.knobs.loss) {
                continue;
            }
            if self.chance(self.knobs.duplicate) {
                self.send(Dest::Test, pkt.clone());
            }
            if self.held.is_none() && self.chance(self.knobs.reorder) {
                self.held = Some(pkt);
                continue;
            }
            self.send(Dest::Test, pkt);
            if let Some(h) = self.held.take() {
                self.send(Dest::Test, h);
            }
        }
    }

    /// The next time anything is due.
    fn next_time(&mut self) -> u64 {
        let mut t = u64::MAX;
        for (at, _, _) in &self.in_flight {
            t = t.min(*at);
        }
        let now = Instant::from_micros(i64::try_from(self.now_us).unwrap());
        for h in [&mut self.client, &mut self.online, &mut self.test] {
            if let Some(at) = h.iface.poll_at(now, &h.sockets) {
                t = t.min(u64::try_from(at.total_micros()).unwrap_or(0));
            }
        }
        if let Some(at) = self.engine.poll_timeout() {
            t = t.min(at.as_micros());
        }
        for c in &self.clients {
            if let Some(at) = c.wakeup(self.now_us) {
                t = t.min(at);
            }
        }
        for app in [&self.online_app, &self.test_app] {
            if let Some(at) = app.wakeup() {
                t = t.min(at);
            }
        }
        if self.held.is_some() {
            t = t.min(self.now_us + 1000);
        }
        t.max(self.now_us + 1)
    }

    /// Runs until every client is done and the engine has no session left, or `limit_us` passes.
    /// Returns whether it settled.
    pub fn run(&mut self, limit_us: u64) -> bool {
        while self.now_us < limit_us {
            self.round();
            if let Some(h) = self.held.take() {
                self.send(Dest::Test, h);
            }
            let done = self.clients.iter().all(Client::done)
                && self.engine.session_count() == 0
                && self.in_flight.is_empty();
            if done {
                return true;
            }
            self.now_us = self.next_time();
        }
        false
    }

    /// The byte streams each client sent (what the online server received).
    pub fn client_streams(&self) -> Vec<Vec<u8>> {
        self.clients.iter().map(|c| c.sent.clone()).collect()
    }
}

/// An IP packet cut to its IP and TCP headers, as intercept reports a reply.
pub fn headers_only(pkt: &[u8]) -> Vec<u8> {
    let ip_len = match pkt[0] >> 4 {
        4 => usize::from(pkt[0] & 0x0f) * 4,
        _ => 40,
    };
    let tcp_len = usize::from(pkt[ip_len + 12] >> 4) * 4;
    pkt[..(ip_len + tcp_len).min(pkt.len())].to_vec()
}
