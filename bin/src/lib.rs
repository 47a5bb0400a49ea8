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

#[cfg(test)]
mod kernel_tests;
