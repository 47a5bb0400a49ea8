//! The first step of both XDP programs: count the frame, parse it, look its port up in the filter.
#![allow(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined so the verifier sees each bounds check next to its access"
)]

use aya_ebpf::{
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
};

use crate::{
    parse::{TcpPorts, tcp_ports},
    stats::Stat,
};

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
#[allow(unsafe_code)]
pub fn count(stats: &PerCpuArray<u64>, stat: Stat, by: u64) {
    if let Some(slot) = stats.get_ptr_mut(stat as u32) {
        // SAFETY: the pointer comes from the per-CPU array lookup, is valid for this program run and
        // is only touched by this CPU (per-CPU storage, programs are not preempted mid-run).
        unsafe { *slot += by };
    }
}

/// Counts the frame and returns its TCP ports when the port on `side` is in `filter`.
/// Frames shorter than their headers are counted as malformed; nothing here drops a frame.
#[inline(always)]
pub fn classify(
    ctx: &XdpContext,
    filter: &HashMap<u16, u8>,
    stats: &PerCpuArray<u64>,
    side: PortSide,
) -> Option<TcpPorts> {
    count(stats, Stat::Seen, 1);
    match tcp_ports(ctx) {
        Ok(Some(ports)) => {
            let port = match side {
                PortSide::Destination => ports.dst,
                PortSide::Source => ports.src,
            };
            filter.get_ptr(port)?;
            count(stats, Stat::Matched, 1);
            count(
                stats,
                Stat::MatchedBytes,
                (ctx.data_end() - ctx.data()) as u64,
            );
            Some(ports)
        }
        Ok(None) => None,
        Err(_) => {
            count(stats, Stat::Malformed, 1);
            None
        }
    }
}
