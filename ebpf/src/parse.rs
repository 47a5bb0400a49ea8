//! Bounds-checked header parsing over an XDP frame, shared by both XDP programs.
//!
//! Every read goes through [`load`], which checks the frame end first, so the verifier accepts it
//! and a short or lying frame yields [`Malformed`] instead of a bad read.
#![allow(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined so the verifier sees each bounds check next to its access"
)]

use aya_ebpf::programs::XdpContext;

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

/// Reads a `T` at `offset` bytes into the frame, or `None` past its end.
#[inline(always)]
pub fn load<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    // SAFETY: [start + offset, start + offset + size_of::<T>()) was checked to lie inside the frame
    // (data..data_end) just above; read_unaligned because packet headers carry no alignment.
    Some(unsafe { core::ptr::read_unaligned((start + offset) as *const T) })
}

/// The receive queue the frame arrived on.
#[inline(always)]
pub fn rx_queue(ctx: &XdpContext) -> u32 {
    // SAFETY: `ctx.ctx` is the xdp_md the kernel passed to this program run; reading a field of it
    // is what the verifier allows for the context pointer.
    unsafe { (*ctx.ctx).rx_queue_index }
}

#[inline(always)]
fn be16(ctx: &XdpContext, offset: usize) -> Result<u16, Malformed> {
    load::<[u8; 2]>(ctx, offset)
        .map(u16::from_be_bytes)
        .ok_or(Malformed)
}

fn v6(ctx: &XdpContext, offset: usize) -> Result<[u64; 2], Malformed> {
    let b: [u8; 16] = load(ctx, offset).ok_or(Malformed)?;
    Ok([
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
    ])
}

/// The addresses and TCP ports of an Ethernet frame (one optional VLAN tag, IPv4 or IPv6 without
/// extension headers), `Ok(None)` for anything that is not a first-fragment TCP segment.
#[inline(always)]
pub fn tcp_fields(ctx: &XdpContext) -> Result<Option<Fields>, Malformed> {
    let mut ethertype = be16(ctx, 12)?;
    let mut l3 = 14;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = be16(ctx, 16)?;
        l3 = 18;
    }
    let l4 = match ethertype {
        ETH_P_IP => {
            let version_ihl: u8 = load(ctx, l3).ok_or(Malformed)?;
            let ihl = usize::from(version_ihl & 0x0f) * 4;
            if version_ihl >> 4 != 4 || ihl < 20 {
                return Err(Malformed);
            }
            if load::<u8>(ctx, l3 + 9).ok_or(Malformed)? != IPPROTO_TCP {
                return Ok(None);
            }
            // A non-first fragment carries no TCP header.
            if be16(ctx, l3 + 6)? & 0x1fff != 0 {
                return Ok(None);
            }
            let src: [u8; 4] = load(ctx, l3 + 12).ok_or(Malformed)?;
            let dst: [u8; 4] = load(ctx, l3 + 16).ok_or(Malformed)?;
            (l3 + ihl, v4_mapped(src), v4_mapped(dst))
        }
        ETH_P_IPV6 => {
            if load::<u8>(ctx, l3 + 6).ok_or(Malformed)? != IPPROTO_TCP {
                return Ok(None);
            }
            (l3 + IPV6_HLEN, v6(ctx, l3 + 8)?, v6(ctx, l3 + 24)?)
        }
        _ => return Ok(None),
    };
    let (l4, src, dst) = l4;
    let ports: [u8; 4] = load(ctx, l4).ok_or(Malformed)?;
    Ok(Some(Fields {
        src_port: u16::from_be_bytes([ports[0], ports[1]]),
        dst_port: u16::from_be_bytes([ports[2], ports[3]]),
        src,
        dst,
    }))
}
