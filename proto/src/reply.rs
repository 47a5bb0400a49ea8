//! A caught reply's headers, the same for both protocol versions and both address families.

use std::net::{IpAddr, SocketAddr};

use tcpcopy_wire::{IpHeader, TcpHeader, WireError};

/// The most header bytes a reply keeps: an IPv6 header and a TCP header with 40 option bytes.
pub const MAX_HEADERS: usize = 40 + 60;

/// A reply's IP and TCP headers: the fixed IP header (IPv4 without options, IPv6 without
/// extension headers) and the whole TCP header with its options; no payload. The IP length field
/// still counts the payload the reply carried, so the engine learns its length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Headers {
    len: u8,
    bytes: [u8; MAX_HEADERS],
}

impl Headers {
    /// Headers from bytes the caller has checked to hold an IP and a TCP header (at most
    /// [`MAX_HEADERS`]; longer input is cut).
    pub(crate) fn from_slice(b: &[u8]) -> Self {
        let n = b.len().min(MAX_HEADERS);
        let mut bytes = [0u8; MAX_HEADERS];
        bytes[..n].copy_from_slice(&b[..n]);
        Self {
            #[expect(clippy::cast_possible_truncation, reason = "n <= MAX_HEADERS = 100")]
            len: n as u8,
            bytes,
        }
    }

    /// The IP and TCP header bytes (what the engine's `handle_response` takes).
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for Headers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Headers({} bytes)", self.len)
    }
}

/// Why a caught packet could not become a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not TCP over IPv4 or IPv6 (or a fragment, or IPv6 extension headers).
    #[error("not a TCP segment over IPv4 or IPv6")]
    NotTcp,
    /// The bytes end before the headers they announce.
    #[error("header shorter than it announces")]
    Truncated,
}

impl From<WireError> for RecordError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated | WireError::Malformed | WireError::BufferTooSmall => {
                RecordError::Truncated
            }
            WireError::Unsupported => RecordError::NotTcp,
        }
    }
}

/// A caught reply, with the addresses it was parsed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub headers: Headers,
    /// The replayed client the reply goes to.
    pub client: SocketAddr,
    /// The test server it comes from.
    pub target: SocketAddr,
}

/// The reply in an IP packet (as caught: whole, or at least its headers), its lengths checked
/// once through the wire layer. IPv4 options are left out; the length field is adjusted so that
/// the payload length stays what the reply carried.
pub fn encode_response(ip_packet: &[u8]) -> Result<Reply, RecordError> {
    let ip = IpHeader::parse(ip_packet)?;
    let tcp_bytes = &ip_packet[ip.header_len..];
    let tcp = TcpHeader::parse(tcp_bytes)?;
    if ip.total_len < ip.header_len + tcp.header_len {
        return Err(RecordError::Truncated);
    }
    let payload = ip.total_len - ip.header_len - tcp.header_len;
    let fixed = match ip.src {
        IpAddr::V4(_) => 20,
        IpAddr::V6(_) => 40,
    };
    let mut b = [0u8; MAX_HEADERS];
    b[..fixed].copy_from_slice(&ip_packet[..fixed]);
    b[fixed..fixed + tcp.header_len].copy_from_slice(&tcp_bytes[..tcp.header_len]);
    if fixed == 20 {
        b[0] = 0x45;
        let total = u16::try_from(20 + tcp.header_len + payload).unwrap_or(u16::MAX);
        b[2..4].copy_from_slice(&total.to_be_bytes());
    }
    // IPv6: the payload length already counts just TCP (extension headers are refused above).
    Ok(Reply {
        headers: Headers::from_slice(&b[..fixed + tcp.header_len]),
        client: SocketAddr::new(ip.dst, tcp.dst_port),
        target: SocketAddr::new(ip.src, tcp.src_port),
    })
}

/// The TCP payload of a caught reply (an IP packet), when the packet holds all of it (a frame
/// copied whole, not cut to its headers) and it fits a type-3 message
/// ([`crate::v7::MAX_PAYLOAD`]); `None` otherwise.
pub fn payload_of(ip_packet: &[u8]) -> Option<&[u8]> {
    let ip = IpHeader::parse(ip_packet).ok()?;
    let tcp = TcpHeader::parse(ip_packet.get(ip.header_len..)?).ok()?;
    let start = ip.header_len + tcp.header_len;
    let p = ip_packet.get(start..ip.total_len)?;
    (p.len() <= crate::v7::MAX_PAYLOAD).then_some(p)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reply of `payload` bytes from the test server to a replayed client, with IP options
    /// (IPv4) and TCP options; IPv6 when `v6`.
    pub(crate) fn reply(v6: bool, ip_opts: usize, tcp_opts: usize, payload: usize) -> Vec<u8> {
        let ihl = if v6 { 40 } else { 20 + ip_opts };
        let doff = 20 + tcp_opts;
        let total = ihl + doff + payload;
        let mut p = vec![0u8; total];
        if v6 {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&u16::try_from(doff + payload).unwrap().to_be_bytes());
            p[6] = 6;
            p[8..24].copy_from_slice(
                &"2001:db8:100::30"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
            p[24..40].copy_from_slice(
                &"2001:db8:2::7"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
        } else {
            p[0] = 0x40 | u8::try_from(ihl / 4).unwrap();
            p[2..4].copy_from_slice(&u16::try_from(total).unwrap().to_be_bytes());
            p[9] = 6;
            p[12..16].copy_from_slice(&[198, 51, 100, 30]);
            p[16..20].copy_from_slice(&[192, 0, 2, 7]);
        }
        p[ihl..ihl + 2].copy_from_slice(&80u16.to_be_bytes());
        p[ihl + 2..ihl + 4].copy_from_slice(&40_000u16.to_be_bytes());
        p[ihl + 12] = u8::try_from(doff / 4).unwrap() << 4;
        p[ihl + 13] = 0x18;
        for (i, b) in p[ihl + 20..ihl + doff].iter_mut().enumerate() {
            *b = 1 + u8::try_from(i % 3).unwrap();
        }
        p
    }

    /// The payload length the headers announce.
    pub(crate) fn payload_len(h: &[u8]) -> usize {
        let p = tcpcopy_wire::IpHeader::parse(h).unwrap();
        let doff = usize::from(h[p.header_len + 12] >> 4) * 4;
        p.total_len - p.header_len - doff
    }

    #[test]
    fn replies_keep_every_tcp_option_and_the_payload_length() {
        for v6 in [false, true] {
            for (ip_opts, tcp_opts, payload) in [(0, 0, 0), (0, 12, 1448), (8, 20, 10), (0, 40, 5)]
            {
                let r = encode_response(&reply(v6, ip_opts, tcp_opts, payload)).unwrap();
                let h = r.headers.as_slice();
                let fixed = if v6 { 40 } else { 20 };
                assert_eq!(h.len(), fixed + 20 + tcp_opts, "{v6} {ip_opts} {tcp_opts}");
                assert_eq!(payload_len(h), payload);
                assert_eq!(r.target.port(), 80);
                assert_eq!(r.client.port(), 40_000);
                assert_eq!(r.client.is_ipv6(), v6);
            }
        }
    }

    #[test]
    fn the_payload_is_there_only_when_whole() {
        let p = reply(false, 8, 12, 100);
        assert_eq!(payload_of(&p).map(<[u8]>::len), Some(100));
        assert_eq!(payload_of(&p[..p.len() - 1]), None, "cut");
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(payload_of(&padded).map(<[u8]>::len), Some(100), "padding");
        assert_eq!(payload_of(&reply(true, 0, 0, 0)), Some(&[][..]));
    }

    #[test]
    fn what_is_no_tcp_reply_is_an_error() {
        assert_eq!(encode_response(&[0x45; 10]), Err(RecordError::Truncated));
        assert_eq!(encode_response(&[]), Err(RecordError::Truncated));
        let mut udp = reply(false, 0, 0, 0);
        udp[9] = 17;
        assert_eq!(encode_response(&udp), Err(RecordError::NotTcp));
        let mut ext = reply(true, 0, 0, 0);
        ext[6] = 0; // hop-by-hop options
        assert_eq!(encode_response(&ext), Err(RecordError::NotTcp));
    }
}
