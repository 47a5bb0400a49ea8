//! Receiving the frames an XDP program redirects into AF_XDP sockets, one per receive queue:
//! tcpcopy `--mirror` (a mirror/tap port's copies) and intercept (the test server's replies).

use std::{
    io,
    os::fd::{AsRawFd, RawFd},
    task::{Context, Poll},
};

use std::{format, vec::Vec};

use aya::maps::{MapData, XskMap};
use tokio::io::unix::AsyncFd;
use xdpilone::{BufIdx, DeviceQueue, RingRx, Umem, User};

use crate::{
    maps::XSKS,
    xdp::XdpProgram,
    xsk::{self, Area, FRAME_SIZE, XskMode},
};

/// Frames per queue (all of them on the fill ring at first).
const FRAMES: u32 = 2048;

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

/// A queue's rings, socket, UMEM and memory (in drop order).
struct Rings {
    rx: RingRx,
    device: DeviceQueue,
    _user: User,
    umem: Umem,
    _area: Area,
    /// Frames read and not yet back on the fill ring.
    returned: Vec<u64>,
}

/// The AF_XDP receive sockets of every queue of an interface.
pub struct XskRx {
    queues: Vec<Queue>,
    pub mode: XskMode,
}

/// Receive queues of `iface` (from sysfs; 1 if unknown).
pub fn rx_queues(iface: &str) -> u32 {
    queue_count(iface, "rx-")
}

/// Transmit queues of `iface` (from sysfs; 1 if unknown).
pub fn tx_queues(iface: &str) -> u32 {
    queue_count(iface, "tx-")
}

fn queue_count(iface: &str, prefix: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .count()
        })
        .map_or(1, |n| u32::try_from(n).unwrap_or(1).max(1))
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
    /// Binds a socket on each of `queues` of `iface` and enters it into `xsks`.
    pub fn bind(
        xsks: &mut XskMap<MapData>,
        iface: &str,
        queues: impl IntoIterator<Item = u32>,
    ) -> anyhow::Result<Self> {
        let mut sockets = Vec::new();
        let mut mode = XskMode::ZeroCopy;
        let mut n = 0;
        for q in queues {
            n += 1;
            let mut area = Area::new(FRAMES);
            let bound = xsk::open(&mut area, iface, q, true, false)?;
            if bound.mode == XskMode::Copy {
                mode = XskMode::Copy;
            }
            let mut device = bound.device;
            let mut fill = device.fill(FRAMES);
            fill.insert((0..u64::from(FRAMES)).map(|i| i * u64::from(FRAME_SIZE)));
            fill.commit();
            drop(fill);
            xsks.set(q, bound.user.as_raw_fd(), 0)?;
            // SAFETY: the descriptor belongs to `bound.user`, which is stored in the same `Queue`
            // and dropped after `ready` (field order), so it stays open while registered.
            #[allow(unsafe_code)]
            let ready = unsafe { AsyncFd::register(Fd(bound.user.as_raw_fd())) }
                .map_err(|e| anyhow::anyhow!("registering queue {q}: {e}"))?;
            sockets.push(Queue {
                ready,
                rings: Rings {
                    rx: bound.rx.expect("asked for an RX ring"),
                    device,
                    _user: bound.user,
                    umem: bound.umem,
                    _area: area,
                    returned: Vec::with_capacity(FRAMES as usize),
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
        })
    }

    /// Hands up to `max` received frames (Ethernet) of each ready queue to `f`; `Pending` (with
    /// the task woken later) when no queue has any.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        max: u32,
        f: &mut impl FnMut(&[u8]),
    ) -> Poll<io::Result<usize>> {
        let mut got = 0;
        for q in &mut self.queues {
            let mut guard = match q.ready.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => continue,
            };
            let n = q.rings.drain(max, f);
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

impl Rings {
    fn drain(&mut self, max: u32, f: &mut impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        let mut reader = self.rx.receive(max);
        while let Some(desc) = reader.read() {
            let base = desc.addr - desc.addr % u64::from(FRAME_SIZE);
            let offset = usize::try_from(desc.addr - base).unwrap_or(0);
            let len = desc.len as usize;
            if let Some(chunk) = u32::try_from(base / u64::from(FRAME_SIZE))
                .ok()
                .and_then(|i| self.umem.frame(BufIdx(i)))
                && offset + len <= FRAME_SIZE as usize
            {
                // SAFETY: the kernel handed this frame to us on the RX ring and does not touch it
                // again until we put it back on the fill ring below; `chunk.addr` covers the
                // frame and offset + len was checked against its size.
                #[allow(unsafe_code)]
                let frame = unsafe { &(&*chunk.addr.as_ptr())[offset..offset + len] };
                f(frame);
            }
            self.returned.push(base);
            n += 1;
        }
        reader.release();
        drop(reader);
        let mut fill = self
            .device
            .fill(u32::try_from(self.returned.len()).unwrap_or(u32::MAX));
        let put = fill.insert(self.returned.iter().copied()) as usize;
        fill.commit();
        drop(fill);
        self.returned.drain(..put);
        if self.device.needs_wakeup() {
            self.device.wake();
        }
        n
    }
}
