//! Sending replayed packets: a raw IP socket (`--send raw`), the kernel routes them.

use std::{
    io,
    net::{IpAddr, SocketAddr},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// IPPROTO_RAW: the packets carry their own IP header.
const IPPROTO_RAW: i32 = 255;

/// Sends complete IP packets; counts what the kernel refused.
pub struct RawSender {
    v4: Option<Socket>,
    v6: Option<Socket>,
    pub sent: u64,
    pub errors: u64,
}

fn raw(domain: Domain) -> io::Result<Socket> {
    let s = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))?;
    s.set_nonblocking(true)?;
    // Bursts of replayed segments should not be dropped by a small buffer.
    let _ = s.set_send_buffer_size(8 << 20);
    Ok(s)
}

impl RawSender {
    /// Opens raw sockets for the families in use.
    pub fn new(v4: bool, v6: bool) -> io::Result<Self> {
        Ok(Self {
            v4: if v4 { Some(raw(Domain::IPV4)?) } else { None },
            v6: if v6 { Some(raw(Domain::IPV6)?) } else { None },
            sent: 0,
            errors: 0,
        })
    }

    /// Sends one IP packet to `dst` (its destination address).
    pub fn send(&mut self, packet: &[u8], dst: IpAddr) {
        let sock = match dst {
            IpAddr::V4(_) => self.v4.as_ref(),
            IpAddr::V6(_) => self.v6.as_ref(),
        };
        let Some(sock) = sock else {
            self.errors += 1;
            return;
        };
        match sock.send_to(packet, &SockAddr::from(SocketAddr::new(dst, 0))) {
            Ok(_) => self.sent += 1,
            Err(e) => {
                if self.errors == 0 {
                    log::warn!(
                        "sending a replayed packet to {dst} failed: {e} (counted as send_errors; the engine retransmits)"
                    );
                }
                self.errors += 1;
            }
        }
    }
}
