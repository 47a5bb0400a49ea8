//! intercept's XDP program on the assistant host: selects the test server's replies (by source
//! port) and counts them.
// The program is for the BPF target; a host build (`cargo build --workspace`, clippy) compiles the
// same items into an empty binary, so the workspace builds and lints as a whole.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
};
use tcpcopy_common::{
    classify::{PortSide, classify},
    maps::FILTER_PORTS_MAX,
    stats::STAT_COUNT,
};

#[map]
static FILTER_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(FILTER_PORTS_MAX, 0);

#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_COUNT, 0);

#[xdp]
#[allow(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the entry point's signature"
)]
pub fn intercept_capture(ctx: XdpContext) -> u32 {
    let _selected = classify(&ctx, &FILTER_PORTS, &STATS, PortSide::Source);
    xdp_action::XDP_PASS
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
