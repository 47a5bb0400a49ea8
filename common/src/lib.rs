//! Types shared by the XDP programs (`tcpcopy-ebpf`, `intercept-ebpf`) and userspace.
//!
//! Everything at the crate root is `no_std` and `#[repr(C)]`-stable so that the kernel and userspace
//! agree on map layouts. The `user` feature adds the userspace helpers (attaching XDP through bpf
//! links, reading per-CPU counters); the `ebpf` feature adds bounds-checked packet parsing over an
//! `XdpContext`.
#![no_std]

#[cfg(feature = "user")]
extern crate std;

pub mod ether;
pub mod filter;
pub mod maps;
pub mod stats;

#[cfg(feature = "ebpf")]
pub mod classify;
#[cfg(feature = "ebpf")]
pub mod copy;
#[cfg(feature = "ebpf")]
pub mod parse;
#[cfg(feature = "ebpf")]
pub mod program;

#[cfg(feature = "user")]
pub mod capture;
#[cfg(feature = "user")]
pub mod daemon;
#[cfg(feature = "user")]
pub mod filter_expr;
#[cfg(feature = "user")]
pub mod neigh;
#[cfg(feature = "user")]
pub mod proto;
#[cfg(feature = "user")]
pub mod report;
#[cfg(feature = "user")]
pub mod ring;
#[cfg(feature = "user")]
pub mod workers;
#[cfg(feature = "user")]
pub mod xdp;
#[cfg(feature = "user")]
pub mod xsk;
#[cfg(feature = "user")]
pub mod xsk_rx;

// SAFETY: plain `#[repr(C)]` integer structs without padding (checked by the size assertions in
// `filter`), so every bit pattern is valid and none is uninitialised.
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for filter::FilterProgram {}
