//! The AF_XDP and ring layer: everything userspace does with kernel objects on the packet path.
//!
//! - [`program`]: loading an XDP program, attaching it through a BPF link (a dead process leaves
//!   nothing attached), its maps and counters.
//! - [`ring`]: reading the frames the program copies into its BPF ring buffers.
//! - [`umem`] and [`rx`]: UMEM memory, AF_XDP sockets bound to one queue each, and receiving the
//!   frames the program redirects into them.
//! - [`tx`]: a transmit queue whose frames the caller writes in place.
//! - [`capture`]: one worker's source of frames, whichever of the two the program feeds.
//! - [`forward`]: an RX-to-TX forwarder, for measuring the packet path.
//!
//! This is the only userspace crate with `unsafe` code; each block says why it holds (clippy's
//! `undocumented_unsafe_blocks` checks that every one has its `SAFETY:` comment).
#![allow(
    unsafe_code,
    reason = "the AF_XDP/ring layer: UMEM memory shared with the kernel, descriptors registered with the runtime"
)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod capture;
pub mod forward;
pub mod program;
pub mod ring;
pub mod rx;
pub mod tx;
pub mod umem;
