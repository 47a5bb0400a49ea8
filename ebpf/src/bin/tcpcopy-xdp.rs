//! tcpcopy's XDP program on the online host: selects the requests to the replayed service's ports
//! (and the `-F` expression) and copies them (up to the snap length) to userspace through a ring
//! buffer, or on a mirror port (`--mirror`) redirects them into tcpcopy's AF_XDP sockets. Every
//! other frame, and every copied one, goes on to the service untouched (`XDP_PASS`).
// The program is for the BPF target; a host build (`cargo build --workspace`, clippy) compiles the
// same items into an empty binary, so the workspace builds and lints as a whole.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

tcpcopy_ebpf::xdp_program!(
    tcpcopy_capture,
    tcpcopy_ebpf::classify::PortSide::Destination,
    tcpcopy_ebpf::abi::maps::TCPCOPY_SNAP,
    tcpcopy_ebpf::program::Copied::Pass,
    tcpcopy_ingress,
    tcpcopy_ebpf::program::tc_ingress
);
