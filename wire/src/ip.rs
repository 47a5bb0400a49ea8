//! IPv4 and IPv6 header views.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::WireError;

const IPPROTO_TCP: u8 = 6;

/// The fields of an IP header the engine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeader {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Bytes of IP header before the TCP header.
    pub header_len: usize,
    /// Bytes the header says the packet has (header included); may exceed what was captured.
    pub total_len: usize,
}

impl IpHeader {
    /// Parses an IPv4 or IPv6 header carrying TCP (no fragments, no IPv6 extension headers).
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        match buf.first().map(|b| b >> 4) {
            Some(4) => Self::parse_v4(buf),
            Some(6) => Self::parse_v6(buf),
            Some(_) => Err(WireError::Malformed),
            None => Err(WireError::Truncated),
        }
    }

    fn parse_v4(buf: &[u8]) -> Result<Self, WireError> {
        let Some(h) = buf.get(..20) else {
            return Err(WireError::Truncated);
        };
        let header_len = usize::from(h[0] & 0x0f) * 4;
        let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if header_len < 20 || total_len < header_len {
            return Err(WireError::Malformed);
        }
        if buf.len() < header_len {
            return Err(WireError::Truncated);
        }
        let frag = u16::from_be_bytes([h[6], h[7]]);
        // More-fragments set or a non-zero offset: not a whole segment.
        if frag & 0x3fff != 0 || h[9] != IPPROTO_TCP {
            return Err(WireError::Unsupported);
        }
        Ok(Self {
            src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
            dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
            header_len,
            total_len,
        })
    }

    fn parse_v6(buf: &[u8]) -> Result<Self, WireError> {
        let Some(h) = buf.get(..40) else {
            return Err(WireError::Truncated);
        };
        if h[6] != IPPROTO_TCP {
            return Err(WireError::Unsupported);
        }
        let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&h[8..24]);
        dst.copy_from_slice(&h[24..40]);
        Ok(Self {
            src: IpAddr::V6(Ipv6Addr::from(src)),
            dst: IpAddr::V6(Ipv6Addr::from(dst)),
            header_len: 40,
            total_len: 40 + payload,
        })
    }
}
