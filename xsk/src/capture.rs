//! Where the frames an XDP program selects come from: its ring buffer, and when it redirects into
//! AF_XDP sockets (tcpcopy `--mirror`, intercept by default) also those sockets.

use std::{
    borrow::ToOwned,
    boxed::Box,
    future::poll_fn,
    io,
    sync::{Arc, Mutex, PoisonError},
    task::Poll,
    vec::Vec,
};

use anyhow::Context as _;

use tcpcopy_abi::maps::MAX_QUEUES;
use tcpcopy_host::{iface::rx_queues, workers::SetupFn};
use tcpcopy_wire::ethernet::ip_payload;

use crate::{
    program::XdpProgram,
    ring::{FrameRing, RingMap},
    rx::{XskRx, take_xsks},
};

/// UMEM frames of each AF_XDP receive socket of tcpcopy's `--mirror` capture: 32 MiB of 4 KiB
/// frames per queue, room for a burst while the worker is busy (with 2048 a burst of mirrored
/// connections overran a busy worker in the tests: 1,115 frames dropped in one run, counted by
/// [`XskRx::dropped`]).
pub const MIRROR_FRAMES: u32 = 8192;

/// UMEM frames of each of intercept's AF_XDP receive sockets (8 MiB per queue: the replies'
/// headers, or whole replies with `--compare`).
pub const INTERCEPT_FRAMES: u32 = 2048;

/// The capture of each of `workers` workers of `program` on `iface`, to be set up on the
/// worker's own thread: its ring, and with `af_xdp` (the program in AF_XDP mode) the AF_XDP
/// sockets of the queues `q % workers == w`, `frames` UMEM frames each.
pub fn per_worker(
    program: &mut XdpProgram,
    iface: &str,
    workers: u16,
    af_xdp: bool,
    frames: u32,
) -> anyhow::Result<Vec<SetupFn<Capture>>> {
    let xsks = if af_xdp {
        Some(Arc::new(Mutex::new(take_xsks(program)?)))
    } else {
        None
    };
    let queues = rx_queues(iface).min(MAX_QUEUES);
    let mut out: Vec<SetupFn<Capture>> = Vec::new();
    for w in 0..workers {
        let ring = RingMap::take(program, usize::from(w))?;
        let xsks = xsks.clone();
        let iface = iface.to_owned();
        out.push(Box::new(move || {
            let ring = ring.register()?;
            let xsk = match xsks {
                Some(map) => {
                    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                    let mine = (0..queues).filter(|q| q % u32::from(workers) == u32::from(w));
                    Some(
                        XskRx::bind(&mut map, &iface, mine, frames)
                            .context("AF_XDP receive sockets")?,
                    )
                }
                None => None,
            };
            Ok(Capture { ring, xsk })
        }));
    }
    Ok(out)
}

pub struct Capture {
    pub ring: FrameRing,
    pub xsk: Option<XskRx>,
}

/// How often readers sweep their ring for frames the XDP program did not announce.
pub const SWEEP: std::time::Duration = std::time::Duration::from_millis(1);

impl Capture {
    /// How frames arrive, for the start-up line: `ring`, `af_xdp-copy` or `af_xdp-zerocopy`.
    pub fn describe(&self) -> &'static str {
        self.xsk.as_ref().map_or("ring", |x| x.mode.name())
    }

    /// Hands up to `max` IP packets already in the ring, and up to `max` of each AF_XDP socket's
    /// RX ring, to `f`, without waiting for a wake-up (the sweep: a frame whose wake-up did not
    /// come, or was never asked for, is not left behind).
    pub fn read_now(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        self.read_now_timed(max, |_, ip| f(ip))
    }

    /// [`Capture::read_now`] with each packet's time (`CLOCK_MONOTONIC` nanoseconds): the
    /// kernel's (`FrameHeader::ts_ns`, an AF_XDP frame's metadata), else when it was read.
    pub fn read_now_timed(&mut self, max: usize, mut f: impl FnMut(Option<u64>, &[u8])) -> usize {
        let mut n = self.ring.read_now(max, |h, frame| {
            if let Some(ip) = ip_payload(frame) {
                f(Some(h.ts_ns), ip);
            }
        });
        if let Some(x) = self.xsk.as_mut() {
            n += x.read_now(u32::try_from(max).unwrap_or(u32::MAX), &mut |ts, frame| {
                if let Some(ip) = ip_payload(frame) {
                    f(Some(ts), ip);
                }
            });
        }
        n
    }

    /// Waits for captured frames and hands up to `max` IP packets from each source to `f`.
    pub async fn read(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> io::Result<usize> {
        self.read_timed(max, |_, ip| f(ip)).await
    }

    /// Frames from the AF_XDP sockets that carried no kernel time (timed when read; see
    /// [`XskRx::poll_read`]); `None` without AF_XDP sockets.
    pub fn unstamped(&self) -> Option<u64> {
        self.xsk.as_ref().map(XskRx::unstamped)
    }

    /// Frames the kernel dropped before the AF_XDP sockets (see [`XskRx::dropped`]); `None`
    /// without AF_XDP sockets.
    pub fn xsk_dropped(&self) -> Option<u64> {
        self.xsk.as_ref().map(XskRx::dropped)
    }

    /// [`Capture::read`] with each packet's time (`CLOCK_MONOTONIC` nanoseconds): the kernel's
    /// for frames from the ring, and for those from AF_XDP sockets the kernel's where the
    /// program wrote it into the frame's metadata, else the time it was read (see
    /// [`XskRx::poll_read`]).
    pub async fn read_timed(
        &mut self,
        max: usize,
        mut f: impl FnMut(Option<u64>, &[u8]),
    ) -> io::Result<usize> {
        poll_fn(|cx| {
            let mut got = 0;
            let mut from_ring = |h: &tcpcopy_abi::maps::FrameHeader, frame: &[u8]| {
                if let Some(ip) = ip_payload(frame) {
                    f(Some(h.ts_ns), ip);
                }
            };
            match self.ring.poll_read(cx, max, &mut from_ring) {
                Poll::Ready(Ok(n)) => got += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            if let Some(m) = self.xsk.as_mut() {
                let mut from_xsk = |ts: u64, frame: &[u8]| {
                    if let Some(ip) = ip_payload(frame) {
                        f(Some(ts), ip);
                    }
                };
                match m.poll_read(cx, u32::try_from(max).unwrap_or(u32::MAX), &mut from_xsk) {
                    Poll::Ready(Ok(n)) => got += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if got > 0 {
                Poll::Ready(Ok(got))
            } else {
                Poll::Pending
            }
        })
        .await
    }
}
