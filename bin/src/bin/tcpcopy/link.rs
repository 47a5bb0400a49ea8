//! Connections to the intercepts (`-s`, `-C` each): registrations out, reply headers in.
//!
//! Each connection is a task that connects, says the protocol version, and then forwards what
//! the main loop gives it and the records it reads. A lost connection is retried with backoff
//! (100 ms doubling to 5 s), so an intercept restart needs no tcpcopy restart; on every
//! (re)connection the main loop registers all live sessions again.

use std::{net::SocketAddr, time::Duration};

use tcpcopy_proto::{BatchDecoder, ClientRecord, RESPONSE_RECORD_LEN};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::mpsc,
};

/// What a connection task tells the main loop.
#[derive(Debug, Clone, Copy)]
pub enum LinkEvent {
    Connected(usize),
    Disconnected(usize),
    Reply([u8; RESPONSE_RECORD_LEN]),
}

/// One connection's sending side, held by the main loop.
pub struct Link {
    pub intercept: SocketAddr,
    pub connected: bool,
    tx: mpsc::Sender<ClientRecord>,
}

impl Link {
    /// Queues a record; returns false if the connection cannot take it now (it will be
    /// re-registered on reconnection).
    pub fn send(&self, record: ClientRecord) -> bool {
        self.connected && self.tx.try_send(record).is_ok()
    }
}

/// Starts `per_intercept` connections to each intercept.
pub fn start(
    intercepts: &[SocketAddr],
    per_intercept: u16,
    events: &mpsc::Sender<LinkEvent>,
) -> Vec<Link> {
    let mut links = Vec::new();
    for &intercept in intercepts {
        for _ in 0..per_intercept.max(1) {
            let (tx, rx) = mpsc::channel(65536);
            let id = links.len();
            tokio::spawn(run(id, intercept, rx, events.clone()));
            links.push(Link {
                intercept,
                connected: false,
                tx,
            });
        }
    }
    links
}

async fn run(
    id: usize,
    intercept: SocketAddr,
    mut rx: mpsc::Receiver<ClientRecord>,
    events: mpsc::Sender<LinkEvent>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let stream =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(intercept)).await;
        let mut stream = match stream {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                if !warned {
                    log::warn!("intercept {intercept} unreachable ({e}); retrying");
                    warned = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(_) => {
                if !warned {
                    log::warn!("intercept {intercept}: connect timed out; retrying");
                    warned = true;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if stream
            .write_all(&ClientRecord::version().encode())
            .await
            .is_err()
        {
            continue;
        }
        log::info!("connected to intercept {intercept} (link {id})");
        warned = false;
        backoff = Duration::from_millis(100);
        // Records queued while disconnected are stale: the main loop re-registers everything.
        while rx.try_recv().is_ok() {}
        if events.send(LinkEvent::Connected(id)).await.is_err() {
            return;
        }
        let (mut rd, mut wr) = stream.into_split();
        let mut decoder = BatchDecoder::default();
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::with_capacity(14 * 1024);
        loop {
            tokio::select! {
                n = rd.read(&mut buf) => {
                    let Ok(n) = n else { break };
                    if n == 0 {
                        break;
                    }
                    decoder.feed(&buf[..n]);
                    while let Some(rec) = decoder.next_record() {
                        if events.send(LinkEvent::Reply(rec)).await.is_err() {
                            return;
                        }
                    }
                }
                rec = rx.recv() => {
                    let Some(rec) = rec else { return };
                    out.clear();
                    out.extend_from_slice(&rec.encode());
                    while let Ok(more) = rx.try_recv() {
                        out.extend_from_slice(&more.encode());
                        if out.len() >= 14 * 1024 {
                            break;
                        }
                    }
                    if wr.write_all(&out).await.is_err() {
                        break;
                    }
                }
            }
        }
        log::warn!("lost the connection to intercept {intercept} (link {id}); reconnecting");
        if events.send(LinkEvent::Disconnected(id)).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
    }
}
