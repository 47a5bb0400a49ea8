//! Offline replay (`-i FILE` or `--pcap FILE`): the TCP sessions of a capture replayed to the
//! target through the same engine and intercept as live traffic, in the capture's own timing
//! (`-a` speeds it up, `-I` shortens idle gaps, `-T` loops).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tcpcopy_abi::filter::{Fields, FilterProgram, v4_mapped};
use tcpcopy_engine::wire::{Packet as WirePacket, Parsed, Payload, parse};
use tokio::time::Instant;

use tcpcopy_capfile::{CaptureFile, Packet, ReadError};

/// How the file is played.
#[derive(Clone, Debug)]
pub struct Playback {
    pub speed: f64,
    pub idle_cap: Option<Duration>,
    pub loops: u32,
    pub filter: FilterProgram,
}

/// The capture file as a source of packets for the replay loop.
pub struct Offline {
    path: PathBuf,
    file: CaptureFile,
    play: Playback,
    pass: u32,
    /// The next selected packet and what its one parse found.
    next: Option<(Packet, Parsed)>,
    /// Capture time of the pass's first packet and the wall time it was replayed at.
    base: Option<(Duration, Instant)>,
    /// Capture time taken out of the pass by `-I`.
    skipped: Duration,
    last_ts: Option<Duration>,
    at_end: bool,
    /// Packets handed to the engine, packets the filter left out, over all passes.
    pub packets: u64,
    pub filtered: u64,
    /// The read error that ended the last pass, if any.
    pub error: Option<ReadError>,
}

/// The filter's view of a parsed packet.
fn fields(p: &WirePacket<'_>) -> Fields {
    let addr = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(v) => v4_mapped(v.octets()),
        std::net::IpAddr::V6(v) => {
            let b = v.to_bits();
            #[expect(clippy::cast_possible_truncation, reason = "the two 64-bit halves")]
            let halves = [(b >> 64) as u64, b as u64];
            halves
        }
    };
    Fields {
        src_port: p.tcp.src_port,
        dst_port: p.tcp.dst_port,
        src: addr(p.src),
        dst: addr(p.dst),
    }
}

impl Offline {
    pub fn open(path: &Path, play: Playback) -> Result<Self, ReadError> {
        let file = CaptureFile::open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            play,
            pass: 1,
            next: None,
            base: None,
            skipped: Duration::ZERO,
            last_ts: None,
            at_end: false,
            packets: 0,
            filtered: 0,
            error: None,
        })
    }

    /// Reads the next packet the filter keeps into `self.next`; marks the end of the pass.
    fn fill(&mut self) {
        while self.next.is_none() && !self.at_end {
            match self.file.next_packet() {
                None => self.at_end = true,
                Some(Err(e)) => {
                    self.error = Some(e);
                    self.at_end = true;
                }
                Some(Ok(p)) => {
                    // Each packet is parsed once, here: the filter reads the parse, and the
                    // engine gets the same view back (`Parsed::view`) when the packet is due.
                    let parsed = match parse(&p.ip, Payload::Whole) {
                        Ok(v) if self.play.filter.matches(&fields(&v)) => v.detach(),
                        _ => {
                            self.filtered += 1;
                            continue;
                        }
                    };
                    // `-I`: an idle gap longer than the cap is shortened to the cap.
                    if let (Some(last), Some(cap)) = (self.last_ts, self.play.idle_cap) {
                        let gap = p.timestamp.saturating_sub(last);
                        if gap > cap {
                            self.skipped += gap.saturating_sub(cap);
                        }
                    }
                    self.last_ts = Some(p.timestamp);
                    self.next = Some((p, parsed));
                }
            }
        }
    }

    /// How many times faster than recorded the file plays (`-a`, at least 0.001).
    pub fn speed(&self) -> f64 {
        self.play.speed.max(0.001)
    }

    /// When the next packet is due, `None` at the end of the pass: the pass's first packet when
    /// first asked, each other one its capture time after it, less what `-I` took out, divided
    /// by the speed. (The one place a packet's replay time is computed.)
    pub fn due(&mut self, now: Instant) -> Option<Instant> {
        self.fill();
        let (p, _) = self.next.as_ref()?;
        let (ts0, wall0) = *self.base.get_or_insert((p.timestamp, now));
        let offset = p.timestamp.saturating_sub(ts0).saturating_sub(self.skipped);
        Some(wall0 + offset.div_f64(self.speed()))
    }

    /// Hands every selected packet due by `now` to `f`, with the time it was due (see
    /// [`Self::due`]), as the view its one parse gave; returns how many.
    pub fn feed(&mut self, now: Instant, mut f: impl FnMut(Instant, &WirePacket<'_>)) -> usize {
        let mut n = 0;
        while let Some(due) = self.due(now) {
            if due > now {
                break;
            }
            let (p, parsed) = self.next.take().expect("due() saw a packet");
            let view = parsed.view(&p.ip).expect("the bytes it was parsed from");
            f(due, &view);
            self.packets += 1;
            n += 1;
        }
        n
    }

    /// The pass has reached the end of the file (or damage in it).
    pub fn at_end(&mut self) -> bool {
        self.fill();
        self.at_end && self.next.is_none()
    }

    /// Starts the next pass (`-T`), if any.
    pub fn next_pass(&mut self) -> Result<bool, ReadError> {
        if self.pass >= self.play.loops || self.error.is_some() {
            return Ok(false);
        }
        self.pass += 1;
        self.file = CaptureFile::open(&self.path)?;
        self.base = None;
        self.skipped = Duration::ZERO;
        self.last_ts = None;
        self.at_end = false;
        Ok(true)
    }

    /// `pass=1/2 file=37%` for the progress line.
    pub fn progress(&self) -> String {
        let pct = (self.file.offset * 100)
            .checked_div(self.file.size)
            .unwrap_or(100)
            .min(100);
        format!(
            "pass={}/{} file={pct}% packets={} filtered={} skipped={}",
            self.pass, self.play.loops, self.packets, self.filtered, self.file.skipped
        )
    }
}
