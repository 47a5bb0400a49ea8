//! The wire layer, the one place packets are parsed and written: zero-copy views of Ethernet
//! frames ([`ethernet`]), IP/TCP packets ([`parse`]) and wrap-around sequence numbers ([`Seq`]),
//! and the emitter of the packets the engine sends ([`emit`]). The engine, intercept, the
//! control-channel codecs and offline replay all read packets through it.
//!
//! The parsing contract (after smoltcp's `wire`): untrusted bytes go through [`parse`], which checks
//! every length before anything is read, so no accessor can panic on a short or lying packet; what
//! does not check out is a [`WireError`], which the engine counts and drops.

pub mod build;
mod checksum;
mod emit;
pub mod ethernet;
mod ip;
mod seq;
mod tcp;

pub use checksum::{internet_checksum, pseudo_header_sum};
pub use emit::{OutSegment, emit, segment_len};
pub use ip::IpHeader;
pub use seq::Seq;
pub use tcp::{TcpFlags, TcpHeader, TcpOptions, TcpSegment};

use std::net::IpAddr;

/// Why bytes were not accepted as a TCP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than a header it announces.
    #[error("truncated packet")]
    Truncated,
    /// A header field with an impossible value (version, header length, option length).
    #[error("malformed header")]
    Malformed,
    /// Not TCP, a fragment, or IPv6 with extension headers.
    #[error("not a TCP packet this engine handles")]
    Unsupported,
    /// The output buffer is too small for the packet.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Whether a packet may be shorter than its IP total length (reply headers from intercept carry no
/// payload; captured packets must be whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    Whole,
    HeadersOnly,
}

/// A parsed TCP packet: addresses from the IP header and a view of the segment.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub tcp: TcpSegment<'a>,
    /// Where the payload starts in the parsed bytes (IP and TCP headers).
    pub headers_len: usize,
}

impl Packet<'_> {
    /// What was parsed, without the borrow of the bytes: kept beside them, it gives the same view
    /// again ([`Parsed::view`]) without parsing twice.
    pub fn detach(&self) -> Parsed {
        Parsed {
            src: self.src,
            dst: self.dst,
            tcp: TcpSegment {
                payload: &[],
                ..self.tcp
            },
            headers_len: self.headers_len,
            payload_len: self.tcp.payload.len(),
        }
    }
}

/// A [`Packet`] detached from its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Parsed {
    src: IpAddr,
    dst: IpAddr,
    tcp: TcpSegment<'static>,
    headers_len: usize,
    payload_len: usize,
}

impl Parsed {
    /// The packet's view over `buf`, the bytes it was parsed from; `None` for other bytes that
    /// are too short.
    pub fn view<'a>(&self, buf: &'a [u8]) -> Option<Packet<'a>> {
        let payload = buf.get(self.headers_len..self.headers_len + self.payload_len)?;
        Some(Packet {
            src: self.src,
            dst: self.dst,
            tcp: TcpSegment {
                payload,
                ..self.tcp
            },
            headers_len: self.headers_len,
        })
    }
}

/// Parses an IP packet (no link-layer header) carrying TCP.
pub fn parse(buf: &[u8], payload: Payload) -> Result<Packet<'_>, WireError> {
    let ip = IpHeader::parse(buf)?;
    let end = ip.total_len.min(buf.len());
    if payload == Payload::Whole && buf.len() < ip.total_len {
        return Err(WireError::Truncated);
    }
    let declared_tcp_len = ip.total_len - ip.header_len;
    let tcp = TcpSegment::parse(&buf[ip.header_len..end], declared_tcp_len)?;
    let headers_len = ip.header_len + tcp.header_len;
    Ok(Packet {
        src: ip.src,
        dst: ip.dst,
        tcp,
        headers_len,
    })
}
