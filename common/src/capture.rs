//! Where the frames an XDP program selects come from: its ring buffer, and when it redirects into
//! AF_XDP sockets (tcpcopy `--mirror`, intercept by default) also those sockets.

use std::{future::poll_fn, io, task::Poll};

use crate::{ether::ip_payload, ring::FrameRing, xsk_rx::XskRx};

pub struct Capture {
    pub ring: FrameRing,
    pub xsk: Option<XskRx>,
}

/// How often readers sweep their ring for frames the XDP program did not announce.
pub const SWEEP: std::time::Duration = std::time::Duration::from_millis(1);

impl Capture {
    /// Hands up to `max` IP packets already in the ring to `f`, without waiting (the sweep).
    pub fn read_now(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        self.ring.read_now(max, |_, frame| {
            if let Some(ip) = ip_payload(frame) {
                f(ip);
            }
        })
    }

    /// Waits for captured frames and hands up to `max` IP packets from each source to `f`.
    pub async fn read(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> io::Result<usize> {
        poll_fn(|cx| {
            let mut got = 0;
            let mut from_ring = |_: &_, frame: &[u8]| {
                if let Some(ip) = ip_payload(frame) {
                    f(ip);
                }
            };
            match self.ring.poll_read(cx, max, &mut from_ring) {
                Poll::Ready(Ok(n)) => got += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            if let Some(m) = self.xsk.as_mut() {
                let mut from_xsk = |frame: &[u8]| {
                    if let Some(ip) = ip_payload(frame) {
                        f(ip);
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
