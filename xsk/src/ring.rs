//! Reading the frames an XDP program copied into its ring buffer.

use std::{
    io,
    task::{Context, Poll},
};

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use tcpcopy_abi::maps::{FRAMES, FrameHeader};

use crate::program::{XdpError, XdpProgram};

/// One worker's `FRAMES` ring buffer of a loaded program, readable from tokio.
pub struct FrameRing {
    fd: AsyncFd<RingBuf<MapData>>,
}

/// A worker's ring taken out of the program, not yet registered with a runtime: it can move to
/// the worker's thread, which registers it with its own runtime.
pub struct RingMap {
    ring: RingBuf<MapData>,
    name: &'static str,
}

impl RingMap {
    /// Takes worker `worker`'s ring out of `program` (once).
    pub fn take(program: &mut XdpProgram, worker: usize) -> Result<Self, XdpError> {
        let name = FRAMES.get(worker).copied().ok_or(XdpError::Map {
            map: "FRAMES",
            reason: std::format!("no ring for worker {worker}"),
        })?;
        let map = program.ebpf_mut().take_map(name).ok_or(XdpError::Map {
            map: name,
            reason: "not in the object".into(),
        })?;
        let ring = RingBuf::try_from(map).map_err(|e| XdpError::Map {
            map: name,
            reason: std::format!("{e}"),
        })?;
        Ok(Self { ring, name })
    }

    /// Hands up to `max` records already in the ring to `f`, without a runtime; how many.
    pub fn read_now(&mut self, max: usize, mut f: impl FnMut(&FrameHeader, &[u8])) -> usize {
        drain(&mut self.ring, max, &mut f)
    }

    /// Registers the ring with the current thread's runtime.
    pub fn register(self) -> Result<FrameRing, XdpError> {
        let name = self.name;
        // SAFETY: the RingBuf owns its map's file descriptor for as long as it lives (it is moved
        // into the AsyncFd and never taken out), and as_raw_fd always returns that one descriptor.
        let fd = unsafe { AsyncFd::register(self.ring) }.map_err(|e| XdpError::Map {
            map: name,
            reason: std::format!("{e}"),
        })?;
        Ok(FrameRing { fd })
    }
}

/// Hands up to `max` records of `ring` to `f`; how many there were.
fn drain(
    ring: &mut RingBuf<MapData>,
    max: usize,
    f: &mut impl FnMut(&FrameHeader, &[u8]),
) -> usize {
    let mut n = 0;
    while n < max {
        let Some(item) = ring.next() else {
            break;
        };
        if let Some((header, frame)) = FrameHeader::read(&item) {
            f(&header, frame);
        }
        n += 1;
    }
    n
}

impl FrameRing {
    /// Hands up to `max` frames already in the ring to `f`, without waiting; returns how many.
    /// The XDP program wakes the reader at most once per 100 µs per CPU, so the last frames of a
    /// burst may sit there unannounced: readers sweep the ring every millisecond with this.
    pub fn read_now(&mut self, max: usize, mut f: impl FnMut(&FrameHeader, &[u8])) -> usize {
        drain(self.fd.get_mut(), max, &mut f)
    }

    /// Waits until frames are there, then hands up to `max` of them to `f`; returns how many.
    pub async fn read(
        &mut self,
        max: usize,
        mut f: impl FnMut(&FrameHeader, &[u8]),
    ) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, max, &mut f)).await
    }

    /// [`Self::read`] as a poll: `Ready(Ok(n))` with `n > 0` frames handed to `f`, or `Pending`
    /// (the task is woken when frames arrive).
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        f: &mut impl FnMut(&FrameHeader, &[u8]),
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = match self.fd.poll_read_ready_mut(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let n = drain(guard.get_inner_mut(), max, f);
            if n < max {
                // Drained: the next poll waits for the next wake-up.
                guard.clear_ready();
            }
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
        }
    }
}
