//! Copying a selected frame to userspace through a BPF ring buffer, shared by both XDP programs.
#![allow(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined so the verifier sees each bound next to its use"
)]

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_ktime_get_ns, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    maps::{PerCpuArray, RingBuf},
    programs::XdpContext,
};

use tcpcopy_abi::{maps::FRAME_HEADER_LEN, stats::Stat};

use crate::classify::count;

/// The whole frame's length, every buffer of a multi-buffer (jumbo) frame included (`data_end`
/// ends the first buffer only).
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> u64 {
    // SAFETY: the helper only reads the context the kernel passed this program.
    unsafe { bpf_xdp_get_buff_len(ctx.ctx) }
}

/// Copies the first `N - 8` bytes of the frame, behind a frame header, into `ring`, assembling
/// the record in this CPU's `scratch` slot. Counts `Copied`, `Truncated` or `RingFull`.
#[inline(always)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "n <= snap < 2^16, checked above each cast"
)]
pub fn copy_frame<const N: usize>(
    ctx: &XdpContext,
    scratch: &PerCpuArray<[u8; N]>,
    ring: &RingBuf,
    stats: &PerCpuArray<u64>,
    last_wake: &PerCpuArray<u64>,
) {
    let Some(slot) = scratch.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the per-CPU slot is valid for this program run and only this CPU touches it.
    let buf = unsafe { &mut *slot };
    // The load below reads across the buffers of a multi-buffer frame.
    let wire = frame_len(ctx);
    let snap = (N - FRAME_HEADER_LEN) as u64;
    // Clamped as u64 and checked against zero on the very register passed to the helper (the
    // black box keeps the compiler from testing `data_end == data` instead): the verifier needs
    // both bounds of the length.
    let n = core::hint::black_box(if wire > snap { snap } else { wire });
    if n == 0 || n > snap {
        return;
    }
    // SAFETY: the destination is `n <= N - 8` bytes past offset 8 of the N-byte slot; the helper
    // checks the source range against the frame itself.
    let ret = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            0,
            buf.as_mut_ptr().add(FRAME_HEADER_LEN).cast(),
            n as u32,
        )
    };
    if ret < 0 {
        count(stats, Stat::Malformed, 1);
        return;
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "n <= snap < 2^16; frames < 2^16"
    )]
    {
        buf[0..2].copy_from_slice(&(n as u16).to_ne_bytes());
        buf[2..4].copy_from_slice(&(wire as u16).to_ne_bytes());
    }
    buf[4..8].copy_from_slice(&crate::parse::rx_queue(ctx).to_ne_bytes());
    let len = FRAME_HEADER_LEN + n as usize;
    if len > N {
        return;
    }
    if ring
        .output::<[u8]>(&buf[..len], wake_flags(last_wake))
        .is_ok()
    {
        count(stats, Stat::Copied, 1);
        if wire > snap {
            count(stats, Stat::Truncated, 1);
        }
    } else {
        count(stats, Stat::RingFull, 1);
    }
}

/// Shortest time between two wake-ups of the ring's reader from one CPU, in nanoseconds. Waking
/// the reader is most of the cost of a copied frame (an interrupt and a thread wake-up, several
/// microseconds against a few hundred nanoseconds for the rest); under load one wake-up per
/// 100 µs is plenty, and the reader also looks at the ring every millisecond.
const WAKE_GAP_NS: u64 = 100_000;

/// The ring-buffer flags for a record: the kernel's own choice (wake the reader if it has read
/// everything) at most once per [`WAKE_GAP_NS`] per CPU, no wake-up otherwise.
#[inline(always)]
fn wake_flags(last_wake: &PerCpuArray<u64>) -> u64 {
    let Some(last) = last_wake.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the per-CPU slot is valid for this program run and only this CPU touches it.
    let last = unsafe { &mut *last };
    if now.wrapping_sub(*last) >= WAKE_GAP_NS {
        *last = now;
        0
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}
