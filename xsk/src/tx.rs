//! Transmitting through an AF_XDP socket bound to one queue: the caller writes each packet
//! straight into a free UMEM frame ([`TxQueue::frame`]), sends it with its length, and
//! [`TxQueue::flush`] hands the batch to the driver and takes back the frames it is done with.
//!
//! A frame is the caller's only while it holds the [`TxFrame`], which borrows the queue: no two
//! frames are written at once, and a frame is never written while the kernel may read it.

use xdpilone::xdp::XdpDesc;

use crate::umem::{Bound, FRAME_SIZE, XskMode, XskSetupError, frame_bytes};

/// An AF_XDP transmit socket with its UMEM: frames free for writing, and frames written but
/// not yet on the TX ring.
pub struct TxQueue {
    bound: Bound,
    /// Frames neither on the TX ring nor awaiting completion (indices).
    free: Vec<u32>,
    /// Frames written, waiting for the next flush.
    batch: Vec<XdpDesc>,
    iface: String,
    queue: u32,
}

impl TxQueue {
    /// UMEM frames of a transmit queue, unless a caller has reason for another number.
    pub const FRAMES: u32 = 4096;

    /// A transmit socket with `frames` UMEM frames on queue `queue` of `iface` (zero-copy if
    /// the driver allows, copy mode otherwise).
    pub fn open(iface: &str, queue: u32, frames: u32) -> Result<Self, XskSetupError> {
        let bound = Bound::open(frames, iface, queue, false, true)?;
        Ok(Self {
            free: (0..bound.frames()).rev().collect(),
            batch: Vec::with_capacity(256),
            bound,
            iface: iface.to_owned(),
            queue,
        })
    }

    pub fn mode(&self) -> XskMode {
        self.bound.mode()
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// A free frame to write one packet into, or `None` while every frame is in flight (after
    /// taking back what the driver has completed).
    pub fn frame(&mut self) -> Option<TxFrame<'_>> {
        if !self.has_room() {
            return None;
        }
        let idx = self.free.pop()?;
        Some(TxFrame {
            queue: self,
            idx: Some(idx),
        })
    }

    /// Whether a frame is free (after taking back what the driver is done with).
    pub fn has_room(&mut self) -> bool {
        if self.free.is_empty() {
            self.flush();
        }
        !self.free.is_empty()
    }

    /// Hands the written frames to the driver, wakes it until it has taken them (in copy mode
    /// each wake-up sends a few dozen frames) or stops making progress, and takes back the
    /// completed frames (how many). Frames the ring has no room for stay queued for the next
    /// flush.
    pub fn flush(&mut self) -> usize {
        let copy_mode = self.bound.mode() == XskMode::Copy;
        let Some(tx) = self.bound.tx.as_mut() else {
            return 0;
        };
        if !self.batch.is_empty() {
            let n = u32::try_from(self.batch.len()).unwrap_or(u32::MAX);
            let mut writer = tx.transmit(n);
            let sent = writer.insert(self.batch.iter().copied()) as usize;
            writer.commit();
            drop(writer);
            self.batch.drain(..sent);
        }
        let mut pending = tx.pending();
        while pending > 0 {
            // Copy mode sends only from within a wake-up call, whatever the flag says.
            if copy_mode || tx.needs_wakeup() {
                tx.wake();
            }
            let now = tx.pending();
            if now >= pending {
                break;
            }
            pending = now;
        }
        let frames = self.bound.frames();
        let mut reader = self.bound.device.complete(frames);
        let mut completed = 0;
        while let Some(addr) = reader.read() {
            // Only addresses of our frames come back; anything else is not ours to reuse.
            if let Ok(idx) = u32::try_from(addr / u64::from(FRAME_SIZE))
                && idx < frames
            {
                self.free.push(idx);
                completed += 1;
            }
        }
        reader.release();
        completed
    }
}

/// One free frame of a [`TxQueue`], the caller's to write until it sends it; dropped unsent, it
/// goes back to the free frames.
#[must_use = "a frame that is not sent goes back to the free frames"]
pub struct TxFrame<'a> {
    queue: &'a mut TxQueue,
    idx: Option<u32>,
}

impl TxFrame<'_> {
    /// The frame's bytes ([`FRAME_SIZE`] of them).
    pub fn buf(&mut self) -> &mut [u8] {
        let idx = self.idx.expect("an unsent frame has its index");
        let addr = u64::from(idx) * u64::from(FRAME_SIZE);
        // SAFETY: the frame came off the free list, so it is on neither the TX ring nor the
        // completion ring and the kernel does not read it; `self` borrows the queue mutably, so
        // no other `TxFrame` (or this one's earlier `buf`) can reach it meanwhile.
        unsafe { frame_bytes(&self.queue.bound.umem, addr, FRAME_SIZE as usize) }
            .expect("a free frame lies within the UMEM")
    }

    /// Queues the frame's first `len` bytes for the next [`TxQueue::flush`]. A `len` of zero
    /// or over [`FRAME_SIZE`] sends nothing and returns the frame; `false` then.
    pub fn send(mut self, len: usize) -> bool {
        let idx = self.idx.take().expect("an unsent frame has its index");
        match u32::try_from(len) {
            Ok(n) if n > 0 && n <= FRAME_SIZE => {
                self.queue.batch.push(XdpDesc {
                    addr: u64::from(idx) * u64::from(FRAME_SIZE),
                    len: n,
                    options: 0,
                });
                true
            }
            _ => {
                self.queue.free.push(idx);
                false
            }
        }
    }
}

impl Drop for TxFrame<'_> {
    fn drop(&mut self) {
        if let Some(idx) = self.idx.take() {
            self.queue.free.push(idx);
        }
    }
}
