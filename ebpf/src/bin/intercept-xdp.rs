//! intercept's XDP program on the assistant host: selects the test server's replies (by source
//! port, or the `-F` expression) and consumes them: redirected into intercept's AF_XDP sockets, or
//! their headers copied to userspace through a ring buffer and the frame dropped. The assistant's
//! stack never answers or forwards them. Everything else passes. Once a tcpcopy asks for the
//! replies' payloads (`--compare`, the `COPY_PAYLOAD` map), whole frames are copied.
// The program is for the BPF target; a host build (`cargo build --workspace`, clippy) compiles the
// same items into an empty binary, so the workspace builds and lints as a whole.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

tcpcopy_ebpf::xdp_program!(
    intercept_capture,
    tcpcopy_ebpf::classify::PortSide::Source,
    tcpcopy_ebpf::abi::maps::INTERCEPT_PAYLOAD_SNAP,
    tcpcopy_ebpf::abi::maps::INTERCEPT_SNAP,
    tcpcopy_ebpf::program::Copied::Drop,
    intercept_egress,
    tcpcopy_ebpf::program::tc_egress
);
