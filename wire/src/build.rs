//! Building packets for tests and benchmarks: one builder, so every test and benchmark writes its
//! packets the way the engine does ([`emit`]) and reads the same defaults.
//!
//! ```
//! use tcpcopy_wire::{TcpFlags, build::Packet};
//! let syn = Packet::tcp("198.51.100.10:5000", "198.51.100.20:80")
//!     .seq(1000)
//!     .flags(TcpFlags::SYN)
//!     .mss(1460)
//!     .ip();
//! assert_eq!(syn[0] >> 4, 4);
//! ```

use std::net::SocketAddr;

use crate::{OutSegment, Seq, TcpOptions, emit, ethernet};

/// A TCP packet to write: addresses and numbers, with defaults for the rest (window 65535, no
/// options, no payload, IP id 0).
#[derive(Clone, Debug)]
#[must_use]
pub struct Packet<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: TcpOptions,
    payload: &'a [u8],
    ip_id: u16,
    claimed: u32,
}

impl<'a> Packet<'a> {
    /// A segment from `src` to `dst` (`"198.51.100.10:5000"`, `"[2001:db8::1]:80"`).
    ///
    /// # Panics
    /// When an address does not parse: the builder is for tests and benchmarks.
    pub fn tcp(src: &str, dst: &str) -> Self {
        Self::between(
            src.parse().expect("a socket address"),
            dst.parse().expect("a socket address"),
        )
    }

    /// [`Self::tcp`] from socket addresses.
    pub fn between(src: SocketAddr, dst: SocketAddr) -> Self {
        Self {
            src,
            dst,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 65_535,
            options: TcpOptions::default(),
            payload: &[],
            ip_id: 0,
            claimed: 0,
        }
    }

    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }

    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }

    /// TCP flags ([`crate::TcpFlags`] constants or-ed together).
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    pub fn window(mut self, window: u16) -> Self {
        self.window = window;
        self
    }

    pub fn options(mut self, options: TcpOptions) -> Self {
        self.options = options;
        self
    }

    /// An MSS option (what a SYN carries).
    pub fn mss(mut self, mss: u16) -> Self {
        self.options.mss = Some(mss);
        self
    }

    pub fn payload(mut self, payload: &'a [u8]) -> Self {
        self.payload = payload;
        self
    }

    pub fn ip_id(mut self, id: u16) -> Self {
        self.ip_id = id;
        self
    }

    /// A reply header as intercept reports it: the IP total length claims `len` payload bytes
    /// that are not there.
    pub fn claiming(mut self, len: u32) -> Self {
        self.claimed = len;
        self
    }

    /// The IP packet.
    pub fn ip(&self) -> Vec<u8> {
        let seg = OutSegment {
            src: self.src,
            dst: self.dst,
            seq: Seq::new(self.seq),
            ack: Seq::new(self.ack),
            flags: self.flags,
            window: self.window,
            options: self.options,
            payload: [self.payload, &[]],
            ip_id: self.ip_id,
        };
        let mut buf = vec![0; 60 + 40 + self.payload.len()];
        let n = emit(&seg, &mut buf).expect("the buffer holds headers and payload");
        buf.truncate(n);
        if self.claimed > 0 {
            let claim = |len: usize| u16::try_from(len).expect("a claimed length fits u16");
            if self.src.is_ipv4() {
                buf[2..4].copy_from_slice(&claim(n + self.claimed as usize).to_be_bytes());
            } else {
                let payload = n - 40 + self.claimed as usize;
                buf[4..6].copy_from_slice(&claim(payload).to_be_bytes());
            }
        }
        buf
    }

    /// The packet in an Ethernet frame from `src_mac` to `dst_mac`, with one 802.1Q tag when
    /// `vlan` is given.
    pub fn ethernet(&self, src_mac: [u8; 6], dst_mac: [u8; 6], vlan: Option<u16>) -> Vec<u8> {
        let header = ethernet::header(dst_mac, src_mac, self.dst.ip());
        let mut frame = Vec::with_capacity(18 + 100 + self.payload.len());
        frame.extend_from_slice(&header[..12]);
        if let Some(id) = vlan {
            frame.extend_from_slice(&0x8100u16.to_be_bytes());
            frame.extend_from_slice(&id.to_be_bytes());
        }
        frame.extend_from_slice(&header[12..]);
        frame.extend_from_slice(&self.ip());
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::Packet;
    use crate::{Payload, TcpFlags, ethernet::ip_payload, parse};

    #[test]
    fn what_is_built_parses_back() {
        let p = Packet::tcp("198.51.100.10:5000", "198.51.100.20:80")
            .seq(7)
            .ack(9)
            .flags(TcpFlags::ACK | TcpFlags::PSH)
            .payload(b"GET /")
            .ip();
        let back = parse(&p, Payload::Whole).unwrap();
        assert_eq!((back.tcp.src_port, back.tcp.dst_port), (5000, 80));
        assert_eq!((back.tcp.seq.raw(), back.tcp.ack.raw()), (7, 9));
        assert_eq!(back.tcp.payload, b"GET /");
    }

    #[test]
    fn a_detached_parse_gives_the_same_view_again() {
        let bytes = Packet::tcp("198.51.100.10:5000", "198.51.100.20:80")
            .seq(3)
            .flags(TcpFlags::PSH | TcpFlags::ACK)
            .payload(b"hello")
            .ip();
        let once = parse(&bytes, Payload::Whole).unwrap();
        let again = once.detach().view(&bytes).unwrap();
        assert_eq!(again.tcp.payload, b"hello");
        assert_eq!((again.src, again.dst), (once.src, once.dst));
        assert_eq!(again.tcp.seq, once.tcp.seq);
        assert!(once.detach().view(&bytes[..20]).is_none(), "too short");
    }

    #[test]
    fn a_claimed_payload_is_counted_but_absent() {
        for (src, dst) in [
            ("198.51.100.30:80", "192.0.2.1:4000"),
            ("[2001:db8::30]:80", "[2001:db8::1]:4000"),
        ] {
            let p = Packet::tcp(src, dst)
                .flags(TcpFlags::ACK)
                .claiming(1200)
                .ip();
            let back = parse(&p, Payload::HeadersOnly).unwrap();
            assert_eq!(back.tcp.payload_len, 1200, "{src}");
            assert!(back.tcp.payload.is_empty());
        }
    }

    #[test]
    fn frames_carry_the_packet_behind_one_optional_tag() {
        let b = Packet::tcp("[2001:db8::1]:4000", "[2001:db8::2]:80");
        let plain = b.ethernet([2; 6], [4; 6], None);
        let tagged = b.ethernet([2; 6], [4; 6], Some(42));
        assert_eq!(&plain[12..14], &[0x86, 0xdd]);
        assert_eq!(&tagged[12..18], &[0x81, 0x00, 0, 42, 0x86, 0xdd]);
        assert_eq!(ip_payload(&plain), Some(&b.ip()[..]));
        assert_eq!(ip_payload(&tagged), Some(&b.ip()[..]));
    }
}
