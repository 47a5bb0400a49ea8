//! Sending replayed packets through an AF_XDP socket: the engine writes each IP packet straight
//! into a UMEM frame behind the Ethernet header of its next hop, and the frame goes to the
//! driver's transmit ring, bypassing the kernel's IP stack. The ring work is `tcpcopy_xsk::tx`'s.

use std::{net::IpAddr, time::Duration};

use tcpcopy_engine::Transmit;
use tcpcopy_wire::ethernet::{self, HEADER_LEN as ETH_LEN};

use tcpcopy_host::neigh;
use tcpcopy_xsk::{
    tx::{TxFrame, TxQueue},
    umem::{FRAME_SIZE, XskMode, XskSetupError},
};

/// Why the AF_XDP sender could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("no route to {0}")]
    NoRoute(IpAddr),
    #[error("no target to send to")]
    NoTarget,
    #[error("cannot read the MAC address of {0}")]
    NoMac(String),
    #[error("the next hop {0} on {1} did not answer ARP or neighbour discovery")]
    Unresolved(IpAddr, String),
    #[error(
        "{0} has {1} transmit queue(s): none left for worker {2} (fewer workers, or more queues)"
    )]
    NoQueue(String, u32, u32),
    #[error(transparent)]
    Socket(#[from] XskSetupError),
}

/// An AF_XDP transmit queue on the interface that routes to the targets, with the Ethernet
/// header of each target.
pub struct XskSender {
    queue: TxQueue,
    /// Ethernet header per destination: the next hop's MAC, ours, the ethertype.
    headers: Vec<(IpAddr, [u8; ETH_LEN])>,
    pub errors: u64,
}

impl XskSender {
    /// Opens a sender for packets to `targets` (IPv4 and IPv6): finds the first one's route,
    /// resolves the next hop's MAC of every target routed through the same interface (ARP or
    /// neighbour discovery), and opens a transmit
    /// queue on queue `queue` of that interface (zero-copy if the driver allows, copy mode
    /// otherwise). Packets longer than [`Self::max_packet`] do not fit a frame.
    pub fn new(targets: &[IpAddr], queue: u32) -> Result<Self, XskError> {
        let first = *targets.first().ok_or(XskError::NoTarget)?;
        let route = neigh::route(first).ok_or(XskError::NoRoute(first))?;
        let src =
            neigh::iface_mac(&route.iface).ok_or_else(|| XskError::NoMac(route.iface.clone()))?;
        let mut headers = Vec::new();
        for &t in targets {
            let Some(r) = neigh::route(t).filter(|r| r.iface == route.iface) else {
                continue;
            };
            let dst = neigh::resolve(&r, Duration::from_secs(3))
                .ok_or_else(|| XskError::Unresolved(r.next_hop, r.iface.clone()))?;
            headers.push((t, ethernet::header(dst, src, t)));
        }
        let queues = tcpcopy_host::iface::tx_queues(&route.iface);
        if queue >= queues {
            return Err(XskError::NoQueue(route.iface, queues, queue));
        }
        Ok(Self {
            queue: TxQueue::open(&route.iface, queue, TxQueue::FRAMES)?,
            headers,
            errors: 0,
        })
    }

    /// The longest IP packet a frame holds behind the Ethernet header.
    pub const fn max_packet() -> u16 {
        #[expect(clippy::cast_possible_truncation, reason = "4096 - 14 fits")]
        let n = (FRAME_SIZE as usize - ETH_LEN) as u16;
        n
    }

    pub fn mode(&self) -> XskMode {
        self.queue.mode()
    }

    pub fn iface(&self) -> &str {
        self.queue.iface()
    }

    pub fn queue(&self) -> u32 {
        self.queue.queue()
    }

    /// Whether packets to `dst` go through this socket.
    pub fn serves(&self, dst: IpAddr) -> bool {
        self.headers.iter().any(|(t, _)| *t == dst)
    }

    /// Lets `emit` write the next IP packet into a free frame (behind room for the Ethernet
    /// header; it says where the packet goes and how long it is, `None` when it has none) and
    /// queues the frame; a packet to a destination this socket does not serve goes to
    /// `elsewhere` instead. `None` when `emit` had nothing or no frame was free.
    pub fn emit(
        &mut self,
        emit: impl FnOnce(&mut [u8]) -> Option<Transmit>,
        elsewhere: impl FnOnce(&[u8], Transmit),
    ) -> Option<()> {
        let Self {
            queue,
            headers,
            errors,
        } = self;
        let mut frame: TxFrame<'_> = queue.frame()?;
        let buf = frame.buf();
        let tx = emit(&mut buf[ETH_LEN..])?;
        let n = tx.size;
        let dst = tx.destination.ip();
        let header = headers.iter().find_map(|(t, h)| (*t == dst).then_some(*h));
        match header {
            Some(header) => {
                buf[..ETH_LEN].copy_from_slice(&header);
                if !frame.send(ETH_LEN + n) {
                    *errors += 1;
                }
            }
            // The frame goes back to the free ones when dropped.
            None => elsewhere(&buf[ETH_LEN..ETH_LEN + n], tx),
        }
        Some(())
    }

    /// Whether a frame is free for the next packet (after taking back what the driver is done
    /// with). The caller holds its packets back while there is none: a packet is never dropped
    /// for want of room, it waits.
    pub fn has_room(&mut self) -> bool {
        self.queue.has_room()
    }

    /// Hands the written frames to the driver and takes back the completed ones.
    pub fn flush(&mut self) {
        self.queue.flush();
    }
}
