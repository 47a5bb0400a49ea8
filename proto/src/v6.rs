//! Protocol version 6, the original's (all integers in network byte order):
//!
//! - tcpcopy -> intercept: 14-byte records `client ip (u32), client port (u16), type (u16),
//!   target ip (u32), target port (u16)`. The first record of a connection has addresses 0 and
//!   type 6 (the version); type 1 registers a replayed client before its SYN; type 2 (delete) is
//!   accepted and ignored.
//! - intercept -> tcpcopy: messages of a `u16` count and that many 64-byte records, each the
//!   reply's IPv4 header (20 bytes), TCP header (20 bytes) and up to 24 bytes of TCP options; no
//!   payload, whose length stays recoverable from the IP total length.
//!
//! IPv4 only: an IPv6 registration or reply has no representation here.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    vec::Vec,
};

use crate::{Headers, Reply, inbox::Inbox};

/// The protocol version of this module.
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

/// The reply as a 64-byte record: IPv4 header, TCP header, up to 24 bytes of TCP options (whole
/// options words; the data offset and total length adjusted so that the payload length stays
/// what the reply carried). `None` for an IPv6 reply.
pub fn response_record(reply: &Reply) -> Option<[u8; RESPONSE_RECORD_LEN]> {
    let (SocketAddr::V4(_), SocketAddr::V4(_)) = (reply.client, reply.target) else {
        return None;
    };
    let h = reply.headers.as_slice();
    let doff = usize::from(*h.get(32)? >> 4) * 4;
    let opts = h.get(40..20 + doff)?;
    let kept = opts.len().min(MAX_OPTION_LEN) & !3;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let payload = total.checked_sub(20 + doff)?;
    let mut rec = [0u8; RESPONSE_RECORD_LEN];
    rec[..40].copy_from_slice(&h[..40]);
    let new_total = u16::try_from(40 + kept + payload).unwrap_or(u16::MAX);
    rec[2..4].copy_from_slice(&new_total.to_be_bytes());
    #[expect(clippy::cast_possible_truncation, reason = "(20 + kept) / 4 <= 11")]
    let new_doff = ((20 + kept) / 4) as u8;
    rec[32] = (new_doff << 4) | (h[32] & 0x0f);
    rec[40..40 + kept].copy_from_slice(&opts[..kept]);
    Some(rec)
}

/// The IP/TCP header bytes inside a response record.
pub fn response_headers(rec: &[u8; RESPONSE_RECORD_LEN]) -> Headers {
    let doff = usize::from(rec[32] >> 4) * 4;
    Headers::from_slice(&rec[..(20 + doff).clamp(40, RESPONSE_RECORD_LEN)])
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
    inbox: Inbox,
    /// Records left in the message being read.
    left: usize,
}

impl BatchDecoder {
    /// Adds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.inbox.feed(bytes);
    }

    /// The next complete record, if one has arrived.
    pub fn next_record(&mut self) -> Option<[u8; RESPONSE_RECORD_LEN]> {
        loop {
            if self.left == 0 {
                let n: [u8; 2] = self.inbox.take()?;
                self.left = usize::from(u16::from_be_bytes(n));
                continue;
            }
            let rec = self.inbox.take()?;
            self.left -= 1;
            return Some(rec);
        }
    }
}

/// Splits a byte stream from tcpcopy into client records.
#[derive(Debug, Default)]
pub struct ClientDecoder {
    inbox: Inbox,
}

impl ClientDecoder {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.inbox.feed(bytes);
    }

    pub fn next_record(&mut self) -> Option<ClientRecord> {
        self.inbox.take().map(|b| ClientRecord::decode(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        encode_response,
        reply::tests::{payload_len, reply},
    };

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
            let r = encode_response(&reply(false, ip_opts, tcp_opts, payload)).unwrap();
            let rec = response_record(&r).unwrap();
            let h = response_headers(&rec);
            let h = h.as_slice();
            assert_eq!(payload_len(h), payload, "{ip_opts} {tcp_opts}");
            assert_eq!(h[0], 0x45);
            assert_eq!(&h[12..20], &[198, 51, 100, 30, 192, 0, 2, 7]);
            assert_eq!(h.len(), 40 + tcp_opts.min(24));
        }
    }

    #[test]
    fn ipv6_replies_have_no_version_6_record() {
        let r = encode_response(&reply(true, 0, 12, 100)).unwrap();
        assert_eq!(response_record(&r), None);
    }

    #[test]
    fn batches_decode_across_arbitrary_splits() {
        let recs: Vec<_> = (0..20)
            .map(|i| response_record(&encode_response(&reply(false, 0, 12, i)).unwrap()).unwrap())
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
