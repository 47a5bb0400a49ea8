//! The first step of both XDP programs: count the frame, parse it, look its port up in the filter.
#![allow(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined so the verifier sees each bounds check next to its access"
)]

use aya_ebpf::{
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};

use tcpcopy_abi::{filter::FilterProgram, maps::ANY_PORT, stats::Stat};

use crate::parse::{Fields, tcp_fields};

/// Which port of a segment the filter applies to.
#[derive(Clone, Copy)]
pub enum PortSide {
    /// Requests to a service (tcpcopy on the online host).
    Destination,
    /// Replies from a service (intercept on the assistant host).
    Source,
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

/// Counts the frame and returns its fields when the port on `side` is in `ports` (or `ports`
/// holds [`ANY_PORT`]) and the `-F` expression in `expr` (if any) matches. Frames shorter than
/// their headers are counted as malformed; nothing here drops a frame.
#[inline(always)]
pub fn classify(
    ctx: &XdpContext,
    ports: &HashMap<u16, u8>,
    expr: &Array<FilterProgram>,
    stats: &PerCpuArray<u64>,
    side: PortSide,
) -> Option<Fields> {
    count(stats, Stat::Seen, 1);
    match tcp_fields(ctx) {
        Ok(Some(f)) => {
            let port = match side {
                PortSide::Destination => f.dst_port,
                PortSide::Source => f.src_port,
            };
            if ports.get_ptr(port).is_none() {
                ports.get_ptr(ANY_PORT)?;
            }
            let prog = expr.get(0)?;
            if !prog.matches(&f) {
                return None;
            }
            count(stats, Stat::Matched, 1);
            count(stats, Stat::MatchedBytes, crate::copy::frame_len(ctx));
            Some(f)
        }
        Ok(None) => None,
        Err(_) => {
            count(stats, Stat::Malformed, 1);
            None
        }
    }
}
