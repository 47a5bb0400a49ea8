//! Bounds-checked header parsing over a packet ([`Frame`]: an XDP frame or a tc socket buffer),
//! shared by every program.
//!
//! Every read goes through [`Frame::load`], which checks the packet's end first, so the verifier
//! accepts it and a short or lying packet yields [`Malformed`] instead of a bad read.
#![allow(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined so the verifier sees each bounds check next to its access"
)]

use crate::frame::Frame;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;
const IPV6_HLEN: usize = 40;

/// The frame is shorter than a header it announces.
pub struct Malformed;

pub use tcpcopy_abi::filter::Fields;
use tcpcopy_abi::filter::v4_mapped;

#[inline(always)]
fn be16<C: Frame>(ctx: &C, offset: usize) -> Result<u16, Malformed> {
    ctx.load::<[u8; 2]>(offset)
        .map(u16::from_be_bytes)
        .ok_or(Malformed)
}

fn v6<C: Frame>(ctx: &C, offset: usize) -> Result<[u64; 2], Malformed> {
    let b: [u8; 16] = ctx.load(offset).ok_or(Malformed)?;
    Ok([
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
    ])
}

/// Where a segment's headers are in its packet.
#[derive(Clone, Copy)]
pub struct Layout {
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the TCP header.
    pub l4: usize,
    /// IPv6 (else IPv4).
    pub v6: bool,
}

/// The addresses and TCP ports of an Ethernet frame (one optional VLAN tag, IPv4 or IPv6 without
/// extension headers), `Ok(None)` for anything that is not a first-fragment TCP segment.
#[inline(always)]
pub fn tcp_fields<C: Frame>(ctx: &C) -> Result<Option<Fields>, Malformed> {
    Ok(tcp_segment(ctx)?.map(|(f, _)| f))
}

/// [`tcp_fields`] and where the headers are.
#[inline(always)]
pub fn tcp_segment<C: Frame>(ctx: &C) -> Result<Option<(Fields, Layout)>, Malformed> {
    let Some(head) = tcp_head(ctx)? else {
        return Ok(None);
    };
    Ok(Some((addresses(ctx, &head)?, head.layout)))
}

/// Where a TCP segment's headers are and its ports: what a program reads of a packet before it
/// knows whether the packet is for it (the addresses come after, [`addresses`]).
#[derive(Clone, Copy)]
pub struct Head {
    pub layout: Layout,
    pub src_port: u16,
    pub dst_port: u16,
}

/// The headers' places and the ports of a first-fragment TCP segment (one optional VLAN tag,
/// IPv4 or IPv6 without extension headers), `Ok(None)` for anything else. Reads the fewest bytes
/// that decide: the EtherType, the IP version, length, protocol and fragment offset, the ports.
#[inline(always)]
pub fn tcp_head<C: Frame>(ctx: &C) -> Result<Option<Head>, Malformed> {
    let mut ethertype = be16(ctx, 12)?;
    let mut l3 = 14;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = be16(ctx, 16)?;
        l3 = 18;
    }
    let (l4, v6) = match ethertype {
        ETH_P_IP => {
            let version_ihl: u8 = ctx.load(l3).ok_or(Malformed)?;
            let ihl = usize::from(version_ihl & 0x0f) * 4;
            if version_ihl >> 4 != 4 || ihl < 20 {
                return Err(Malformed);
            }
            if ctx.load::<u8>(l3 + 9).ok_or(Malformed)? != IPPROTO_TCP {
                return Ok(None);
            }
            // A non-first fragment carries no TCP header.
            if be16(ctx, l3 + 6)? & 0x1fff != 0 {
                return Ok(None);
            }
            (l3 + ihl, false)
        }
        ETH_P_IPV6 => {
            if ctx.load::<u8>(l3 + 6).ok_or(Malformed)? != IPPROTO_TCP {
                return Ok(None);
            }
            (l3 + IPV6_HLEN, true)
        }
        _ => return Ok(None),
    };
    let ports: [u8; 4] = ctx.load(l4).ok_or(Malformed)?;
    Ok(Some(Head {
        layout: Layout { l3, l4, v6 },
        src_port: u16::from_be_bytes([ports[0], ports[1]]),
        dst_port: u16::from_be_bytes([ports[2], ports[3]]),
    }))
}

/// The addresses of the segment `head` describes, with its ports.
#[inline(always)]
pub fn addresses<C: Frame>(ctx: &C, head: &Head) -> Result<Fields, Malformed> {
    let l3 = head.layout.l3;
    let (src, dst) = if head.layout.v6 {
        (v6(ctx, l3 + 8)?, v6(ctx, l3 + 24)?)
    } else {
        let src: [u8; 4] = ctx.load(l3 + 12).ok_or(Malformed)?;
        let dst: [u8; 4] = ctx.load(l3 + 16).ok_or(Malformed)?;
        (v4_mapped(src), v4_mapped(dst))
    };
    Ok(Fields {
        src_port: head.src_port,
        dst_port: head.dst_port,
        src,
        dst,
    })
}
