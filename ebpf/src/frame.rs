//! What the parsing, classification and copying read a packet through: one trait over the two
//! kinds of program context, XDP's frame and tc's socket buffer, so both kinds of program share
//! one classification.
//!
//! Both start at the Ethernet header: XDP always, tc on Ethernet devices (ingress pushes the
//! MAC header back before a tcx program runs, egress runs after the neighbour layer wrote it).
#![allow(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined so the verifier sees each bounds check next to its access"
)]

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_skb_load_bytes, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};

/// A packet a program reads, from its Ethernet header on.
pub trait Frame {
    /// Reads a `T` at `offset` bytes into the packet, or `None` past its end.
    fn load<T: Copy>(&self, offset: usize) -> Option<T>;

    /// The whole packet's length (every buffer of a multi-buffer XDP frame; a GRO or GSO socket
    /// buffer's whole length at tc).
    fn packet_len(&self) -> u64;

    /// The receive queue the packet arrived on (0 where the context does not say).
    fn queue(&self) -> u32;

    /// Copies `n` bytes from `offset` in the packet to `dst`; negative when the packet is
    /// shorter.
    ///
    /// # Safety
    ///
    /// `dst` must be valid for `n` bytes of writes (the verifier checks it as well).
    unsafe fn load_bytes(&self, offset: u32, dst: *mut u8, n: u32) -> i64;
}

impl Frame for XdpContext {
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        let start = self.data();
        let end = self.data_end();
        if start + offset + core::mem::size_of::<T>() > end {
            return None;
        }
        // SAFETY: [start + offset, start + offset + size_of::<T>()) was checked to lie inside
        // the frame (data..data_end) just above; read_unaligned because packet headers carry no
        // alignment.
        Some(unsafe { core::ptr::read_unaligned((start + offset) as *const T) })
    }

    #[inline(always)]
    fn packet_len(&self) -> u64 {
        // SAFETY: the helper only reads the context the kernel passed this program.
        unsafe { bpf_xdp_get_buff_len(self.ctx) }
    }

    #[inline(always)]
    fn queue(&self) -> u32 {
        // SAFETY: `self.ctx` is the xdp_md the kernel passed to this program run; reading a
        // field of it is what the verifier allows for the context pointer.
        unsafe { (*self.ctx).rx_queue_index }
    }

    #[inline(always)]
    unsafe fn load_bytes(&self, offset: u32, dst: *mut u8, n: u32) -> i64 {
        // SAFETY: the caller guarantees `dst` for `n` bytes; the helper checks the source range
        // against the frame (across its buffers).
        unsafe { bpf_xdp_load_bytes(self.ctx, offset, dst.cast(), n) }
    }
}

impl Frame for TcContext {
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        // bpf_skb_load_bytes reads the non-linear part of a socket buffer too.
        TcContext::load(self, offset).ok()
    }

    #[inline(always)]
    fn packet_len(&self) -> u64 {
        u64::from(TcContext::len(self))
    }

    #[inline(always)]
    fn queue(&self) -> u32 {
        // SAFETY: the context pointer is the __sk_buff the kernel passed to this program run;
        // reading a field of it is what the verifier allows.
        unsafe { (*self.skb.skb).queue_mapping }
    }

    #[inline(always)]
    unsafe fn load_bytes(&self, offset: u32, dst: *mut u8, n: u32) -> i64 {
        // SAFETY: the caller guarantees `dst` for `n` bytes; the helper checks the source range
        // against the socket buffer.
        unsafe { bpf_skb_load_bytes(self.as_ptr(), offset, dst.cast(), n) }
    }
}
