//! The applications on the simulated hosts: scripted clients and a line-based server.
//!
//! Protocol: every request is a line ending in `\n`; the server answers each with one line of
//! `resp_len` bytes (its name and the line number, padded), optionally after a greeting line, and
//! optionally after a delay per line (lines answered out of order, as streams of a multiplexed
//! protocol are); a server that `abort_on_close` drops what it has not answered when the client
//! closes, as an HTTP/2 server does.

use std::collections::VecDeque;

use std::collections::HashMap;

use smoltcp::{
    iface::{Interface, SocketHandle, SocketSet},
    socket::tcp::{Socket, SocketBuffer, State},
    wire::IpEndpoint,
};

use super::{ONLINE, PORT};

fn socket() -> Socket<'static> {
    Socket::new(
        SocketBuffer::new(vec![0; 65536]),
        SocketBuffer::new(vec![0; 65536]),
    )
}

/// What one client connection does.
#[derive(Clone, Debug, Default)]
pub struct ClientScript {
    /// Requests, each ending in `\n`.
    pub requests: Vec<Vec<u8>>,
    /// Send every request at once instead of one per response.
    pub pipelined: bool,
    /// Wait for the server's greeting before the first request.
    pub wait_greeting: bool,
    /// Pause between a response and the next request.
    pub think_us: u64,
}

impl ClientScript {
    /// `n` small requests `GET /i`.
    pub fn requests(n: usize) -> Self {
        Self {
            requests: (0..n).map(|i| format!("GET /{i}\n").into_bytes()).collect(),
            ..Self::default()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Idle,
    Open,
    Closing,
    Done,
}

pub struct Client {
    handle: SocketHandle,
    script: ClientScript,
    port: u16,
    start_at: u64,
    phase: Phase,
    next: usize,
    pending: Vec<u8>,
    recv: Vec<u8>,
    lines: usize,
    ready_at: u64,
    /// Every byte this client sent, in order.
    pub sent: Vec<u8>,
}

impl Client {
    pub fn new(
        sockets: &mut SocketSet<'static>,
        script: ClientScript,
        port: u16,
        start_at: u64,
    ) -> Self {
        Self {
            handle: sockets.add(socket()),
            script,
            port,
            start_at,
            phase: Phase::Idle,
            next: 0,
            pending: Vec::new(),
            recv: Vec::new(),
            lines: 0,
            ready_at: 0,
            sent: Vec::new(),
        }
    }

    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// When this client next has something to do by itself.
    pub fn wakeup(&self, now: u64) -> Option<u64> {
        match self.phase {
            Phase::Idle => Some(self.start_at),
            Phase::Open if self.ready_at > now => Some(self.ready_at),
            _ => None,
        }
    }

    pub fn run(&mut self, now: u64, iface: &mut Interface, sockets: &mut SocketSet<'static>) {
        if now < self.start_at {
            return;
        }
        let s = sockets.get_mut::<Socket>(self.handle);
        match self.phase {
            Phase::Idle => {
                s.connect(iface.context(), (ONLINE, PORT), self.port)
                    .expect("connect");
                self.phase = Phase::Open;
            }
            Phase::Open => {
                if s.state() == State::Closed {
                    self.phase = Phase::Done;
                    return;
                }
                if !s.may_send() {
                    return;
                }
                let mut tmp = [0u8; 8192];
                while s.can_recv() {
                    let n = s.recv_slice(&mut tmp).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    let before = self.lines;
                    self.lines += tmp[..n].iter().filter(|b| **b == b'\n').count();
                    self.recv.extend_from_slice(&tmp[..n]);
                    if self.lines > before {
                        self.ready_at = now + self.script.think_us;
                    }
                }
                let greeting = usize::from(self.script.wait_greeting);
                let answered = self.lines.saturating_sub(greeting);
                if self.lines < greeting {
                    return;
                }
                while self.pending.is_empty()
                    && self.next < self.script.requests.len()
                    && (self.script.pipelined || (answered >= self.next && now >= self.ready_at))
                {
                    self.pending = self.script.requests[self.next].clone();
                    self.next += 1;
                    if !self.script.pipelined {
                        break;
                    }
                }
                while !self.pending.is_empty() {
                    let n = s.send_slice(&self.pending).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    self.sent.extend_from_slice(&self.pending[..n]);
                    self.pending.drain(..n);
                    if self.pending.is_empty()
                        && self.script.pipelined
                        && self.next < self.script.requests.len()
                    {
                        self.pending = self.script.requests[self.next].clone();
                        self.next += 1;
                    }
                }
                if self.next == self.script.requests.len()
                    && self.pending.is_empty()
                    && answered >= self.next
                {
                    s.close();
                    self.phase = Phase::Closing;
                }
            }
            Phase::Closing => {
                let mut tmp = [0u8; 4096];
                while s.can_recv() && s.recv_slice(&mut tmp).unwrap_or(0) > 0 {}
                if matches!(s.state(), State::Closed | State::TimeWait) {
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
    }
}

struct Conn {
    remote: IpEndpoint,
    rx: Vec<u8>,
    scanned: usize,
    lines: usize,
    greeted: bool,
    out: Vec<u8>,
    /// Answers not due yet: when, and the bytes.
    queued: VecDeque<(u64, Vec<u8>)>,
    answered: usize,
}

/// A line server: listens on `PORT` with a pool of sockets, answers every line.
pub struct Server {
    pub name: &'static str,
    pub resp_len: usize,
    pub greeting: Option<Vec<u8>>,
    /// Connections to accept at once.
    pub pool: usize,
    listeners: Vec<SocketHandle>,
    conns: HashMap<SocketHandle, Conn>,
    /// Ended connections: the remote endpoint and every byte received.
    pub finished: Vec<(IpEndpoint, Vec<u8>)>,
    /// Line `i` of a connection is answered `delay_us(i)` after it arrived.
    pub delay_us: fn(usize) -> u64,
    /// Drop the answers not yet sent when the client closes (and count them).
    pub abort_on_close: bool,
    /// Lines answered, and lines dropped by `abort_on_close`, over all connections.
    pub answered: usize,
    pub aborted: usize,
    /// Down from the first time to the second (a restart): every connection is reset at the
    /// start, nothing listens until the end (SYNs are answered with RSTs).
    pub down: Option<(u64, u64)>,
    was_down: bool,
    /// Close each connection (FIN) once this many lines are answered on it, as nginx's
    /// `keepalive_requests` does; later lines on it are read and never answered.
    pub close_after: Option<usize>,
    /// Every line answered, in the order read, over all connections.
    pub processed: Vec<Vec<u8>>,
}

impl Server {
    pub fn new(name: &'static str, resp_len: usize) -> Self {
        Self {
            name,
            resp_len,
            greeting: None,
            pool: 64,
            listeners: Vec::new(),
            conns: HashMap::new(),
            finished: Vec::new(),
            delay_us: |_| 0,
            abort_on_close: false,
            answered: 0,
            aborted: 0,
            down: None,
            was_down: false,
            close_after: None,
            processed: Vec::new(),
        }
    }

    /// When the next queued answer is due, or the server comes back up.
    pub fn wakeup(&self) -> Option<u64> {
        let back = self.down.map(|(_, until)| until).filter(|_| self.was_down);
        self.conns
            .values()
            .flat_map(|c| c.queued.iter().map(|(at, _)| *at))
            .chain(back)
            .min()
    }

    fn ensure_listening(&mut self, sockets: &mut SocketSet<'static>) {
        while self.listeners.len() < self.pool {
            let mut s = socket();
            s.listen(PORT).expect("listen");
            self.listeners.push(sockets.add(s));
        }
    }

    fn response(&self, line: usize) -> Vec<u8> {
        let mut r = format!("{}:{line}:", self.name).into_bytes();
        r.resize(self.resp_len.max(r.len() + 1) - 1, b'.');
        r.push(b'\n');
        r
    }

    /// While down: resets every connection once, listens to nothing. Returns whether down.
    fn restart(&mut self, now: u64, sockets: &mut SocketSet<'static>) -> bool {
        if !self
            .down
            .is_some_and(|(from, until)| now >= from && now < until)
        {
            self.was_down = false;
            return false;
        }
        if !self.was_down {
            self.was_down = true;
            for h in self.listeners.clone() {
                sockets.get_mut::<Socket>(h).abort();
                if let Some(c) = self.conns.remove(&h) {
                    self.finished.push((c.remote, c.rx));
                }
            }
        }
        true
    }

    pub fn run(&mut self, now: u64, sockets: &mut SocketSet<'static>) {
        if self.restart(now, sockets) {
            return;
        }
        self.ensure_listening(sockets);
        for h in self.listeners.clone() {
            let s = sockets.get_mut::<Socket>(h);
            match s.state() {
                State::Listen | State::SynReceived => {}
                State::Closed | State::TimeWait => {
                    if let Some(c) = self.conns.remove(&h) {
                        self.finished.push((c.remote, c.rx));
                    }
                    if s.state() == State::Closed {
                        s.listen(PORT).expect("listen");
                    }
                }
                state => {
                    let Some(remote) = s.remote_endpoint() else {
                        continue;
                    };
                    let greeting = self.greeting.clone();
                    let conn = self.conns.entry(h).or_insert_with(|| Conn {
                        remote,
                        rx: Vec::new(),
                        scanned: 0,
                        lines: 0,
                        greeted: false,
                        out: Vec::new(),
                        queued: VecDeque::new(),
                        answered: 0,
                    });
                    if !conn.greeted {
                        conn.greeted = true;
                        if let Some(g) = greeting {
                            conn.out.extend_from_slice(&g);
                        }
                    }
                    let mut tmp = [0u8; 16384];
                    while s.can_recv() {
                        let n = s.recv_slice(&mut tmp).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        conn.rx.extend_from_slice(&tmp[..n]);
                    }
                    let limit = self.close_after.unwrap_or(usize::MAX);
                    let mut new_lines = 0;
                    while conn.lines + new_lines < limit
                        && let Some(at) = conn.rx[conn.scanned..].iter().position(|b| *b == b'\n')
                    {
                        let end = conn.scanned + at + 1;
                        self.processed.push(conn.rx[conn.scanned..end].to_vec());
                        conn.scanned = end;
                        new_lines += 1;
                    }
                    let first = conn.lines;
                    conn.lines += new_lines;
                    let responses: Vec<(u64, Vec<u8>)> = (first..first + new_lines)
                        .map(|i| (now + (self.delay_us)(i), self.response(i)))
                        .collect();
                    let conn = self.conns.get_mut(&h).expect("conn");
                    conn.queued.extend(responses);
                    // Due answers go out in the order they fall due.
                    let mut due: Vec<(u64, Vec<u8>)> = Vec::new();
                    conn.queued.retain(|(at, r)| {
                        let ready = *at <= now;
                        if ready {
                            due.push((*at, r.clone()));
                        }
                        !ready
                    });
                    due.sort_by_key(|(at, _)| *at);
                    for (_, r) in due {
                        conn.out.extend_from_slice(&r);
                        conn.answered += 1;
                        self.answered += 1;
                    }
                    if state == State::CloseWait && self.abort_on_close {
                        // The client is gone: what is not answered yet never will be.
                        self.aborted += conn.queued.len();
                        conn.queued.clear();
                    }
                    while !conn.out.is_empty() {
                        let n = s.send_slice(&conn.out).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        conn.out.drain(..n);
                    }
                    let served = conn.lines >= limit;
                    if (state == State::CloseWait || served)
                        && conn.out.is_empty()
                        && conn.queued.is_empty()
                    {
                        s.close();
                    }
                }
            }
        }
    }

    /// Byte streams of every connection, ended or not.
    pub fn streams(&self) -> Vec<Vec<u8>> {
        self.finished
            .iter()
            .map(|(_, b)| b.clone())
            .chain(self.conns.values().map(|c| c.rx.clone()))
            .collect()
    }

    /// Remote endpoints of every connection.
    pub fn remotes(&self) -> Vec<IpEndpoint> {
        self.finished
            .iter()
            .map(|(r, _)| *r)
            .chain(self.conns.values().map(|c| c.remote))
            .collect()
    }
}
