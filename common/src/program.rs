//! Both XDP programs in one place: the maps they share with userspace and what they do with a
//! frame. `tcpcopy-ebpf` and `intercept-ebpf` instantiate it with [`xdp_program!`].
#![allow(
    clippy::inline_always,
    reason = "eBPF: inlined into the program so the verifier sees every bound"
)]

use aya_ebpf::{
    bindings::xdp_action,
    maps::{Array, HashMap, PerCpuArray, RingBuf, XskMap},
    programs::XdpContext,
};

use crate::{
    classify::{PortSide, classify, count},
    copy::copy_frame,
    filter::FilterProgram,
    maps::MODE_MIRROR,
    parse::rx_queue,
    stats::Stat,
};

/// The maps of one program (the statics `xdp_program!` declares).
pub struct Maps<'a, const N: usize> {
    pub ports: &'a HashMap<u16, u8>,
    pub expr: &'a Array<FilterProgram>,
    pub stats: &'a PerCpuArray<u64>,
    pub frames: &'a RingBuf,
    pub scratch: &'a PerCpuArray<[u8; N]>,
    pub xsks: &'a XskMap,
    pub mode: &'a Array<u32>,
}

/// What becomes of a selected frame that is not redirected into an AF_XDP socket, once copied.
#[derive(Clone, Copy)]
pub enum Copied {
    /// Goes on to the stack (tcpcopy: production traffic is never touched).
    Pass,
    /// Dropped (intercept: the test server's replies are consumed, never answered).
    Drop,
}

/// Selects the frame (port on `side`, `-F` expression), then redirects it into the AF_XDP socket
/// of its queue (AF_XDP mode) or copies it into the ring buffer; unselected frames always pass.
#[inline(always)]
pub fn run<const N: usize>(
    ctx: &XdpContext,
    maps: &Maps<'_, N>,
    side: PortSide,
    copied: Copied,
) -> u32 {
    if classify(ctx, maps.ports, maps.expr, maps.stats, side).is_none() {
        return xdp_action::XDP_PASS;
    }
    if maps.mode.get(0).is_some_and(|m| *m == MODE_MIRROR)
        && let Ok(action) = maps.xsks.redirect(rx_queue(ctx), 0)
    {
        count(maps.stats, Stat::Redirected, 1);
        return action;
    }
    copy_frame(ctx, maps.scratch, maps.frames, maps.stats);
    match copied {
        Copied::Pass => xdp_action::XDP_PASS,
        Copied::Drop => xdp_action::XDP_DROP,
    }
}

/// Declares the maps userspace finds by name, the XDP entry point `$name`, the panic handler and
/// the license of one program.
#[macro_export]
macro_rules! xdp_program {
    ($name:ident, $side:expr, $snap:expr, $copied:expr) => {
        use aya_ebpf::{
            macros::{map, xdp},
            maps::{Array, HashMap, PerCpuArray, RingBuf, XskMap},
            programs::XdpContext,
        };
        use $crate::{
            filter::FilterProgram,
            maps::{FILTER_PORTS_MAX, FRAME_HEADER_LEN, FRAMES_BYTES, MAX_QUEUES},
            program::{Maps, run},
            stats::STAT_COUNT,
        };

        const RECORD: usize = FRAME_HEADER_LEN + $snap;

        #[map]
        static FILTER_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(FILTER_PORTS_MAX, 0);
        #[map]
        static FILTER_EXPR: Array<FilterProgram> = Array::with_max_entries(1, 0);
        #[map]
        static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_COUNT, 0);
        #[map]
        static FRAMES: RingBuf = RingBuf::with_byte_size(FRAMES_BYTES, 0);
        #[map]
        static SCRATCH: PerCpuArray<[u8; RECORD]> = PerCpuArray::with_max_entries(1, 0);
        #[map]
        static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);
        #[map]
        static MODE: Array<u32> = Array::with_max_entries(1, 0);

        #[xdp]
        #[allow(
            clippy::needless_pass_by_value,
            reason = "the #[xdp] macro fixes the entry point's signature"
        )]
        pub fn $name(ctx: XdpContext) -> u32 {
            let maps = Maps {
                ports: &FILTER_PORTS,
                expr: &FILTER_EXPR,
                stats: &STATS,
                frames: &FRAMES,
                scratch: &SCRATCH,
                xsks: &XSKS,
                mode: &MODE,
            };
            run(&ctx, &maps, $side, $copied)
        }

        #[cfg(target_arch = "bpf")]
        #[panic_handler]
        fn panic(_info: &core::panic::PanicInfo) -> ! {
            loop {}
        }

        #[cfg(not(target_arch = "bpf"))]
        fn main() {}

        #[allow(
            unsafe_code,
            reason = "the kernel reads the program's license from this section and symbol"
        )]
        #[unsafe(link_section = "license")]
        #[unsafe(no_mangle)]
        static LICENSE: [u8; 4] = *b"GPL\0";
    };
}
