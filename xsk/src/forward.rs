//! An AF_XDP forwarder on one queue, for measuring the packet path (`xsk-bench`): frames come
//! in on the RX ring and go back out on the TX ring of the same socket and UMEM, either in place
//! (the fastest an AF_XDP forwarder can be) or written anew into a transmit frame (what tcpcopy
//! does to each packet it replays).

use std::os::fd::RawFd;

use xdpilone::xdp::XdpDesc;

use crate::umem::{Bound, FRAME_SIZE, XskSetupError, frame_bytes};

/// How a received frame goes back out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// The received frame itself, as the callback left it.
    InPlace,
    /// A new frame the callback writes from the received one.
    Rewrite,
}

/// Frames per batch.
pub const BATCH: u32 = 64;

/// The forwarder's socket and frames: the UMEM's first half receives, the second half
/// transmits (in [`Forward::Rewrite`]).
pub struct Forwarder {
    bound: Bound,
    frames: u32,
    /// Transmit frames free (rewrite mode), as indices.
    free_tx: Vec<u32>,
    /// Receive frames to give back to the fill ring.
    refill: Vec<u64>,
    /// A round's received, to-send and completed descriptors (kept: no allocation per round).
    descs: Vec<XdpDesc>,
    sends: Vec<XdpDesc>,
    completed: Vec<u64>,
}

impl Forwarder {
    /// A socket with RX and TX rings on queue `queue` of `iface`, its receive frames on the fill
    /// ring.
    pub fn open(iface: &str, queue: u32, frames: u32) -> Result<Self, XskSetupError> {
        let mut bound = Bound::open(frames, iface, queue, true, true)?;
        let half = frames / 2;
        let mut fill = bound.device.fill(half);
        fill.insert((0..half).map(|i| u64::from(i) * u64::from(FRAME_SIZE)));
        fill.commit();
        drop(fill);
        Ok(Self {
            bound,
            frames,
            free_tx: (half..frames).collect(),
            refill: Vec::new(),
            descs: Vec::with_capacity(BATCH as usize),
            sends: Vec::with_capacity(BATCH as usize),
            completed: Vec::with_capacity(frames as usize),
        })
    }

    /// The socket's descriptor (for the `XSKS` map and for waiting).
    pub fn fd(&self) -> RawFd {
        self.bound.fd()
    }

    /// Receives a batch, hands each frame to `f` and sends what it returns, reaps completions;
    /// the frames sent that completed. `f` gets the received frame and, in
    /// [`Forward::Rewrite`], a transmit frame to write (an empty slice in place); it returns the
    /// length to send, or `None` to drop the frame.
    pub fn round(
        &mut self,
        how: Forward,
        mut f: impl FnMut(&mut [u8], &mut [u8]) -> Option<usize>,
    ) -> u64 {
        let Self {
            bound,
            frames,
            free_tx,
            refill,
            descs,
            sends,
            completed,
        } = self;
        let (Some(rx), Some(tx)) = (bound.rx.as_mut(), bound.tx.as_mut()) else {
            return 0;
        };
        descs.clear();
        sends.clear();
        completed.clear();
        let mut reader = rx.receive(BATCH);
        while let Some(d) = reader.read() {
            descs.push(d);
        }
        reader.release();
        drop(reader);
        for d in descs.iter() {
            let base = d.addr - d.addr % u64::from(FRAME_SIZE);
            // SAFETY: the kernel handed this frame to us on the RX ring and does not touch it
            // until we put it on the TX ring (in place) or back on the fill ring (rewrite); no
            // other borrow of it exists.
            let Some(frame) = (unsafe { frame_bytes(&bound.umem, d.addr, d.len as usize) }) else {
                continue;
            };
            match how {
                Forward::InPlace => match f(frame, &mut []) {
                    Some(len) if len > 0 && len <= d.len as usize => sends.push(XdpDesc {
                        len: u32::try_from(len).unwrap_or(0),
                        ..*d
                    }),
                    _ => refill.push(base),
                },
                Forward::Rewrite => {
                    refill.push(base);
                    let Some(t) = free_tx.pop() else {
                        continue;
                    };
                    let addr = u64::from(t) * u64::from(FRAME_SIZE);
                    // SAFETY: the transmit frame came off our free list: it is on no ring and
                    // nothing else borrows it; it differs from the received frame (the UMEM's
                    // other half).
                    let out = unsafe { frame_bytes(&bound.umem, addr, FRAME_SIZE as usize) }
                        .expect("a free frame lies within the UMEM");
                    match f(frame, out) {
                        Some(len) if len > 0 && len <= FRAME_SIZE as usize => {
                            sends.push(XdpDesc {
                                addr,
                                len: u32::try_from(len).unwrap_or(0),
                                options: 0,
                            });
                        }
                        _ => free_tx.push(t),
                    }
                }
            }
        }
        let n = u32::try_from(sends.len()).unwrap_or(0);
        if n > 0 {
            let mut w = tx.transmit(n);
            let put = w.insert(sends.iter().copied()) as usize;
            w.commit();
            drop(w);
            // What the ring could not take goes back where it came from.
            for d in &sends[put..] {
                give_back(how, d.addr, free_tx, refill);
            }
        }
        tx.wake();
        let mut c = bound.device.complete(*frames);
        while let Some(addr) = c.read() {
            completed.push(addr);
        }
        c.release();
        drop(c);
        for &addr in completed.iter() {
            give_back(how, addr, free_tx, refill);
        }
        let mut fill = bound.device.fill(u32::try_from(refill.len()).unwrap_or(0));
        let put = fill.insert(refill.iter().copied()) as usize;
        fill.commit();
        drop(fill);
        refill.drain(..put);
        completed.len() as u64
    }

    /// Waits up to `ms` milliseconds for frames to arrive.
    pub fn wait(&self, ms: i32) {
        let mut pfd = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that lives across the call; poll reads and writes
        // only it.
        unsafe {
            libc::poll(&raw mut pfd, 1, ms);
        }
    }
}

/// Where a frame goes once the kernel is done with it: a transmit frame back to the free ones
/// (rewrite), a received frame back to the fill ring (in place).
fn give_back(how: Forward, addr: u64, free_tx: &mut Vec<u32>, refill: &mut Vec<u64>) {
    let base = addr - addr % u64::from(FRAME_SIZE);
    match how {
        Forward::Rewrite => {
            if let Ok(idx) = u32::try_from(base / u64::from(FRAME_SIZE)) {
                free_tx.push(idx);
            }
        }
        Forward::InPlace => refill.push(base),
    }
}
