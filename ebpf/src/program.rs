//! Every program in one place: the maps they share with userspace and what they do with a
//! packet. `src/bin/tcpcopy-xdp.rs` and `src/bin/intercept-xdp.rs` instantiate it with
//! [`xdp_program!`]: each object holds an XDP program and a tc program over the same maps
//! (tcpcopy's tc program captures at tc ingress where XDP is taken, intercept's catches the
//! test server's replies at tc egress on the test server itself, `intercept --egress`).
#![allow(
    clippy::inline_always,
    reason = "eBPF: inlined into the program so the verifier sees every bound"
)]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_redirect, bpf_xdp_adjust_meta},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf, XskMap},
    programs::{TcContext, XdpContext},
};

use tcpcopy_abi::{
    filter::{Fields, FilterProgram},
    maps::{
        MAX_WORKERS, MODE_ACK_GAP, MODE_INDEX, MODE_MIRROR, MODE_PERCENT, MODE_WORKERS,
        WORKERS_BY_CPU, XSK_FRAME_MAX, XSK_META_LEN, XSK_META_MAGIC,
    },
    stats::Stat,
};

use crate::{
    classify::{PortSide, classify, count},
    copy::{copy_frame, copy_segments},
    frame::Frame,
    parse::Layout,
};

/// The maps of one program (the statics `xdp_program!` declares).
pub struct Maps<'a, const N: usize> {
    pub ports: &'a Array<u8>,
    pub expr: &'a Array<FilterProgram>,
    pub stats: &'a PerCpuArray<u64>,
    pub frames: [&'a RingBuf; MAX_WORKERS as usize],
    pub scratch: &'a PerCpuArray<[u8; N]>,
    pub xsks: &'a XskMap,
    pub mode: &'a Array<u32>,
    /// When this CPU last woke a ring's reader (see `copy::copy_frame`).
    pub last_wake: &'a PerCpuArray<u64>,
    /// When each client connection last had a pure ACK copied (`maps::ACKED`).
    pub acked: &'a LruHashMap<[u64; 5], u64>,
    /// Non-zero: copy whole frames, payload included (intercept, for tcpcopy's `--compare`).
    pub copy_payload: &'a Array<u32>,
    /// Bytes copied of a frame when payloads are not asked for (intercept: the headers).
    pub headers_snap: u64,
}

impl<const N: usize> Maps<'_, N> {
    /// How many bytes of a frame to copy: everything when payloads are on, else the headers.
    #[inline(always)]
    fn limit(&self) -> u64 {
        // tcpcopy copies whole frames always: no lookup.
        if self.headers_snap == u64::MAX {
            return u64::MAX;
        }
        if self.copy_payload.get(0).is_some_and(|v| *v != 0) {
            u64::MAX
        } else {
            self.headers_snap
        }
    }
}

/// What becomes of a selected frame that is not redirected into an AF_XDP socket, once copied.
#[derive(Clone, Copy)]
pub enum Copied {
    /// Goes on to the stack (tcpcopy: production traffic is never touched).
    Pass,
    /// Dropped (intercept: the test server's replies are consumed, never answered).
    Drop,
}

/// Selects the frame (port on `side`, `-F` expression; for tcpcopy also its session, `-r`),
/// then redirects it into the AF_XDP socket of its queue (AF_XDP mode) or copies it into the
/// ring buffer (tcpcopy: unless it is a pure ACK the engine does not need); unselected frames
/// always pass.
#[inline(always)]
pub fn run<const N: usize>(
    ctx: &XdpContext,
    maps: &Maps<'_, N>,
    side: PortSide,
    copied: Copied,
) -> u32 {
    let Some((fields, layout)) = classify(ctx, maps.ports, maps.expr, maps.stats, side) else {
        return xdp_action::XDP_PASS;
    };
    if matches!(side, PortSide::Destination) && !replayed(maps, &fields, layout.v6) {
        return xdp_action::XDP_PASS;
    }
    let queue = ctx.queue();
    // A frame an AF_XDP socket cannot hold (a jumbo frame, or one in several buffers) goes
    // through the ring buffer instead: the readers read both.
    let len = ctx.packet_len();
    let fits = len <= XSK_FRAME_MAX && len == (ctx.data_end() - ctx.data()) as u64;
    if fits
        && maps.mode.get(MODE_INDEX).is_some_and(|m| *m == MODE_MIRROR)
        && let Ok(action) = maps.xsks.redirect(queue, 0)
    {
        count(maps.stats, Stat::Redirected, 1);
        return action;
    }
    if matches!(side, PortSide::Destination) && needless_ack(ctx, maps, &fields, layout) {
        return xdp_action::XDP_PASS;
    }
    let limit = maps.limit();
    to_ring(maps, fields.flow_hash(), |ring| {
        copy_frame(ctx, maps.scratch, ring, maps.stats, maps.last_wake, limit);
    });
    match copied {
        Copied::Pass => xdp_action::XDP_PASS,
        Copied::Drop => xdp_action::XDP_DROP,
    }
}

/// tcpcopy `--mirror --compare` on a mirror port that carries both directions
/// (`maps::TCPCOPY_MIRROR_PROGRAM`): selects the requests (destination port) and the service's
/// responses (source port, `-F` read as for their requests) of the sessions `-r` replays, and
/// hands each to the worker that owns its connection, whichever queue it came in on: the AF_XDP
/// socket of its queue when that queue is the worker's (`queue % workers`, as tcpcopy binds them)
/// and the frame fits, stamped with the kernel's time in the metadata area ([`stamp`]);
/// otherwise the worker's ring buffer (a record header with the time). Both directions of a
/// connection have one flow hash (the response's fields are read as its request's), so they
/// reach one worker, though a NIC's RSS may put them on different queues. Every frame not
/// redirected passes.
#[inline(always)]
pub fn run_mirror<const N: usize>(ctx: &XdpContext, maps: &Maps<'_, N>) -> u32 {
    let Some((fields, layout)) = classify(ctx, maps.ports, maps.expr, maps.stats, PortSide::Both)
    else {
        return xdp_action::XDP_PASS;
    };
    if !replayed(maps, &fields, layout.v6) {
        return xdp_action::XDP_PASS;
    }
    let hash = fields.flow_hash();
    let queue = ctx.queue();
    let workers = (maps.mode.get(MODE_WORKERS).map_or(1, |w| *w) & !WORKERS_BY_CPU).max(1);
    let len = ctx.packet_len();
    let fits = len <= XSK_FRAME_MAX && len == (ctx.data_end() - ctx.data()) as u64;
    if fits && queue % workers == hash % workers {
        // Before the redirect: without a socket for the queue (none bound) the frame is
        // copied into the ring below and passes, its metadata unread.
        stamp(ctx);
        if let Ok(action) = maps.xsks.redirect(queue, 0) {
            count(maps.stats, Stat::Redirected, 1);
            return action;
        }
    }
    to_ring(maps, hash, |ring| {
        copy_frame(
            ctx,
            maps.scratch,
            ring,
            maps.stats,
            maps.last_wake,
            u64::MAX,
        );
    });
    xdp_action::XDP_PASS
}

/// Writes the kernel's time and [`XSK_META_MAGIC`] into the frame's metadata area
/// ([`XSK_META_LEN`] bytes right before it), where the AF_XDP reader finds them. A driver
/// without metadata support refuses the room: the frame then goes without, and the reader takes
/// the time it reads the frame instead.
#[inline(always)]
fn stamp(ctx: &XdpContext) {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        reason = "XSK_META_LEN is 16"
    )]
    let delta = -(XSK_META_LEN as i32);
    // SAFETY: the helper only moves the context's metadata pointer, checking the headroom
    // itself; every packet pointer is read from the context again below.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, delta) } != 0 {
        return;
    }
    let meta = ctx.metadata();
    let data = ctx.data();
    if meta + XSK_META_LEN > data {
        return;
    }
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut bytes = [0u8; XSK_META_LEN];
    bytes[..8].copy_from_slice(&now.to_ne_bytes());
    bytes[8..].copy_from_slice(&XSK_META_MAGIC.to_ne_bytes());
    // SAFETY: [meta, meta + XSK_META_LEN) lies before the frame's data, checked just above
    // (the verifier checks the same comparison); unaligned: the area has no alignment.
    unsafe { core::ptr::write_unaligned(meta as *mut [u8; XSK_META_LEN], bytes) };
}

/// tcpcopy's `-r`: whether the session of this client segment is one the engine replays (the
/// same hash of the client's address and port, `Fields::selected`); counts `unselected` when
/// not. Read after the port and `-F` tests, so only selected packets pay for it.
#[inline(always)]
fn replayed<const N: usize>(maps: &Maps<'_, N>, fields: &Fields, v6: bool) -> bool {
    let percent = maps.mode.get(MODE_PERCENT).map_or(0, |p| *p);
    if percent == 0 || fields.selected(v6, percent) {
        return true;
    }
    count(maps.stats, Stat::Unselected, 1);
    false
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const NS_PER_MS: u64 = 1_000_000;

/// tcpcopy: whether this client segment of a replayed session is a pure ACK the engine has no
/// use for (see `maps::MODE_ACK_GAP`): not the first of its connection, and less than the gap
/// after the last one copied. Counts `acks_skipped` when so. A SYN forgets the connection, so
/// the first pure ACK of the next connection on the same addresses and ports is copied.
#[inline(always)]
fn needless_ack<C: Frame, const N: usize>(
    ctx: &C,
    maps: &Maps<'_, N>,
    fields: &Fields,
    layout: Layout,
) -> bool {
    let gap_ms = maps.mode.get(MODE_ACK_GAP).map_or(0, |g| *g);
    if gap_ms == 0 {
        return false;
    }
    // The IP header's length field, not the frame's (an Ethernet frame may be padded). The
    // black box keeps the compiler from dropping this bounds check as implied by the TCP
    // header's below: the verifier checks each packet pointer on its own.
    let length_at = core::hint::black_box(layout.l3 + if layout.v6 { 4 } else { 2 });
    let Some(ip_len) = ctx.load::<[u8; 2]>(length_at) else {
        return false;
    };
    let Some([doff, flags]) = ctx.load::<[u8; 2]>(layout.l4 + 12) else {
        return false;
    };
    let key = [
        fields.src[0],
        fields.src[1],
        fields.dst[0],
        fields.dst[1],
        (u64::from(fields.src_port) << 16) | u64::from(fields.dst_port),
    ];
    if flags & TCP_SYN != 0 {
        // A missing entry is no error: nothing to forget.
        let _ = maps.acked.remove(key);
        return false;
    }
    if flags & (TCP_FIN | TCP_RST) != 0 {
        return false;
    }
    // An IP length of 0 (a BIG TCP or jumbogram packet) is not a pure ACK.
    let tcp_header = usize::from(doff >> 4) * 4;
    let ip_len = usize::from(u16::from_be_bytes(ip_len));
    let headers = if layout.v6 {
        tcp_header
    } else {
        layout.l4 - layout.l3 + tcp_header
    };
    if ip_len == 0 || ip_len > headers {
        return false;
    }
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(last) = maps.acked.get_ptr_mut(key) {
        // SAFETY: the pointer is the map's value for this key, valid for this program run; a
        // concurrent update from another CPU at worst copies one more ACK.
        let last = unsafe { &mut *last };
        if now.wrapping_sub(*last) < u64::from(gap_ms) * NS_PER_MS {
            count(maps.stats, Stat::AcksSkipped, 1);
            return true;
        }
        *last = now;
    } else {
        // The first pure ACK of the connection. A full map evicts the oldest entry; a failed
        // insert only means the next ACK is copied too.
        let _ = maps.acked.insert(key, now, 0);
    }
    false
}

/// Calls `copy` with the ring of the worker that owns flow `hash` (`hash % workers`; with
/// `WORKERS_BY_CPU`, `bpf-cost`'s other layout, the ring of this CPU).
#[inline(always)]
fn to_ring<const N: usize>(maps: &Maps<'_, N>, hash: u32, copy: impl Fn(&RingBuf)) {
    let entry = maps.mode.get(MODE_WORKERS).map_or(1, |w| *w);
    let workers = (entry & !WORKERS_BY_CPU).max(1);
    let key = if entry & WORKERS_BY_CPU == 0 {
        hash
    } else {
        // SAFETY: bpf_get_smp_processor_id has no preconditions.
        unsafe { bpf_get_smp_processor_id() }
    };
    // One call per ring, each with its map as a constant the verifier can see (a map pointer
    // picked at run time from a table would be refused).
    match key % workers {
        0 => copy(maps.frames[0]),
        1 => copy(maps.frames[1]),
        2 => copy(maps.frames[2]),
        3 => copy(maps.frames[3]),
        4 => copy(maps.frames[4]),
        5 => copy(maps.frames[5]),
        6 => copy(maps.frames[6]),
        _ => copy(maps.frames[7]),
    }
}

/// tcx's "no verdict: the next program decides" (`TCX_NEXT`, `TC_ACT_UNSPEC`): what the tc
/// programs return for every packet they leave alone, so programs attached after them (Cilium, a
/// filter) still have their say.
pub const TCX_NEXT: i32 = -1;

/// tcpcopy at tc ingress (where XDP is taken by another program, or `--hook tc`): copies the
/// selected requests into the ring buffer, whole (a GRO packet in several segments, see
/// `copy_segments`), and leaves every packet to the programs after it and the stack.
#[inline(always)]
pub fn tc_ingress<const N: usize>(ctx: &TcContext, maps: &Maps<'_, N>) -> i32 {
    if let Some((fields, layout)) = classify(
        ctx,
        maps.ports,
        maps.expr,
        maps.stats,
        PortSide::Destination,
    ) && replayed(maps, &fields, layout.v6)
        && !needless_ack(ctx, maps, &fields, layout)
    {
        to_ring(maps, fields.flow_hash(), |ring| {
            copy_segments(ctx, layout, maps.scratch, ring, maps.stats, maps.last_wake);
        });
    }
    TCX_NEXT
}

/// An interface index no device ever has: a redirect to it frees the packet.
const NO_DEVICE: u32 = 0;

/// intercept at tc egress on the test server (`--egress`): copies the headers of the selected
/// replies (source port, `-F` with the replayed clients' networks) into the ring buffer and
/// swallows them, so they never leave the host. Everything else is left to the programs after it.
///
/// The swallow is a redirect to an interface that does not exist, not a drop: at tc egress the
/// kernel reports a dropped packet (`TCX_DROP`) to TCP as a failed transmit (`NET_XMIT_DROP`),
/// so the test server would count its reply as never sent and ignore the replayed client's ACKs
/// of it. For a redirect, `sch_handle_egress` reports `NET_XMIT_SUCCESS` whatever becomes of
/// the packet, and `skb_do_redirect` frees it when the device is not found. (tcx maps
/// `TC_ACT_STOLEN`, which would say the same, to `TCX_NEXT`: the packet would go out.)
#[inline(always)]
pub fn tc_egress<const N: usize>(ctx: &TcContext, maps: &Maps<'_, N>) -> i32 {
    let Some((fields, layout)) = classify(ctx, maps.ports, maps.expr, maps.stats, PortSide::Source)
    else {
        return TCX_NEXT;
    };
    let limit = maps.limit();
    to_ring(maps, fields.flow_hash(), |ring| {
        if limit == u64::MAX {
            // A GSO reply of up to 64 KiB: in segments, payload and all.
            copy_segments(ctx, layout, maps.scratch, ring, maps.stats, maps.last_wake);
        } else {
            copy_frame(ctx, maps.scratch, ring, maps.stats, maps.last_wake, limit);
        }
    });
    count(maps.stats, Stat::Redirected, 1);
    // SAFETY: bpf_redirect has no preconditions: it records the target for after the program
    // returns.
    let verdict = unsafe { bpf_redirect(NO_DEVICE, 0) };
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the helper returns TC_ACT_REDIRECT (7) or TC_ACT_SHOT (2)"
    )]
    {
        verdict as i32
    }
}

/// tcpcopy at tc egress on the online host (`--compare`): copies the online service's responses
/// (source port = a service port; `-F` read as for their requests) whole, a GSO packet in
/// segments, into the ring of the worker that owns their connection: the flow hash of the
/// reversed fields is the requests' hash, so both directions reach one worker. Every packet goes
/// on untouched (`TCX_NEXT`).
#[inline(always)]
pub fn tc_responses<const N: usize>(ctx: &TcContext, maps: &Maps<'_, N>) -> i32 {
    if let Some((fields, layout)) =
        classify(ctx, maps.ports, maps.expr, maps.stats, PortSide::Response)
        && replayed(maps, &fields.reversed(), layout.v6)
    {
        to_ring(maps, fields.reversed().flow_hash(), |ring| {
            copy_segments(ctx, layout, maps.scratch, ring, maps.stats, maps.last_wake);
        });
    }
    TCX_NEXT
}

/// Declares the maps userspace finds by name, the XDP entry point `$name`, the panic handler and
/// the license of one program, and its tc entry point `$tc_name`, which calls `$tc_run`
/// ([`tc_ingress`] or [`tc_egress`]) over the same maps.
#[macro_export]
macro_rules! xdp_program {
    ($name:ident, $side:expr, $snap:expr, $headers_snap:expr, $copied:expr, $tc_name:ident, $tc_run:path) => {
        use aya_ebpf::{
            macros::{classifier, map, xdp},
            maps::{Array, LruHashMap, PerCpuArray, RingBuf, XskMap},
            programs::{TcContext, XdpContext},
        };
        use $crate::{
            abi::{
                filter::FilterProgram,
                maps::{
                    ACKED_MAX, FILTER_PORTS_MAX, FRAME_HEADER_LEN, FRAMES_BYTES, MAX_QUEUES,
                    MODE_ENTRIES,
                },
                stats::STAT_COUNT,
            },
            program::{Maps, run},
        };

        const RECORD: usize = FRAME_HEADER_LEN + $snap;

        #[map]
        static FILTER_PORTS: Array<u8> = Array::with_max_entries(FILTER_PORTS_MAX, 0);
        #[map]
        static FILTER_EXPR: Array<FilterProgram> = Array::with_max_entries(1, 0);
        #[map]
        static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_COUNT, 0);
        #[map]
        static FRAMES0: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);
        #[map]
        static FRAMES1: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);
        #[map]
        static FRAMES2: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);
        #[map]
        static FRAMES3: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);
        #[map]
        static FRAMES4: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);
        #[map]
        static FRAMES5: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);
        #[map]
        static FRAMES6: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);
        #[map]
        static FRAMES7: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);
        #[map]
        static SCRATCH: PerCpuArray<[u8; RECORD]> = PerCpuArray::with_max_entries(1, 0);
        #[map]
        static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);
        #[map]
        static MODE: Array<u32> = Array::with_max_entries(MODE_ENTRIES, 0);
        #[map]
        static LAST_WAKE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
        #[map]
        static ACKED: LruHashMap<[u64; 5], u64> = LruHashMap::with_max_entries(ACKED_MAX, 0);
        #[map]
        static COPY_PAYLOAD: Array<u32> = Array::with_max_entries(1, 0);

        // `frags`: the program takes multi-buffer frames (jumbo frames, where the driver hands
        // XDP a frame in several buffers), so it can be attached where the MTU exceeds a page.
        #[xdp(frags)]
        #[allow(
            clippy::needless_pass_by_value,
            reason = "the #[xdp] macro fixes the entry point's signature"
        )]
        pub fn $name(ctx: XdpContext) -> u32 {
            run(&ctx, &maps(), $side, $copied)
        }

        #[classifier]
        #[allow(
            clippy::needless_pass_by_value,
            reason = "the #[classifier] macro fixes the entry point's signature"
        )]
        pub fn $tc_name(ctx: TcContext) -> i32 {
            $tc_run(&ctx, &maps())
        }

        #[inline(always)]
        fn maps() -> Maps<'static, RECORD> {
            Maps {
                ports: &FILTER_PORTS,
                expr: &FILTER_EXPR,
                stats: &STATS,
                frames: [
                    &FRAMES0, &FRAMES1, &FRAMES2, &FRAMES3, &FRAMES4, &FRAMES5, &FRAMES6, &FRAMES7,
                ],
                scratch: &SCRATCH,
                xsks: &XSKS,
                mode: &MODE,
                last_wake: &LAST_WAKE,
                acked: &ACKED,
                copy_payload: &COPY_PAYLOAD,
                headers_snap: $headers_snap as u64,
            }
        }

        #[cfg(target_arch = "bpf")]
        #[panic_handler]
        fn panic(_info: &core::panic::PanicInfo) -> ! {
            loop {}
        }

        #[cfg(not(target_arch = "bpf"))]
        fn main() {}

        #[allow(
            unsafe_code,
            reason = "the kernel reads the program's license from this section and symbol"
        )]
        #[unsafe(link_section = "license")]
        #[unsafe(no_mangle)]
        static LICENSE: [u8; 4] = *b"GPL\0";
    };
}
