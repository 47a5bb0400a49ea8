//! How replayed packets leave the online host: an AF_XDP socket on the interface that routes to
//! the target (the default, IPv4 and IPv6), or a raw IP socket (`--send raw`, and for targets
//! behind another interface than the first target's).

mod raw;
mod xdp;

use std::net::IpAddr;

use clap::ValueEnum;
pub use raw::RawSender;
use tcpcopy_engine::Transmit;
pub use xdp::XskSender;

use tcpcopy_xsk::umem::XskMode;

/// `--send`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SendMode {
    /// AF_XDP, falling back to a raw socket (with a warning) where AF_XDP cannot be set up.
    Auto,
    /// AF_XDP only: fail if it cannot be set up.
    Xdp,
    /// A raw IP socket: the kernel routes each packet (any interface, slower).
    Raw,
}

/// The sender tcpcopy uses.
pub struct Sender {
    xsk: Option<XskSender>,
    raw: RawSender,
    /// Where packets are emitted when there is no AF_XDP socket.
    scratch: Vec<u8>,
}

/// Room for the largest packet the engine emits (an IPv6 header, TCP with options, a full MSS).
const SCRATCH_LEN: usize = 65_536;

impl Sender {
    /// Sets up the sender for `targets`, on transmit queue `queue` for AF_XDP, for packets of up
    /// to `mtu` bytes.
    pub fn new(mode: SendMode, targets: &[IpAddr], queue: u32, mtu: u16) -> anyhow::Result<Self> {
        let xsk = match mode {
            SendMode::Raw => None,
            _ if targets.is_empty() => None,
            SendMode::Xdp => Some(XskSender::new(targets, queue)?),
            SendMode::Auto => match XskSender::new(targets, queue) {
                Ok(x) => Some(x),
                Err(e) => {
                    log::warn!("AF_XDP transmit unavailable ({e}); sending through a raw socket");
                    None
                }
            },
        };
        if let Some(x) = &xsk {
            let how = match x.mode() {
                XskMode::ZeroCopy => "zero-copy",
                XskMode::Copy => "copy mode (the driver has no zero-copy AF_XDP)",
            };
            log::info!(
                "sending through AF_XDP on {} queue {}, {how}",
                x.iface(),
                x.queue()
            );
        } else {
            log::info!("sending through a raw IP socket");
        }
        // A raw socket of each family some target needs besides AF_XDP.
        let raw_for = |v6: bool| {
            targets
                .iter()
                .filter(|t| t.is_ipv6() == v6)
                .any(|t| !xsk.as_ref().is_some_and(|x| x.serves(*t)))
        };
        let raw = RawSender::new(raw_for(false), raw_for(true))?;
        Ok(Self {
            xsk,
            raw,
            scratch: vec![0; SCRATCH_LEN.max(usize::from(mtu))],
        })
    }

    /// Lets `emit` write the next IP packet (it says where the packet goes and how long it is,
    /// `None` when it has none) and sends it: with AF_XDP, straight into a free frame behind the
    /// next hop's Ethernet header (no copy); packets AF_XDP cannot carry go out through the raw
    /// socket. `None` when `emit` had nothing or no frame was free (see [`Self::has_room`]).
    pub fn emit(&mut self, emit: impl FnOnce(&mut [u8]) -> Option<Transmit>) -> Option<()> {
        let Some(x) = self.xsk.as_mut() else {
            let tx = emit(&mut self.scratch)?;
            self.raw.send(&self.scratch[..tx.size], tx.destination.ip());
            return Some(());
        };
        let raw = &mut self.raw;
        x.emit(emit, |packet, tx| raw.send(packet, tx.destination.ip()))
    }

    /// The longest IP packet this sender carries (AF_XDP: what a frame holds behind the Ethernet
    /// header).
    pub fn max_packet(&self) -> u16 {
        self.xsk
            .as_ref()
            .map_or(u16::MAX, |_| XskSender::max_packet())
    }

    /// Whether the next packet can be taken now (AF_XDP: a frame is free).
    pub fn has_room(&mut self) -> bool {
        self.xsk.as_mut().is_none_or(XskSender::has_room)
    }

    /// Hands queued packets to the driver.
    pub fn flush(&mut self) {
        if let Some(x) = self.xsk.as_mut() {
            x.flush();
        }
    }

    /// `af_xdp-zerocopy`, `af_xdp-copy` or `raw`, for the start-up line.
    pub fn describe(&self) -> &'static str {
        self.xsk.as_ref().map_or("raw", |x| x.mode().name())
    }

    /// Packets that could not be sent.
    pub fn errors(&self) -> u64 {
        self.raw.errors + self.xsk.as_ref().map_or(0, |x| x.errors)
    }
}
