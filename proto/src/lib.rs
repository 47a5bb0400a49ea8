//! The tcpcopy <-> intercept control channel, wire-compatible with the original's protocol
//! version 6 (all integers in network byte order):
//!
//! - tcpcopy -> intercept: 14-byte records `client ip (u32), client port (u16), type (u16),
//!   target ip (u32), target port (u16)`. The first record of a connection has addresses 0 and
//!   type 6 (the version); type 1 registers a replayed client before its SYN; type 2 (delete) is
//!   accepted and ignored.
//! - intercept -> tcpcopy: messages of a `u16` count and that many 64-byte records, each the
//!   reply's IPv4 header (20 bytes), TCP header (20 bytes) and up to 24 bytes of TCP options; no
//!   payload, whose length stays recoverable from the IP total length.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddrV4},
    vec::Vec,
};

use tcpcopy_wire::{IpHeader, TcpHeader, WireError};

/// Protocol version this implementation speaks.
pub const VERSION: u16 = 6;
/// Record types tcpcopy sends.
pub const TYPE_REGISTER: u16 = 1;
pub const TYPE_DELETE: u16 = 2;
/// Bytes of a tcpcopy -> intercept record.
pub const CLIENT_RECORD_LEN: usize = 14;
/// Bytes of an intercept -> tcpcopy record.
pub const RESPONSE_RECORD_LEN: usize = 64;
/// TCP option bytes a response record keeps.
pub const MAX_OPTION_LEN: usize = RESPONSE_RECORD_LEN - 40;
/// Records per intercept message by default (intercept `-n`).
pub const DEFAULT_BATCH: usize = 16;
/// The control channel's default port (`-p`).
pub const DEFAULT_PORT: u16 = 36524;

/// A tcpcopy -> intercept record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub client: SocketAddrV4,
    pub kind: u16,
    pub target: SocketAddrV4,
}

impl ClientRecord {
    /// The first record of every connection: the protocol version.
    pub fn version() -> Self {
        let zero = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        Self {
            client: zero,
            kind: VERSION,
            target: zero,
        }
    }

    /// Announces that replies from `target` to `client` belong to this tcpcopy.
    pub fn register(client: SocketAddrV4, target: SocketAddrV4) -> Self {
        Self {
            client,
            kind: TYPE_REGISTER,
            target,
        }
    }

    pub fn encode(&self) -> [u8; CLIENT_RECORD_LEN] {
        let mut b = [0u8; CLIENT_RECORD_LEN];
        b[0..4].copy_from_slice(&self.client.ip().octets());
        b[4..6].copy_from_slice(&self.client.port().to_be_bytes());
        b[6..8].copy_from_slice(&self.kind.to_be_bytes());
        b[8..12].copy_from_slice(&self.target.ip().octets());
        b[12..14].copy_from_slice(&self.target.port().to_be_bytes());
        b
    }

    pub fn decode(b: &[u8; CLIENT_RECORD_LEN]) -> Self {
        Self {
            client: SocketAddrV4::new(
                Ipv4Addr::new(b[0], b[1], b[2], b[3]),
                u16::from_be_bytes([b[4], b[5]]),
            ),
            kind: u16::from_be_bytes([b[6], b[7]]),
            target: SocketAddrV4::new(
                Ipv4Addr::new(b[8], b[9], b[10], b[11]),
                u16::from_be_bytes([b[12], b[13]]),
            ),
        }
    }
}

/// Why a reply could not become a response record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not an IPv4/TCP header")]
    NotIpv4Tcp,
    #[error("header shorter than it announces")]
    Truncated,
}

impl From<WireError> for RecordError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated | WireError::Malformed | WireError::BufferTooSmall => {
                RecordError::Truncated
            }
            WireError::Unsupported => RecordError::NotIpv4Tcp,
        }
    }
}

/// A caught reply as a response record, with the addresses it was parsed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub record: [u8; RESPONSE_RECORD_LEN],
    /// The replayed client the reply goes to.
    pub client: SocketAddrV4,
    /// The test server it comes from.
    pub target: SocketAddrV4,
}

/// The reply's IPv4 and TCP headers as a 64-byte record, their lengths checked once through the
/// wire layer; the TCP options are copied as they are (tcpcopy's engine reads them). IP options
/// are left out and TCP options beyond 24 bytes dropped; the lengths in the headers are adjusted
/// so that the payload length (total length - headers) stays what the reply carried.
pub fn encode_response(ip_packet: &[u8]) -> Result<Response, RecordError> {
    let ip = IpHeader::parse(ip_packet)?;
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (ip.src, ip.dst) else {
        return Err(RecordError::NotIpv4Tcp);
    };
    let tcp_bytes = &ip_packet[ip.header_len..];
    let tcp = TcpHeader::parse(tcp_bytes)?;
    if ip.total_len < ip.header_len + tcp.header_len {
        return Err(RecordError::Truncated);
    }
    let opts = &tcp_bytes[20..tcp.header_len];
    let kept = opts.len().min(MAX_OPTION_LEN) & !3;
    let payload = ip.total_len - ip.header_len - tcp.header_len;
    let mut rec = [0u8; RESPONSE_RECORD_LEN];
    rec[..20].copy_from_slice(&ip_packet[..20]);
    rec[0] = 0x45;
    let new_total = u16::try_from(20 + 20 + kept + payload).unwrap_or(u16::MAX);
    rec[2..4].copy_from_slice(&new_total.to_be_bytes());
    rec[20..40].copy_from_slice(&tcp_bytes[..20]);
    #[expect(clippy::cast_possible_truncation, reason = "(20 + kept) / 4 <= 11")]
    let new_doff = ((20 + kept) / 4) as u8;
    rec[32] = (new_doff << 4) | (tcp_bytes[12] & 0x0f);
    rec[40..40 + kept].copy_from_slice(&opts[..kept]);
    Ok(Response {
        record: rec,
        client: SocketAddrV4::new(dst, tcp.dst_port),
        target: SocketAddrV4::new(src, tcp.src_port),
    })
}

/// The IP/TCP header bytes inside a response record (what the engine's `handle_response` takes).
pub fn response_headers(rec: &[u8; RESPONSE_RECORD_LEN]) -> &[u8] {
    let doff = usize::from(rec[32] >> 4) * 4;
    &rec[..(20 + doff).clamp(40, RESPONSE_RECORD_LEN)]
}

/// Appends one intercept message (count + records) to `out`.
pub fn encode_batch(records: &[[u8; RESPONSE_RECORD_LEN]], out: &mut Vec<u8>) {
    let n = u16::try_from(records.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    for r in records.iter().take(usize::from(n)) {
        out.extend_from_slice(r);
    }
}

/// Splits a byte stream from intercept into response records.
#[derive(Debug, Default)]
pub struct BatchDecoder {
    buf: Vec<u8>,
    /// Records left in the message being read.
    left: usize,
}

impl BatchDecoder {
    /// Adds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete record, if one has arrived.
    pub fn next_record(&mut self) -> Option<[u8; RESPONSE_RECORD_LEN]> {
        loop {
            if self.left == 0 {
                if self.buf.len() < 2 {
                    return None;
                }
                self.left = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
                self.buf.drain(..2);
                continue;
            }
            if self.buf.len() < RESPONSE_RECORD_LEN {
                return None;
            }
            let mut rec = [0u8; RESPONSE_RECORD_LEN];
            rec.copy_from_slice(&self.buf[..RESPONSE_RECORD_LEN]);
            self.buf.drain(..RESPONSE_RECORD_LEN);
            self.left -= 1;
            return Some(rec);
        }
    }
}

/// Splits a byte stream from tcpcopy into client records.
#[derive(Debug, Default)]
pub struct ClientDecoder {
    buf: Vec<u8>,
}

impl ClientDecoder {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn next_record(&mut self) -> Option<ClientRecord> {
        let b: [u8; CLIENT_RECORD_LEN] = self.buf.get(..CLIENT_RECORD_LEN)?.try_into().ok()?;
        self.buf.drain(..CLIENT_RECORD_LEN);
        Some(ClientRecord::decode(&b))
    }
}

#[cfg(test)]
mod tests {
    use std::vec;

    use super::*;

    fn reply(ip_opts: usize, tcp_opts: usize, payload: usize) -> Vec<u8> {
        let ihl = 20 + ip_opts;
        let doff = 20 + tcp_opts;
        let total = ihl + doff + payload;
        let mut p = vec![0u8; total];
        p[0] = 0x40 | u8::try_from(ihl / 4).unwrap();
        p[2..4].copy_from_slice(&u16::try_from(total).unwrap().to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&[198, 51, 100, 30]);
        p[16..20].copy_from_slice(&[192, 0, 2, 7]);
        p[ihl..ihl + 2].copy_from_slice(&80u16.to_be_bytes());
        p[ihl + 2..ihl + 4].copy_from_slice(&40_000u16.to_be_bytes());
        p[ihl + 12] = u8::try_from(doff / 4).unwrap() << 4;
        p[ihl + 13] = 0x18;
        for (i, b) in p[ihl + 20..ihl + doff].iter_mut().enumerate() {
            *b = 1 + u8::try_from(i % 3).unwrap();
        }
        p
    }

    fn payload_len(headers: &[u8]) -> usize {
        let total = usize::from(u16::from_be_bytes([headers[2], headers[3]]));
        let doff = usize::from(headers[32] >> 4) * 4;
        total - 20 - doff
    }

    #[test]
    fn client_records_round_trip_in_14_bytes() {
        let r = ClientRecord::register(
            "192.0.2.7:40000".parse().unwrap(),
            "198.51.100.30:80".parse().unwrap(),
        );
        let b = r.encode();
        assert_eq!(b.len(), 14);
        assert_eq!(&b[6..8], &[0, 1]);
        assert_eq!(ClientRecord::decode(&b), r);
        assert_eq!(
            ClientRecord::version().encode(),
            [0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn response_records_keep_the_payload_length() {
        for (ip_opts, tcp_opts, payload) in [(0, 0, 0), (0, 12, 1448), (8, 20, 10), (0, 40, 5)] {
            let r = encode_response(&reply(ip_opts, tcp_opts, payload)).unwrap();
            assert_eq!(r.client, "192.0.2.7:40000".parse().unwrap());
            assert_eq!(r.target, "198.51.100.30:80".parse().unwrap());
            let h = response_headers(&r.record);
            assert_eq!(payload_len(h), payload, "{ip_opts} {tcp_opts}");
            assert_eq!(h[0], 0x45);
            assert_eq!(&h[12..20], &[198, 51, 100, 30, 192, 0, 2, 7]);
            assert_eq!(h.len(), 40 + tcp_opts.min(24));
        }
    }

    #[test]
    fn bad_replies_are_errors() {
        assert_eq!(encode_response(&[0x45; 10]), Err(RecordError::Truncated));
        let mut udp = reply(0, 0, 0);
        udp[9] = 17;
        assert_eq!(encode_response(&udp), Err(RecordError::NotIpv4Tcp));
    }

    #[test]
    fn batches_decode_across_arbitrary_splits() {
        let recs: Vec<_> = (0..20)
            .map(|i| encode_response(&reply(0, 12, i)).unwrap().record)
            .collect();
        let mut wire = Vec::new();
        encode_batch(&recs[..16], &mut wire);
        encode_batch(&recs[16..], &mut wire);
        for chunk in [1, 7, 64, 1000] {
            let mut d = BatchDecoder::default();
            let mut got = Vec::new();
            for part in wire.chunks(chunk) {
                d.feed(part);
                while let Some(r) = d.next_record() {
                    got.push(r);
                }
            }
            assert_eq!(got, recs);
        }
    }
}
