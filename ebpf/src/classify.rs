//! The first step of every program (XDP and tc): count the packet, parse it, look its port up in
//! the filter, evaluate the `-F` expression.
#![allow(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined so the verifier sees each bounds check next to its access"
)]

use aya_ebpf::maps::{Array, PerCpuArray};

use tcpcopy_abi::{filter::FilterProgram, stats::Stat};

use crate::{
    frame::Frame,
    parse::{Fields, Layout, addresses, tcp_head},
};

/// Which port of a segment the filter applies to.
#[derive(Clone, Copy)]
pub enum PortSide {
    /// Requests to a service (tcpcopy on the online host).
    Destination,
    /// Replies from a service (intercept on the assistant host).
    Source,
    /// Responses of the online service (tcpcopy `--compare` at tc egress): the source port, and
    /// the `-F` expression (written for the requests) read with addresses and ports swapped.
    Response,
    /// Both directions of a service's connections (tcpcopy `--mirror --compare`: a mirror port
    /// carries the clients' requests and the service's responses): a request by its destination
    /// port, else a response by its source port, read as [`PortSide::Response`]. The fields
    /// returned are the request's (a response's swapped), so both directions of a connection
    /// have one flow hash and one session hash.
    Both,
}

/// Adds `by` to counter `stat` of this CPU.
#[inline(always)]
pub fn count(stats: &PerCpuArray<u64>, stat: Stat, by: u64) {
    if let Some(slot) = stats.get_ptr_mut(stat as u32) {
        // SAFETY: the pointer comes from the per-CPU array lookup, is valid for this program run and
        // is only touched by this CPU (per-CPU storage, programs are not preempted mid-run).
        unsafe { *slot += by };
    }
}

/// Whether `port` is selected in `ports`: one array lookup the verifier inlines, no hash
/// (userspace sets every entry for [`ANY_PORT`](tcpcopy_abi::maps::ANY_PORT)).
#[inline(always)]
fn port_selected(ports: &Array<u8>, port: u16) -> bool {
    ports.get(u32::from(port)).is_some_and(|v| *v != 0)
}

/// Counts the packet and returns its fields (and where its headers are) when the port on `side`
/// is in `ports` and the `-F` expression in `expr` (if any)
/// matches. Frames shorter than their headers are counted as malformed; nothing here drops a
/// frame.
///
/// The cheapest test that rejects comes first, since most packets are not for us: the headers up
/// to the ports, then the port (an inlined array lookup); the addresses, the `-F` expression and
/// the packet's whole length (a helper call, across the buffers of a multi-buffer frame) only for
/// a packet whose port is selected.
#[inline(always)]
pub fn classify<C: Frame>(
    ctx: &C,
    ports: &Array<u8>,
    expr: &Array<FilterProgram>,
    stats: &PerCpuArray<u64>,
    side: PortSide,
) -> Option<(Fields, Layout)> {
    count(stats, Stat::Seen, 1);
    let head = match tcp_head(ctx) {
        Ok(Some(head)) => head,
        Ok(None) => return None,
        Err(_) => {
            count(stats, Stat::Malformed, 1);
            return None;
        }
    };
    // Whether the frame is a response (read as its request): `Response`, and `Both` when the
    // destination port is not selected but the source port is.
    let response = match side {
        PortSide::Destination => {
            if !port_selected(ports, head.dst_port) {
                return None;
            }
            false
        }
        PortSide::Source | PortSide::Response => {
            if !port_selected(ports, head.src_port) {
                return None;
            }
            matches!(side, PortSide::Response)
        }
        PortSide::Both => {
            if port_selected(ports, head.dst_port) {
                false
            } else if port_selected(ports, head.src_port) {
                true
            } else {
                return None;
            }
        }
    };
    let Ok(f) = addresses(ctx, &head) else {
        count(stats, Stat::Malformed, 1);
        return None;
    };
    let prog = expr.get(0)?;
    // A response is selected as the request it answers would be.
    let as_request = if response { f.reversed() } else { f };
    if !prog.matches(&as_request) {
        return None;
    }
    count(stats, Stat::Matched, 1);
    count(stats, Stat::MatchedBytes, ctx.packet_len());
    let fields = if matches!(side, PortSide::Both) {
        as_request
    } else {
        f
    };
    Some((fields, head.layout))
}
