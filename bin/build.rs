//! Builds the kernel programs (`ebpf/`, both XDP programs) for the BPF target with the nightly
//! toolchain and leaves the objects in `OUT_DIR`, where `src/lib.rs` embeds them: a built binary
//! runs alone.
fn main() -> anyhow::Result<()> {
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tcpcopy-ebpf",
            root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf"),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
