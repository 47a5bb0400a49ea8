//! tcpcopy's XDP program on the online host: selects the requests to the replayed service's ports
//! (and the `-F` expression) and copies them (up to the snap length) to userspace through a ring
//! buffer, or on a mirror port (`--mirror`) redirects them into tcpcopy's AF_XDP sockets. Every
//! other frame, and every copied one, goes on to the service untouched (`XDP_PASS`). With
//! `--compare` its tc egress program copies the service's responses too, and with
//! `--mirror --compare` its second XDP program takes both directions from the mirror port.
// The program is for the BPF target; a host build (`cargo build --workspace`, clippy) compiles the
// same items into an empty binary, so the workspace builds and lints as a whole.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

tcpcopy_ebpf::xdp_program!(
    tcpcopy_capture,
    tcpcopy_ebpf::classify::PortSide::Destination,
    tcpcopy_ebpf::abi::maps::TCPCOPY_SNAP,
    u64::MAX,
    tcpcopy_ebpf::program::Copied::Pass,
    tcpcopy_ingress,
    tcpcopy_ebpf::program::tc_ingress
);

/// `--compare`: production's responses at tc egress on the online host, into the same rings as
/// their requests (see `tcpcopy_ebpf::program::tc_responses`).
#[classifier]
#[allow(
    clippy::needless_pass_by_value,
    reason = "the #[classifier] macro fixes the entry point's signature"
)]
pub fn tcpcopy_egress(ctx: TcContext) -> i32 {
    tcpcopy_ebpf::program::tc_responses(&ctx, &maps())
}

/// `--mirror --compare`: requests and production's responses from a mirror port that carries
/// both directions, to the worker that owns their connection (see
/// `tcpcopy_ebpf::program::run_mirror`).
#[xdp(frags)]
#[allow(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the entry point's signature"
)]
pub fn tcpcopy_mirror(ctx: XdpContext) -> u32 {
    tcpcopy_ebpf::program::run_mirror(&ctx, &maps())
}
