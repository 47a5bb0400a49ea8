//! TCP header view and options.

use super::WireError;
use crate::Seq;

/// TCP flags, as the header's low byte.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

impl core::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (bit, name) in [
            (Self::SYN, "S"),
            (Self::FIN, "F"),
            (Self::RST, "R"),
            (Self::PSH, "P"),
            (Self::ACK, "."),
        ] {
            if self.0 & bit != 0 {
                f.write_str(name)?;
            }
        }
        Ok(())
    }
}

/// The TCP options the engine reads and writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// (`TSval`, `TSecr`)
    pub timestamps: Option<(u32, u32)>,
}

impl TcpOptions {
    /// Parses the options area; unknown options are skipped by their length.
    pub fn parse(mut opts: &[u8]) -> Result<Self, WireError> {
        let mut out = Self::default();
        while let Some(&kind) = opts.first() {
            match kind {
                0 => break,
                1 => {
                    opts = &opts[1..];
                    continue;
                }
                _ => {}
            }
            let len = usize::from(*opts.get(1).ok_or(WireError::Malformed)?);
            if len < 2 || len > opts.len() {
                return Err(WireError::Malformed);
            }
            let body = &opts[2..len];
            match (kind, body.len()) {
                (2, 2) => out.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                (3, 1) => out.window_scale = Some(body[0].min(14)),
                (4, 0) => out.sack_permitted = true,
                (8, 8) => {
                    out.timestamps = Some((
                        u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                        u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                    ));
                }
                _ => {}
            }
            opts = &opts[len..];
        }
        Ok(out)
    }

    /// Bytes these options take on the wire, padded to a multiple of 4.
    pub fn wire_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.window_scale.is_some() {
            n += 4; // NOP + 3
        }
        if self.sack_permitted {
            n += 4; // NOP NOP + 2
        }
        if self.timestamps.is_some() {
            n += 12; // NOP NOP + 10
        }
        n
    }

    /// Writes the options into `out` (exactly `wire_len()` bytes).
    pub fn write(&self, out: &mut [u8]) {
        let mut at = 0;
        if let Some(mss) = self.mss {
            let [hi, lo] = mss.to_be_bytes();
            out[at..at + 4].copy_from_slice(&[2, 4, hi, lo]);
            at += 4;
        }
        if let Some(ws) = self.window_scale {
            out[at..at + 4].copy_from_slice(&[1, 3, 3, ws]);
            at += 4;
        }
        if self.sack_permitted {
            out[at..at + 4].copy_from_slice(&[1, 1, 4, 2]);
            at += 4;
        }
        if let Some((val, ecr)) = self.timestamps {
            out[at..at + 4].copy_from_slice(&[1, 1, 8, 10]);
            out[at + 4..at + 8].copy_from_slice(&val.to_be_bytes());
            out[at + 8..at + 12].copy_from_slice(&ecr.to_be_bytes());
        }
    }
}

/// The ports and length of a TCP header, checked against the bytes; the options are not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes of TCP header, options included.
    pub header_len: usize,
}

impl TcpHeader {
    /// Checks that `buf` holds a whole TCP header (options included) and reads its ports.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        let Some(h) = buf.get(..20) else {
            return Err(WireError::Truncated);
        };
        let header_len = usize::from(h[12] >> 4) * 4;
        if header_len < 20 {
            return Err(WireError::Malformed);
        }
        if buf.len() < header_len {
            return Err(WireError::Truncated);
        }
        Ok(Self {
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            header_len,
        })
    }
}

/// A view of a TCP segment.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: Seq,
    pub ack: Seq,
    pub flags: TcpFlags,
    pub window: u16,
    pub options: TcpOptions,
    /// The payload bytes present (empty for header-only reply records).
    pub payload: &'a [u8],
    /// The payload length the IP header declares (what the segment carried on the wire).
    pub payload_len: u32,
    /// Bytes of TCP header, options included.
    pub header_len: usize,
}

impl<'a> TcpSegment<'a> {
    /// Parses `buf` (TCP header and whatever payload is present); `declared_len` is the TCP length
    /// from the IP header.
    pub fn parse(buf: &'a [u8], declared_len: usize) -> Result<Self, WireError> {
        let header = TcpHeader::parse(buf)?;
        let header_len = header.header_len;
        if declared_len < header_len {
            return Err(WireError::Malformed);
        }
        let (h, opts) = (&buf[..20], &buf[20..header_len]);
        let payload_len =
            u32::try_from(declared_len - header_len).map_err(|_| WireError::Malformed)?;
        Ok(Self {
            src_port: header.src_port,
            dst_port: header.dst_port,
            seq: Seq::new(u32::from_be_bytes([h[4], h[5], h[6], h[7]])),
            ack: Seq::new(u32::from_be_bytes([h[8], h[9], h[10], h[11]])),
            flags: TcpFlags(h[13]),
            window: u16::from_be_bytes([h[14], h[15]]),
            options: TcpOptions::parse(opts)?,
            payload: &buf[header_len..],
            payload_len,
            header_len,
        })
    }

    /// Sequence space the segment occupies: payload plus one for SYN and for FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload_len + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip() {
        let o = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((0xdead_beef, 42)),
        };
        let mut buf = vec![0u8; o.wire_len()];
        o.write(&mut buf);
        assert_eq!(buf.len() % 4, 0);
        assert_eq!(TcpOptions::parse(&buf).unwrap(), o);
    }

    #[test]
    fn bad_option_lengths_are_errors_not_panics() {
        assert_eq!(TcpOptions::parse(&[2]), Err(WireError::Malformed));
        assert_eq!(TcpOptions::parse(&[2, 0]), Err(WireError::Malformed));
        assert_eq!(TcpOptions::parse(&[2, 40, 1, 2]), Err(WireError::Malformed));
        // Unknown option skipped, then EOL.
        assert_eq!(
            TcpOptions::parse(&[30, 3, 9, 0]).unwrap(),
            TcpOptions::default()
        );
    }
}
