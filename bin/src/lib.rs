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

/// The XDP program's counters as metrics: `{prefix}_xdp_{name}_frames_total` (or
/// `_bytes_total`), one per [`Stat`](tcpcopy_abi::stats::Stat).
pub fn xdp_metrics(
    families: &mut tcpcopy_host::metrics::Families,
    prefix: &str,
    counters: &tcpcopy_xsk::program::Counters,
) {
    use tcpcopy_abi::stats::Stat;
    let all: Vec<(&'static str, &'static str, u64)> = Stat::ALL
        .iter()
        .map(|&s| {
            let help = match s {
                Stat::Seen => "Frames the XDP program saw.",
                Stat::Matched => "TCP frames whose port (and -F filter) the program selected.",
                Stat::MatchedBytes => "Bytes (whole frames) of the selected frames.",
                Stat::Malformed => "Frames too short for the headers they announce (passed on).",
                Stat::Copied => "Selected frames copied to userspace through the ring buffer.",
                Stat::RingFull => "Selected frames lost because the ring buffer was full.",
                Stat::Truncated => "Selected frames copied cut to the snap length.",
                Stat::Redirected => "Selected frames redirected into an AF_XDP socket.",
                Stat::Unselected => "Selected frames of sessions not replayed (-r), not copied.",
                Stat::AcksSkipped => "Client pure ACKs the engine has no use for, not copied.",
            };
            (s.name(), help, counters.get(s))
        })
        .collect();
    families.xdp(prefix, &all);
}

#[cfg(test)]
mod kernel_tests;
