//! Receiving the frames an XDP program redirects into AF_XDP sockets, one per receive queue:
//! tcpcopy `--mirror` (a mirror/tap port's copies) and intercept (the test server's replies).

use std::{
    io,
    os::fd::{AsRawFd, RawFd},
    task::{Context, Poll},
};

use std::vec::Vec;

use aya::maps::{MapData, XskMap};
use tokio::io::unix::AsyncFd;

use tcpcopy_abi::maps::{XSK_META_LEN, XSKS, xsk_meta_time};

use crate::{
    program::XdpProgram,
    umem::{Bound, FRAME_SIZE, XskMode, frame_bytes},
};

/// A socket's descriptor, for readiness only (the socket itself is owned by `User`).
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// One receive queue's socket. Field order is drop order: the readiness registration, the rings
/// and the socket before the UMEM, the UMEM before its memory.
struct Queue {
    ready: AsyncFd<Fd>,
    rings: Rings,
}

/// A queue's socket with its RX ring, UMEM and memory.
struct Rings {
    bound: Bound,
    /// Frames read and not yet back on the fill ring.
    returned: Vec<u64>,
}

/// The AF_XDP receive sockets of every queue of an interface.
pub struct XskRx {
    queues: Vec<Queue>,
    pub mode: XskMode,
    /// Frames that came without the kernel's time in their metadata (see
    /// `maps::XSK_META_LEN`), timed when read from the RX ring instead.
    unstamped: u64,
}

/// Takes the program's `XSKS` map out of it, for workers that bind their queues' sockets on
/// their own threads.
pub fn take_xsks(program: &mut XdpProgram) -> anyhow::Result<XskMap<MapData>> {
    let map = program
        .ebpf_mut()
        .take_map(XSKS)
        .ok_or_else(|| anyhow::anyhow!("no {XSKS} map in the object"))?;
    Ok(XskMap::try_from(map)?)
}

impl XskRx {
    /// Binds a socket on each of `queues` of `iface` with `frames` UMEM frames (and RX and fill
    /// rings that hold them all) and enters it into `xsks`.
    pub fn bind(
        xsks: &mut XskMap<MapData>,
        iface: &str,
        queues: impl IntoIterator<Item = u32>,
        frames: u32,
    ) -> anyhow::Result<Self> {
        let mut sockets = Vec::new();
        let mut mode = XskMode::ZeroCopy;
        let mut n = 0;
        for q in queues {
            n += 1;
            let mut bound = Bound::open(frames, iface, q, true, false)?;
            if bound.mode() == XskMode::Copy {
                mode = XskMode::Copy;
            }
            let mut fill = bound.device.fill(frames);
            fill.insert((0..u64::from(frames)).map(|i| i * u64::from(FRAME_SIZE)));
            fill.commit();
            drop(fill);
            xsks.set(q, bound.fd(), 0)?;
            // SAFETY: the descriptor belongs to `bound`, stored in the same `Queue` and dropped
            // after `ready` (field order), so it stays open while registered.
            let ready = unsafe { AsyncFd::register(Fd(bound.fd())) }
                .map_err(|e| anyhow::anyhow!("registering queue {q}: {e}"))?;
            sockets.push(Queue {
                ready,
                rings: Rings {
                    bound,
                    returned: Vec::with_capacity(frames as usize),
                },
            });
        }
        log::info!(
            "{iface}: AF_XDP receive sockets on {n} queue(s), {}",
            if mode == XskMode::ZeroCopy {
                "zero-copy"
            } else {
                "copy mode (the driver has no zero-copy AF_XDP)"
            }
        );
        Ok(Self {
            queues: sockets,
            mode,
            unstamped: 0,
        })
    }

    /// Frames read so far that carried no kernel time in their metadata (timed when read).
    pub fn unstamped(&self) -> u64 {
        self.unstamped
    }

    /// Frames the kernel could not hand to these sockets so far: their RX ring was full, or
    /// their fill ring had no free frame (the reader fell behind). Read from the sockets'
    /// `XDP_STATISTICS`; a socket whose statistics cannot be read counts nothing.
    pub fn dropped(&self) -> u64 {
        self.queues
            .iter()
            .filter_map(|q| q.rings.bound.device.statistics_v2().ok())
            .map(|st| st.rx_dropped + st.rx_ring_full)
            .sum()
    }

    /// Hands up to `max` frames of each queue already on its RX ring to `f`, as
    /// [`Self::poll_read`] does, without waiting for the socket's readiness (the sweep: a frame
    /// whose wake-up was missed is not left on the ring).
    pub fn read_now(&mut self, max: u32, f: &mut impl FnMut(u64, &[u8])) -> usize {
        self.queues
            .iter_mut()
            .map(|q| q.rings.drain(max, &mut self.unstamped, f))
            .sum()
    }

    /// Hands up to `max` received frames (Ethernet) of each ready queue to `f` with each one's
    /// time (`CLOCK_MONOTONIC` nanoseconds): the kernel's, where the XDP program wrote it into
    /// the frame's metadata (tcpcopy `--mirror --compare`), else the time the frame is taken
    /// from the RX ring. `Pending` (with the task woken later) when no queue has any.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        max: u32,
        f: &mut impl FnMut(u64, &[u8]),
    ) -> Poll<io::Result<usize>> {
        let mut got = 0;
        for q in &mut self.queues {
            let mut guard = match q.ready.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => continue,
            };
            let n = q.rings.drain(max, &mut self.unstamped, f);
            if n < max as usize {
                guard.clear_ready();
            }
            got += n;
        }
        if got > 0 {
            Poll::Ready(Ok(got))
        } else {
            Poll::Pending
        }
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (the clock of `bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    // `Instant` reads CLOCK_MONOTONIC on Linux but hides its value; read it directly.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// A received frame's time: the kernel's from the [`XSK_META_LEN`] bytes before the frame when
/// they carry the mark (which is then cleared: the frame goes back to the kernel, and a later
/// frame in it without metadata must not be taken for stamped), else `now` (read once per
/// batch, when first needed); counts those in `unstamped`.
fn frame_time(before: Option<&mut [u8]>, now: &mut Option<u64>, unstamped: &mut u64) -> u64 {
    if let Some(meta) = before.and_then(|b| <&mut [u8; XSK_META_LEN]>::try_from(b).ok())
        && let Some(ts) = xsk_meta_time(meta)
    {
        meta.fill(0);
        return ts;
    }
    *unstamped += 1;
    *now.get_or_insert_with(monotonic_ns)
}

impl Rings {
    fn drain(&mut self, max: u32, unstamped: &mut u64, f: &mut impl FnMut(u64, &[u8])) -> usize {
        let mut n = 0;
        let Rings { bound, returned } = self;
        let Some(rx) = bound.rx.as_mut() else {
            return 0;
        };
        let mut now = None;
        let mut reader = rx.receive(max);
        while let Some(desc) = reader.read() {
            let len = desc.len as usize;
            // The metadata area right before the frame, in the same UMEM frame (the kernel puts
            // the data behind a headroom of 256 bytes).
            let meta_at = desc.addr % u64::from(FRAME_SIZE) >= XSK_META_LEN as u64;
            let (start, with_meta) = if meta_at {
                (desc.addr - XSK_META_LEN as u64, XSK_META_LEN)
            } else {
                (desc.addr, 0)
            };
            // SAFETY: the kernel handed this frame to us on the RX ring and does not touch it
            // again until we put it back on the fill ring below; no other borrow of it exists.
            // The range starts at most XSK_META_LEN bytes before the frame's data, inside the
            // same UMEM frame (checked above; `frame_bytes` checks its end).
            if let Some(bytes) = unsafe { frame_bytes(&bound.umem, start, with_meta + len) } {
                let (before, frame) = bytes.split_at_mut(with_meta);
                let ts = frame_time(meta_at.then_some(before), &mut now, unstamped);
                f(ts, frame);
            }
            returned.push(desc.addr - desc.addr % u64::from(FRAME_SIZE));
            n += 1;
        }
        reader.release();
        drop(reader);
        if n == 0 && returned.is_empty() {
            // Nothing read, nothing owed to the fill ring: no call into the kernel.
            return 0;
        }
        let device = &mut bound.device;
        let mut fill = device.fill(u32::try_from(returned.len()).unwrap_or(u32::MAX));
        let put = fill.insert(returned.iter().copied()) as usize;
        fill.commit();
        drop(fill);
        returned.drain(..put);
        if device.needs_wakeup() {
            device.wake();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use tcpcopy_abi::maps::{XSK_META_LEN, XSK_META_MAGIC};

    use super::{frame_time, monotonic_ns};

    /// The metadata the XDP program writes: the kernel's time, then the mark.
    fn stamped(ts: u64) -> [u8; XSK_META_LEN] {
        let mut meta = [0u8; XSK_META_LEN];
        meta[..8].copy_from_slice(&ts.to_ne_bytes());
        meta[8..].copy_from_slice(&XSK_META_MAGIC.to_ne_bytes());
        meta
    }

    #[test]
    fn a_stamped_frame_gives_the_kernels_time_once() {
        let mut meta = stamped(123_456_789);
        let (mut now, mut unstamped) = (None, 0);
        assert_eq!(
            frame_time(Some(&mut meta), &mut now, &mut unstamped),
            123_456_789
        );
        assert_eq!((now, unstamped), (None, 0), "no clock read, none counted");
        // The mark is cleared: the same bytes again (a later frame in this UMEM frame that
        // came without metadata) are not taken for stamped.
        let before = monotonic_ns();
        let t = frame_time(Some(&mut meta), &mut now, &mut unstamped);
        assert!(t >= before && t <= monotonic_ns(), "timed when read: {t}");
        assert_eq!(unstamped, 1);
    }

    #[test]
    fn a_frame_without_the_mark_is_timed_when_read_once_per_batch() {
        let mut other = stamped(5);
        other[8] ^= 1;
        let (mut now, mut unstamped) = (None, 0);
        let first = frame_time(Some(&mut other), &mut now, &mut unstamped);
        let second = frame_time(None, &mut now, &mut unstamped);
        assert!(first > 0, "CLOCK_MONOTONIC");
        assert_eq!(first, second, "one clock read per batch");
        assert_eq!(unstamped, 2);
        assert_eq!(other[..8], 5u64.to_ne_bytes(), "left as it was");
    }
}
