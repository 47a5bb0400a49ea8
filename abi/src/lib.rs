//! The kernel ABI: what the XDP programs (`tcpcopy-ebpf`) and userspace must agree on, byte for
//! byte. Map names and sizes ([`maps`]), the per-CPU counters ([`stats`]), the compiled `-F`
//! filter table ([`filter`]) and the header of each copied frame.
//!
//! Everything at the crate root is `no_std` and `#[repr(C)]`-stable. The `user` feature adds
//! `aya::Pod` for the map value types and the `-F` expression compiler ([`filter_expr`]).
#![no_std]

#[cfg(feature = "user")]
extern crate std;

pub mod filter;
pub mod maps;
pub mod stats;

#[cfg(feature = "user")]
pub mod filter_expr;

// SAFETY: plain `#[repr(C)]` integer structs without padding (checked by the size assertions in
// `filter`), so every bit pattern is valid and none is uninitialised.
#[cfg(feature = "user")]
#[expect(unsafe_code, reason = "aya::Pod is an unsafe marker trait")]
unsafe impl aya::Pod for filter::FilterProgram {}
