//! The kernel programs. Both XDP programs are one body ([`program::run`]) instantiated by
//! [`xdp_program!`] in `src/bin/`: tcpcopy's on the online host (requests by destination port,
//! copied, passed on) and intercept's on the assistant (replies by source port, consumed). Each
//! object also holds a tc program over the same maps ([`program::tc_ingress`]: tcpcopy where
//! XDP is taken; [`program::tc_egress`]: intercept on the test server itself). Every kind of
//! program reads packets through [`frame::Frame`], so they share one parse and classification.
//!
//! Every packet read is bounds-checked against the frame's end ([`parse`]); the layouts shared
//! with userspace come from `tcpcopy-abi`. The binaries build for the BPF target through
//! aya-build in `bin/build.rs`; a host build compiles them empty so the workspace builds and
//! lints as a whole.
#![no_std]
#![allow(
    unsafe_code,
    reason = "kernel programs: packet, context and map memory through pointers the verifier bounds"
)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub use tcpcopy_abi as abi;

pub mod classify;
pub mod copy;
pub mod frame;
pub mod parse;
pub mod program;
