//! An XDP program that passes every frame and has no maps: the tests attach it without a link
//! (`ip link set dev veth0 xdp obj ...`), as another product's program would sit on a production
//! interface, to see tcpcopy capture next to it (tc ingress) and leave it attached.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
#[allow(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the entry point's signature"
)]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The same for multi-buffer frames: the empty program `bpf-cost` measures tcpcopy's and
/// intercept's programs against (they are built `xdp.frags` too).
#[xdp(frags)]
#[allow(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the entry point's signature"
)]
pub fn xdp_pass_frags(_ctx: XdpContext) -> u32 {
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
