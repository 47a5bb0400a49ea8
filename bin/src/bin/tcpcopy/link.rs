//! Connections to the intercepts (`-s`, `-C` each): registrations out, reply headers in.
//!
//! Each connection is a task that connects, settles the protocol version (offering 7, settling
//! on 6 with an intercept that speaks only that), and then forwards the route changes the main
//! loop gives it and the replies it reads. A lost connection is retried with backoff
//! (100 ms doubling to 5 s), so an intercept restart needs no tcpcopy restart; on every
//! (re)connection the main loop registers all live sessions again.

use std::{net::SocketAddr, time::Duration};

use tcpcopy_proto::{ProtoError, Received, Secret, TcpcopyEnd, Unsendable, v7};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::mpsc,
    time::Instant,
};

/// What a connection task tells the main loop.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// Connected, speaking this protocol version.
    Connected(usize, u16),
    Disconnected(usize),
    /// A connection was given up before it could carry anything: the intercept refused this
    /// tcpcopy (no or a wrong shared secret, protocol version 6 where a secret is required) or
    /// broke the protocol.
    Refused,
    /// A reply's headers, with its payload when payloads were negotiated (`--compare`).
    Reply(Received),
}

/// A registration change for the intercept.
#[derive(Debug, Clone, Copy)]
pub enum Route {
    Register(SocketAddr, SocketAddr),
    Deregister(SocketAddr, SocketAddr),
}

/// One connection's sending side, held by the main loop.
pub struct Link {
    pub intercept: SocketAddr,
    /// The protocol version while connected.
    pub version: Option<u16>,
    tx: mpsc::Sender<Route>,
}

impl Link {
    /// Whether the connection can carry a registration of `client` (version 6: IPv4 only).
    pub fn carries(&self, client: SocketAddr) -> bool {
        match self.version {
            Some(6) => client.is_ipv4(),
            Some(_) => true,
            None => false,
        }
    }

    /// Queues a route change; returns false if the connection cannot take it now (it will be
    /// re-registered on reconnection).
    pub fn send(&self, route: Route) -> bool {
        self.version.is_some() && self.tx.try_send(route).is_ok()
    }
}

/// The control channel's settings (`-s`, `-C`, `--protocol`, `--secret-file`).
#[derive(Clone, Debug)]
pub struct Control {
    pub intercepts: Vec<SocketAddr>,
    /// Connections to each intercept.
    pub per_intercept: u16,
    /// Offer protocol version 7 unless this is 6.
    pub max_version: u16,
    pub secret: Option<Secret>,
    /// Ask for the replies' payloads (`--compare`; version 7, capability 4).
    pub payloads: bool,
}

/// Starts `per_intercept` connections to each intercept.
pub fn start(control: &Control, events: &mpsc::Sender<LinkEvent>) -> Vec<Link> {
    let Control {
        intercepts,
        per_intercept,
        max_version,
        secret,
        payloads,
    } = control;
    let caps = if *payloads {
        v7::CAPS | v7::CAP_PAYLOAD
    } else {
        v7::CAPS
    };
    let mut links = Vec::new();
    for &intercept in intercepts {
        for _ in 0..(*per_intercept).max(1) {
            let (tx, rx) = mpsc::channel(65536);
            let id = links.len();
            tokio::spawn(run(
                id,
                intercept,
                *max_version >= 7,
                secret.clone(),
                caps,
                rx,
                events.clone(),
            ));
            links.push(Link {
                intercept,
                version: None,
                tx,
            });
        }
    }
    links
}

/// Connects, with a timeout.
async fn connect(intercept: SocketAddr, warned: &mut bool) -> Option<TcpStream> {
    match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(intercept)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            if !*warned {
                log::warn!("intercept {intercept} unreachable ({e}); retrying");
                *warned = true;
            }
            None
        }
        Err(_) => {
            if !*warned {
                log::warn!("intercept {intercept}: connect timed out; retrying");
                *warned = true;
            }
            None
        }
    }
}

/// Says the version and settles it: version 7 if the intercept accepts the offer, 6 if it
/// answers in version 6 or not within the offer's timeout. `None` if the connection broke.
async fn negotiate(
    stream: &mut TcpStream,
    end: &mut TcpcopyEnd,
    buf: &mut [u8],
    warned: &mut bool,
) -> Result<u16, bool> {
    loop {
        if let Some(b) = end.poll_transmit() {
            stream.write_all(&b).await.map_err(|_| false)?;
        }
        if let Some(v) = end.version() {
            // The proof (if asked for) goes with the first registrations; a refused one shows
            // as the connection closing.
            return Ok(v);
        }
        let deadline = end
            .poll_timeout()
            .map_or_else(Instant::now, Instant::from_std);
        tokio::select! {
            n = stream.read(buf) => {
                let n = n.map_err(|_| false)?;
                if n == 0 {
                    return Err(true);
                }
                if let Err(e) = end.handle_input(&buf[..n]) {
                    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                    if e == ProtoError::SecretRequired {
                        if !*warned {
                            log::error!("intercept {peer}: {e}; retrying");
                            *warned = true;
                        }
                    } else {
                        log::warn!("intercept {peer}: {e}");
                    }
                    return Err(true);
                }
            }
            () = tokio::time::sleep_until(deadline) => end.handle_timeout(std::time::Instant::now()),
        }
    }
}

async fn run(
    id: usize,
    intercept: SocketAddr,
    offer_v7: bool,
    secret: Option<Secret>,
    caps: u32,
    mut rx: mpsc::Receiver<Route>,
    events: mpsc::Sender<LinkEvent>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    let mut buf = vec![0u8; 65536];
    loop {
        let Some(mut stream) = connect(intercept, &mut warned).await else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut end =
            TcpcopyEnd::offering(std::time::Instant::now(), offer_v7, secret.clone(), caps);
        let version = match negotiate(&mut stream, &mut end, &mut buf, &mut warned).await {
            Ok(v) => v,
            Err(refused) => {
                if refused && events.send(LinkEvent::Refused).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        log::info!("connected to intercept {intercept} (link {id}, protocol version {version})");
        if caps & v7::CAP_PAYLOAD != 0 && !end.payloads() {
            log::warn!(
                "intercept {intercept} (link {id}) sends no reply payloads (protocol version 6, or an intercept without them): --compare cannot compare the sessions it carries"
            );
        }
        warned = false;
        backoff = Duration::from_millis(100);
        // Records queued while disconnected are stale: the main loop re-registers everything.
        while rx.try_recv().is_ok() {}
        if events
            .send(LinkEvent::Connected(id, version))
            .await
            .is_err()
        {
            return;
        }
        if serve(&mut stream, &mut end, &mut rx, &events, &mut buf)
            .await
            .is_none()
        {
            return;
        }
        log::warn!("lost the connection to intercept {intercept} (link {id}); reconnecting");
        if events.send(LinkEvent::Disconnected(id)).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Carries route changes out and replies in until the connection breaks (`Some`) or the main
/// loop is gone (`None`).
async fn serve(
    stream: &mut TcpStream,
    end: &mut TcpcopyEnd,
    rx: &mut mpsc::Receiver<Route>,
    events: &mpsc::Sender<LinkEvent>,
    buf: &mut [u8],
) -> Option<()> {
    let (mut rd, mut wr) = stream.split();
    // Replies that came with the accept.
    loop {
        match end.poll_reply() {
            Ok(Some(h)) => events.send(LinkEvent::Reply(h)).await.ok()?,
            Ok(None) => break,
            Err(_) => return Some(()),
        }
    }
    loop {
        tokio::select! {
            n = rd.read(buf) => {
                let Ok(n) = n else { return Some(()) };
                if n == 0 || end.handle_input(&buf[..n]).is_err() {
                    return Some(());
                }
                loop {
                    match end.poll_reply() {
                        Ok(Some(h)) => events.send(LinkEvent::Reply(h)).await.ok()?,
                        Ok(None) => break,
                        Err(e) => {
                            log::warn!("intercept sent {e}; reconnecting");
                            return Some(());
                        }
                    }
                }
            }
            route = rx.recv() => {
                let route = route?;
                let mut pending = Some(route);
                let mut n = 0;
                while let Some(r) = pending.take() {
                    let done = match r {
                        Route::Register(c, t) => end.register(c, t),
                        Route::Deregister(c, t) => end.deregister(c, t),
                    };
                    if let Err(e @ (Unsendable::Ipv6OverVersion6 | Unsendable::MixedFamilies)) = done {
                        log::debug!("route {r:?} not sent: {e}");
                    }
                    n += 1;
                    if n < 1024 {
                        pending = rx.try_recv().ok();
                    }
                }
                if let Some(b) = end.poll_transmit()
                    && wr.write_all(&b).await.is_err()
                {
                    return Some(());
                }
            }
        }
    }
}
