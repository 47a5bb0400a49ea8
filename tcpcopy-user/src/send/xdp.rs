//! Sending replayed packets through an AF_XDP socket (xdpilone): complete Ethernet frames written
//! into a UMEM and handed to the driver's transmit ring, bypassing the kernel's IP stack.
//!
//! This is the thin ring layer: the only `unsafe` of tcpcopy lives here, each block explained.

use std::{net::Ipv4Addr, time::Duration};

use xdpilone::{BufIdx, DeviceQueue, RingTx, Umem, User, xdp::XdpDesc};

use tcpcopy_common::neigh;
use tcpcopy_common::xsk::{self, Area, FRAME_SIZE, XskMode, XskSetupError};

/// Frames in the UMEM.
const FRAMES: u32 = 4096;

/// Why the AF_XDP sender could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("no IPv4 route to {0}")]
    NoRoute(Ipv4Addr),
    #[error("cannot read the MAC address of {0}")]
    NoMac(String),
    #[error("the next hop {0} on {1} did not answer ARP")]
    Unresolved(Ipv4Addr, String),
    #[error(
        "{0} has {1} transmit queue(s): none left for worker {2} (fewer workers, or more queues)"
    )]
    NoQueue(String, u32, u32),
    #[error(transparent)]
    Socket(#[from] XskSetupError),
}

/// An AF_XDP transmit socket on the interface that routes to the target.
pub struct XskSender {
    // Field order is drop order: rings, socket and UMEM before the memory they use.
    tx: RingTx,
    _user: User,
    device: DeviceQueue,
    umem: Umem,
    _area: Area,
    free: Vec<u32>,
    batch: Vec<XdpDesc>,
    /// Ethernet header per destination: the next hop's MAC, ours, IPv4.
    headers: Vec<(Ipv4Addr, [u8; 14])>,
    pub iface: String,
    pub queue: u32,
    pub mode: XskMode,
    pub errors: u64,
}

impl XskSender {
    /// Opens a sender for packets to `targets` (IPv4): finds the first one's route, resolves the
    /// next hop's MAC of every target routed through the same interface, creates the UMEM and a
    /// socket on queue `queue` of that interface (zero-copy if the driver allows, copy mode
    /// otherwise).
    pub fn new(targets: &[Ipv4Addr], queue: u32) -> Result<Self, XskError> {
        let first = *targets
            .first()
            .ok_or(XskError::NoRoute(Ipv4Addr::UNSPECIFIED))?;
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
            let mut header = [0u8; 14];
            header[..6].copy_from_slice(&dst);
            header[6..12].copy_from_slice(&src);
            header[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            headers.push((t, header));
        }

        let queues = tcpcopy_common::xsk_rx::tx_queues(&route.iface);
        if queue >= queues {
            return Err(XskError::NoQueue(route.iface, queues, queue));
        }
        let mut area = Area::new(FRAMES);
        let bound = xsk::open(&mut area, &route.iface, queue, false, true)?;
        let tx = bound.tx.expect("asked for a TX ring");
        Ok(Self {
            tx,
            _user: bound.user,
            device: bound.device,
            umem: bound.umem,
            _area: area,
            free: (0..FRAMES).rev().collect(),
            batch: Vec::with_capacity(256),
            headers,
            iface: route.iface,
            queue,
            mode: bound.mode,
            errors: 0,
        })
    }

    /// Whether packets to `dst` go through this socket.
    pub fn serves(&self, dst: Ipv4Addr) -> bool {
        self.headers.iter().any(|(t, _)| *t == dst)
    }

    /// Queues one IPv4 packet to `dst` (sent at the next `flush`); counts it as an error when no
    /// frame is free (callers ask [`Self::has_room`] first).
    pub fn send(&mut self, dst: Ipv4Addr, packet: &[u8]) {
        let Some(&(_, header)) = self.headers.iter().find(|(t, _)| *t == dst) else {
            self.errors += 1;
            return;
        };
        if self.free.is_empty() {
            self.flush();
        }
        let Some(idx) = self.free.pop() else {
            self.errors += 1;
            return;
        };
        let len = header.len() + packet.len();
        let Some(frame) = self.umem.frame(BufIdx(idx)) else {
            self.errors += 1;
            return;
        };
        if len > FRAME_SIZE as usize {
            self.free.push(idx);
            self.errors += 1;
            return;
        }
        // SAFETY: the frame was on our free list, so the kernel neither reads nor writes it until
        // we put its descriptor on the TX ring; `frame.addr` covers FRAME_SIZE bytes of the UMEM.
        #[allow(unsafe_code)]
        let buf = unsafe { &mut *frame.addr.as_ptr() };
        buf[..14].copy_from_slice(&header);
        buf[14..len].copy_from_slice(packet);
        self.batch.push(XdpDesc {
            addr: frame.offset,
            len: u32::try_from(len).unwrap_or(0),
            options: 0,
        });
    }

    /// Whether a frame is free for the next packet (after taking back what the driver is done
    /// with). The caller holds its packets back while there is none: a packet is never dropped
    /// for want of room, it waits.
    pub fn has_room(&mut self) -> bool {
        if self.free.is_empty() {
            self.flush();
        }
        !self.free.is_empty()
    }

    /// Hands the queued frames to the driver, wakes it until it has taken them (in copy mode
    /// each wake-up sends a few dozen frames) or stops making progress, and takes back the
    /// completed frames. Frames the ring has no room for stay queued for the next flush.
    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            let n = u32::try_from(self.batch.len()).unwrap_or(u32::MAX);
            let mut writer = self.tx.transmit(n);
            let sent = writer.insert(self.batch.iter().copied()) as usize;
            writer.commit();
            drop(writer);
            self.batch.drain(..sent);
        }
        let mut pending = self.tx.pending();
        while pending > 0 {
            // Copy mode sends only from within a wake-up call, whatever the flag says.
            if self.mode == XskMode::Copy || self.tx.needs_wakeup() {
                self.tx.wake();
            }
            let now = self.tx.pending();
            if now >= pending {
                break;
            }
            pending = now;
        }
        self.reap();
    }

    /// Returns completed frames to the free list.
    fn reap(&mut self) {
        let mut reader = self.device.complete(FRAMES);
        while let Some(addr) = reader.read() {
            self.free
                .push(u32::try_from(addr / u64::from(FRAME_SIZE)).unwrap_or(0));
        }
        reader.release();
    }
}
