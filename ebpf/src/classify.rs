//! The first step of every program (XDP and tc): count the packet, parse it, look its port up in
//! the filter, evaluate the `-F` expression.
#![allow(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined so the verifier sees each bounds check next to its access"
)]

use aya_ebpf::maps::{Array, HashMap, PerCpuArray};

use tcpcopy_abi::{filter::FilterProgram, maps::ANY_PORT, stats::Stat};

use crate::{
    frame::Frame,
    parse::{Fields, Layout, tcp_segment},
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

/// Counts the packet and returns its fields (and where its headers are) when the port on `side` is in `ports` (or `ports`
/// holds [`ANY_PORT`]) and the `-F` expression in `expr` (if any) matches. Frames shorter than
/// their headers are counted as malformed; nothing here drops a frame.
#[inline(always)]
pub fn classify<C: Frame>(
    ctx: &C,
    ports: &HashMap<u16, u8>,
    expr: &Array<FilterProgram>,
    stats: &PerCpuArray<u64>,
    side: PortSide,
) -> Option<(Fields, Layout)> {
    count(stats, Stat::Seen, 1);
    match tcp_segment(ctx) {
        Ok(Some((f, layout))) => {
            let port = match side {
                PortSide::Destination => f.dst_port,
                PortSide::Source | PortSide::Response => f.src_port,
            };
            if ports.get_ptr(port).is_none() {
                ports.get_ptr(ANY_PORT)?;
            }
            let prog = expr.get(0)?;
            let as_request = match side {
                PortSide::Response => f.reversed(),
                PortSide::Destination | PortSide::Source => f,
            };
            if !prog.matches(&as_request) {
                return None;
            }
            count(stats, Stat::Matched, 1);
            count(stats, Stat::MatchedBytes, ctx.packet_len());
            Some((f, layout))
        }
        Ok(None) => None,
        Err(_) => {
            count(stats, Stat::Malformed, 1);
            None
        }
    }
}
