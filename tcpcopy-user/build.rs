//! Builds the XDP program (tcpcopy-ebpf) for the BPF target with the nightly toolchain and leaves
//! the object in `OUT_DIR`, where `src/main.rs` embeds it: a built `tcpcopy` binary runs alone.
fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tcpcopy-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tcpcopy-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
