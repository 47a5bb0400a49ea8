//! Writing the IP/TCP packets the engine sends to the test server.

use std::net::{IpAddr, SocketAddr};

use super::{TcpOptions, WireError, checksum};
use crate::Seq;

/// A segment to write. The payload may come in two pieces (a ring buffer's two halves).
#[derive(Clone, Copy, Debug)]
pub struct OutSegment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: Seq,
    pub ack: Seq,
    pub flags: u8,
    pub window: u16,
    pub options: TcpOptions,
    pub payload: [&'a [u8]; 2],
    /// IPv4 identification field.
    pub ip_id: u16,
}

fn ip_header_len(addr: &SocketAddr) -> usize {
    match addr.ip() {
        IpAddr::V4(_) => 20,
        IpAddr::V6(_) => 40,
    }
}

/// Bytes [`emit`] writes for `seg`.
pub fn segment_len(seg: &OutSegment<'_>) -> usize {
    ip_header_len(&seg.src)
        + 20
        + seg.options.wire_len()
        + seg.payload[0].len()
        + seg.payload[1].len()
}

/// Writes `seg` as an IP packet at the start of `buf`, checksums included; returns its length.
pub fn emit(seg: &OutSegment<'_>, buf: &mut [u8]) -> Result<usize, WireError> {
    let total = segment_len(seg);
    if buf.len() < total || total > usize::from(u16::MAX) {
        return Err(WireError::BufferTooSmall);
    }
    let ip_len = ip_header_len(&seg.src);
    let tcp_len = total - ip_len;
    let (ip, rest) = buf[..total].split_at_mut(ip_len);
    match (seg.src.ip(), seg.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ip[0] = 0x45;
            ip[1] = 0;
            ip[2..4].copy_from_slice(&u16::try_from(total).unwrap_or(u16::MAX).to_be_bytes());
            ip[4..6].copy_from_slice(&seg.ip_id.to_be_bytes());
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
            ip[8] = 64;
            ip[9] = 6;
            ip[10..12].fill(0);
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let sum = checksum::internet_checksum(ip, 0);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
            ip[4..6].copy_from_slice(&u16::try_from(tcp_len).unwrap_or(u16::MAX).to_be_bytes());
            ip[6] = 6;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
        }
        _ => return Err(WireError::Unsupported),
    }
    let opt_len = seg.options.wire_len();
    let header_len = 20 + opt_len;
    let t = rest;
    t[0..2].copy_from_slice(&seg.src.port().to_be_bytes());
    t[2..4].copy_from_slice(&seg.dst.port().to_be_bytes());
    t[4..8].copy_from_slice(&seg.seq.raw().to_be_bytes());
    t[8..12].copy_from_slice(&seg.ack.raw().to_be_bytes());
    #[expect(clippy::cast_possible_truncation, reason = "header_len <= 60")]
    let offset = ((header_len / 4) as u8) << 4;
    t[12] = offset;
    t[13] = seg.flags;
    t[14..16].copy_from_slice(&seg.window.to_be_bytes());
    t[16..20].fill(0);
    seg.options.write(&mut t[20..header_len]);
    let (a, b) = (seg.payload[0], seg.payload[1]);
    t[header_len..header_len + a.len()].copy_from_slice(a);
    t[header_len + a.len()..].copy_from_slice(b);
    let pseudo = checksum::pseudo_header_sum(seg.src.ip(), seg.dst.ip(), 6, tcp_len);
    let sum = checksum::internet_checksum(t, pseudo);
    t[16..18].copy_from_slice(&sum.to_be_bytes());
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Payload, parse};

    fn seg(src: &str, dst: &str, payload: [&'static [u8]; 2]) -> OutSegment<'static> {
        OutSegment {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq: Seq::new(1000),
            ack: Seq::new(2000),
            flags: 0x18,
            window: 5000,
            options: TcpOptions {
                timestamps: Some((7, 9)),
                ..TcpOptions::default()
            },
            payload,
            ip_id: 3,
        }
    }

    /// The packets `seg` describes, written out apart from the emitter (with Python's `struct`
    /// and an RFC 1071 sum): IPv4 with header checksum 0x4e5e and TCP checksum 0x9449, IPv6 with
    /// TCP checksum 0x2528.
    const IPV4_PACKET: &str = "450000440003400040064e5ec0000201c633641e04d20050000003e8000007d0\
                               80181388944900000101080a0000000700000009474554202f20485454502f31\
                               2e310d0a";
    const IPV6_PACKET: &str = "600000000030064020010db80000000000000000000000012001\
                               0db800000000000000000000000204d20050000003e8000007d0\
                               80181388252800000101080a0000000700000009474554202f20\
                               485454502f312e310d0a";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn emitted_packets_match_packets_written_by_hand() {
        for (src, dst, expected) in [
            ("192.0.2.1:1234", "198.51.100.30:80", IPV4_PACKET),
            ("[2001:db8::1]:1234", "[2001:db8::2]:80", IPV6_PACKET),
        ] {
            let s = seg(src, dst, [b"GET / HT", b"TP/1.1\r\n"]);
            let mut buf = [0u8; 200];
            let n = emit(&s, &mut buf).unwrap();
            assert_eq!(&buf[..n], hex(expected), "{src}");
        }
    }

    #[test]
    fn emitted_packets_parse_back_with_valid_checksums() {
        for (src, dst, len) in [
            ("192.0.2.1:1234", "198.51.100.30:80", 68),
            ("[2001:db8::1]:1234", "[2001:db8::2]:80", 88),
        ] {
            let s = seg(src, dst, [b"GET / HT", b"TP/1.1\r\n"]);
            let mut buf = [0u8; 200];
            let n = emit(&s, &mut buf).unwrap();
            // IP header, 20 bytes of TCP header, 12 of timestamps option, 16 of payload.
            assert_eq!(n, len);
            assert_eq!(segment_len(&s), len);
            let p = parse(&buf[..n], Payload::Whole).unwrap();
            assert_eq!(p.tcp.payload, b"GET / HTTP/1.1\r\n");
            assert_eq!(p.tcp.seq, Seq::new(1000));
            assert_eq!(p.tcp.options.timestamps, Some((7, 9)));
            assert_eq!(p.src, s.src.ip());
            // The TCP checksum over the pseudo-header verifies to zero.
            let ip_len = n - p.tcp.payload.len() - 32;
            let pseudo = checksum::pseudo_header_sum(p.src, p.dst, 6, n - ip_len);
            assert_eq!(checksum::internet_checksum(&buf[ip_len..n], pseudo), 0);
            if ip_len == 20 {
                assert_eq!(checksum::internet_checksum(&buf[..20], 0), 0);
            }
        }
    }

    #[test]
    fn small_buffer_is_an_error() {
        let s = seg("192.0.2.1:1", "192.0.2.2:2", [b"x", b""]);
        assert_eq!(emit(&s, &mut [0u8; 10]), Err(WireError::BufferTooSmall));
    }
}
