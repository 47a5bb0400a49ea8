//! The binaries' shared part: the kernel programs' objects, built by `build.rs` from `ebpf/` and
//! embedded, so a built `tcpcopy` or `intercept` runs alone. The binaries are in `src/bin/`:
//! `tcpcopy` (the online host), `intercept` (the assistant) and `xsk-bench` (the packet-path
//! benchmark).

/// tcpcopy's XDP object.
pub static TCPCOPY_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcpcopy-xdp"));

/// intercept's XDP object.
pub static INTERCEPT_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/intercept-xdp"));

/// An XDP program that passes every frame (`ebpf/src/bin/xdp-pass.rs`): the tests attach it as
/// another product's program would sit on the interface.
pub static XDP_PASS_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-pass"));

// Every worker a binary can run (one per ring of the kernel programs) owns a share of the client
// port space the engine can divide.
const _: () = assert!(tcpcopy_abi::maps::MAX_WORKERS <= tcpcopy_engine::MAX_SHARES as u32);

#[cfg(test)]
mod kernel_tests;
