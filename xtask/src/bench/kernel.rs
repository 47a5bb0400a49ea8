//! The kernel programs' cost per packet (`bpf-cost`: `BPF_PROG_TEST_RUN` with a repeat count on
//! fixed frames, next to an empty program in the same run); its table to
//! `target/bench/kernel.md`.

use std::{fs, process::Command};

use anyhow::{Context as _, bail};

use crate::sh::{self, step};

pub fn kernel() -> anyhow::Result<()> {
    sh::cargo(&["build", "--release", "-p", "tcpcopy", "--bin", "bpf-cost"])?;
    step("the kernel programs per packet, against an empty program (BPF_PROG_TEST_RUN)");
    let out = Command::new("target/release/bpf-cost")
        .output()
        .context("running bpf-cost")?;
    let table = String::from_utf8_lossy(&out.stdout);
    print!("{table}");
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("bpf-cost failed");
    }
    fs::create_dir_all("target/bench")?;
    fs::write("target/bench/kernel.md", table.as_bytes())?;
    step("written to target/bench/kernel.md");
    Ok(())
}
