//! Copying a selected packet to userspace through a BPF ring buffer, shared by every program.
#![allow(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined so the verifier sees each bound next to its use"
)]

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::bpf_ktime_get_ns,
    maps::{PerCpuArray, RingBuf},
};

use tcpcopy_abi::{maps::FRAME_HEADER_LEN, stats::Stat};

use crate::{classify::count, frame::Frame, parse::Layout};

/// Copies the first `min(N - 16, limit)` bytes of the packet, behind a frame header (with the
/// time, `bpf_ktime_get_ns`), into `ring`, assembling the record in this CPU's `scratch` slot.
/// Counts `Copied`, `Truncated` or `RingFull`.
#[inline(always)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "n <= snap < 2^16, checked above each cast"
)]
pub fn copy_frame<C: Frame, const N: usize>(
    ctx: &C,
    scratch: &PerCpuArray<[u8; N]>,
    ring: &RingBuf,
    stats: &PerCpuArray<u64>,
    last_wake: &PerCpuArray<u64>,
    limit: u64,
) {
    let Some(slot) = scratch.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the per-CPU slot is valid for this program run and only this CPU touches it.
    let buf = unsafe { &mut *slot };
    // The load below reads across the buffers of a multi-buffer frame.
    let wire = ctx.packet_len();
    let max = (N - FRAME_HEADER_LEN) as u64;
    let snap = if limit < max { limit } else { max };
    // Clamped as u64 and checked against zero on the very register passed to the helper (the
    // black box keeps the compiler from testing `data_end == data` instead): the verifier needs
    // both bounds of the length.
    let n = core::hint::black_box(if wire > snap { snap } else { wire });
    if n == 0 || n > max {
        return;
    }
    // SAFETY: the destination is `n <= N - 8` bytes past offset 8 of the N-byte slot; the helper
    // checks the source range against the packet itself.
    let ret = unsafe { ctx.load_bytes(0, buf.as_mut_ptr().add(FRAME_HEADER_LEN).cast(), n as u32) };
    if ret < 0 {
        count(stats, Stat::Malformed, 1);
        return;
    }
    let wire16 = if wire > 0xffff { 0xffff } else { wire as u16 };
    buf[0..2].copy_from_slice(&(n as u16).to_ne_bytes());
    buf[2..4].copy_from_slice(&wire16.to_ne_bytes());
    buf[4..8].copy_from_slice(&ctx.queue().to_ne_bytes());
    let now = now_ns();
    buf[8..16].copy_from_slice(&now.to_ne_bytes());
    let len = FRAME_HEADER_LEN + n as usize;
    if len > N {
        return;
    }
    if ring
        .output::<[u8]>(&buf[..len], wake_flags(last_wake, now))
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

/// The longest Ethernet, VLAN, IP and TCP headers a segment copied in parts may have (14 + 4 +
/// 60 + 60 = 138, with room).
const MAX_HEADERS: usize = 192;
/// Parts a packet longer than the snap length is copied in at most: a 64 KiB GRO packet takes 7
/// of 9536 bytes.
const MAX_PARTS: u32 = 8;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;

/// [`copy_frame`] for a packet that may be longer than the snap length (a GRO or GSO socket
/// buffer at tc, up to 64 KiB): such a packet is copied as several segments, each a copy of its
/// headers followed by the next part of its payload, with the IP length, the sequence number and
/// the flags (FIN and PSH on the last part only) set as if that segment had arrived alone; the
/// engine takes them as the sender's segments. What is left after [`MAX_PARTS`] parts is counted
/// as `Truncated`. Checksums are left as they were (nothing reads them).
#[inline(always)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "lengths and offsets < 2^17, checked above each cast"
)]
pub fn copy_segments<C: Frame, const N: usize>(
    ctx: &C,
    layout: Layout,
    scratch: &PerCpuArray<[u8; N]>,
    ring: &RingBuf,
    stats: &PerCpuArray<u64>,
    last_wake: &PerCpuArray<u64>,
) {
    let wire = ctx.packet_len();
    let snap = (N - FRAME_HEADER_LEN) as u64;
    if wire <= snap {
        copy_frame(ctx, scratch, ring, stats, last_wake, u64::MAX);
        return;
    }
    let Some(doff) = ctx.load::<u8>(layout.l4 + 12) else {
        count(stats, Stat::Malformed, 1);
        return;
    };
    let Some(seq) = ctx.load::<[u8; 4]>(layout.l4 + 4) else {
        count(stats, Stat::Malformed, 1);
        return;
    };
    let seq = u32::from_be_bytes(seq);
    let hdr = core::hint::black_box(layout.l4 + usize::from(doff >> 4) * 4);
    if hdr < layout.l4 + 20 || hdr > MAX_HEADERS || hdr as u64 >= wire {
        count(stats, Stat::Malformed, 1);
        return;
    }
    let payload = wire - hdr as u64;
    let part = snap - MAX_HEADERS as u64;
    let mut off: u64 = 0;
    for _ in 0..MAX_PARTS {
        if off >= payload {
            break;
        }
        let left = payload - off;
        let last = left <= part;
        let n = core::hint::black_box(if last { left } else { part });
        if n == 0
            || n > part
            || !copy_part(
                ctx, layout, hdr, off, n, seq, last, scratch, ring, stats, last_wake,
            )
        {
            return;
        }
        off += n;
    }
    if off < payload {
        count(stats, Stat::Truncated, 1);
    }
}

/// One part of [`copy_segments`]: the headers (`hdr` bytes), then `n` payload bytes from `off`;
/// false when nothing more should be tried.
#[inline(always)]
#[allow(
    clippy::too_many_arguments,
    clippy::cast_possible_truncation,
    reason = "one inlined step of copy_segments; lengths < 2^17, checked by the caller"
)]
fn copy_part<C: Frame, const N: usize>(
    ctx: &C,
    layout: Layout,
    hdr: usize,
    off: u64,
    n: u64,
    seq: u32,
    last: bool,
    scratch: &PerCpuArray<[u8; N]>,
    ring: &RingBuf,
    stats: &PerCpuArray<u64>,
    last_wake: &PerCpuArray<u64>,
) -> bool {
    let Some(slot) = scratch.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: the per-CPU slot is valid for this program run and only this CPU touches it.
    let buf = unsafe { &mut *slot };
    if hdr > MAX_HEADERS || n as usize > N - FRAME_HEADER_LEN - MAX_HEADERS {
        return false;
    }
    // SAFETY: `hdr <= MAX_HEADERS` bytes at offset 8 and `n <= N - 8 - MAX_HEADERS` bytes at
    // offset 8 + hdr both lie inside the N-byte slot; the helper checks the source ranges.
    let ret = unsafe {
        let at = buf.as_mut_ptr().add(FRAME_HEADER_LEN);
        let h = ctx.load_bytes(0, at, hdr as u32);
        if h < 0 {
            h
        } else {
            ctx.load_bytes((hdr as u64 + off) as u32, at.add(hdr), n as u32)
        }
    };
    if ret < 0 {
        count(stats, Stat::Malformed, 1);
        return false;
    }
    let len = hdr + n as usize;
    let at = |o: usize| FRAME_HEADER_LEN + o;
    // The IP length of this segment alone.
    let (field, ip_len) = if layout.v6 {
        (at(layout.l3 + 4), len - layout.l4)
    } else {
        (at(layout.l3 + 2), len - layout.l3)
    };
    if let Some(b) = buf.get_mut(field..field + 2) {
        b.copy_from_slice(&(ip_len as u16).to_be_bytes());
    }
    if let Some(b) = buf.get_mut(at(layout.l4 + 4)..at(layout.l4 + 8)) {
        b.copy_from_slice(&seq.wrapping_add(off as u32).to_be_bytes());
    }
    if !last && let Some(flags) = buf.get_mut(at(layout.l4 + 13)) {
        *flags &= !(TCP_FIN | TCP_PSH);
    }
    buf[0..2].copy_from_slice(&(len as u16).to_ne_bytes());
    buf[2..4].copy_from_slice(&(len as u16).to_ne_bytes());
    buf[4..8].copy_from_slice(&ctx.queue().to_ne_bytes());
    let now = now_ns();
    buf[8..16].copy_from_slice(&now.to_ne_bytes());
    let total = FRAME_HEADER_LEN + len;
    if total > N {
        return false;
    }
    if ring
        .output::<[u8]>(&buf[..total], wake_flags(last_wake, now))
        .is_ok()
    {
        count(stats, Stat::Copied, 1);
        true
    } else {
        count(stats, Stat::RingFull, 1);
        false
    }
}

/// Shortest time between two wake-ups of the ring's reader from one CPU, in nanoseconds. Waking
/// the reader is most of the cost of a copied frame (an interrupt and a thread wake-up, several
/// microseconds against a few hundred nanoseconds for the rest); under load one wake-up per
/// 100 µs is plenty, and the reader also looks at the ring every millisecond.
const WAKE_GAP_NS: u64 = 100_000;

/// The time (`CLOCK_MONOTONIC`, nanoseconds).
#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// The ring-buffer flags for a record: the kernel's own choice (wake the reader if it has read
/// everything) at most once per [`WAKE_GAP_NS`] per CPU, no wake-up otherwise.
#[inline(always)]
fn wake_flags(last_wake: &PerCpuArray<u64>, now: u64) -> u64 {
    let Some(last) = last_wake.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: the per-CPU slot is valid for this program run and only this CPU touches it.
    let last = unsafe { &mut *last };
    if now.wrapping_sub(*last) >= WAKE_GAP_NS {
        *last = now;
        0
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}
