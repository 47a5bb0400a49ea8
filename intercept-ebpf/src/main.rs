//! intercept's XDP program on the assistant host: selects the test server's replies (by source
//! port), copies their headers to userspace through a ring buffer and drops them, so the
//! assistant's stack never answers or forwards them. Everything else passes.
// The program is for the BPF target; a host build (`cargo build --workspace`, clippy) compiles the
// same items into an empty binary, so the workspace builds and lints as a whole.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, RingBuf, XskMap},
    programs::XdpContext,
};
use tcpcopy_common::{
    classify::{PortSide, classify, count},
    copy::copy_frame,
    filter::FilterProgram,
    maps::{
        FILTER_PORTS_MAX, FRAME_HEADER_LEN, FRAMES_BYTES, INTERCEPT_SNAP, MAX_QUEUES, MODE_MIRROR,
    },
    parse::rx_queue,
    stats::{STAT_COUNT, Stat},
};

#[map]
static FILTER_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(FILTER_PORTS_MAX, 0);

#[map]
static FILTER_EXPR: Array<FilterProgram> = Array::with_max_entries(1, 0);

#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_COUNT, 0);

#[map]
static FRAMES: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);

const RECORD: usize = FRAME_HEADER_LEN + INTERCEPT_SNAP;

#[map]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map]
static MODE: Array<u32> = Array::with_max_entries(1, 0);

#[map]
static SCRATCH: PerCpuArray<[u8; RECORD]> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
#[allow(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the entry point's signature"
)]
pub fn intercept_capture(ctx: XdpContext) -> u32 {
    let selected = classify(&ctx, &FILTER_PORTS, &FILTER_EXPR, &STATS, PortSide::Source);
    if selected.is_none() {
        return xdp_action::XDP_PASS;
    }
    // The reply is consumed here, either way: into intercept's AF_XDP socket for this queue, or
    // (no socket bound) its headers into the ring buffer and the frame dropped.
    if MODE.get(0).is_some_and(|m| *m == MODE_MIRROR)
        && let Ok(action) = XSKS.redirect(rx_queue(&ctx), 0)
    {
        count(&STATS, Stat::Redirected, 1);
        return action;
    }
    copy_frame(&ctx, &SCRATCH, &FRAMES, &STATS);
    xdp_action::XDP_DROP
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
