//! `cargo xtask bench`: the benchmarks, with their figures written to `target/bench/`.
//!
//! Today: the session engine alone (criterion): packets per second through the engine on a
//! keep-alive mix, and heap bytes per idle session. The testbed benchmarks (replay rate against
//! the raw AF_XDP rate on the same veth, harm to production) come with the live data path.

use std::{fmt::Write as _, fs, process::Command};

use anyhow::{Context as _, bail};

use crate::sh::step;

pub fn bench() -> anyhow::Result<()> {
    step("cargo bench -p tcpcopy-engine --bench engine");
    let out = Command::new("cargo")
        .args(["bench", "-p", "tcpcopy-engine", "--bench", "engine"])
        .output()
        .context("running cargo bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("the engine benchmark failed");
    }
    let idle = text
        .lines()
        .find_map(|l| l.strip_prefix("engine/idle_session_bytes: "))
        .and_then(|l| l.split_whitespace().next())
        .context("no idle-session figure in the benchmark output")?;
    let thrpt = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("thrpt:"))
        .context("no throughput in the benchmark output")?
        .trim()
        .trim_matches(['[', ']'])
        .split_whitespace()
        .collect::<Vec<_>>();
    let median = thrpt.get(2..4).map(|v| v.join(" ")).unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(md, "| measure | value | target |");
    let _ = writeln!(md, "| --- | --- | --- |");
    let _ = writeln!(
        md,
        "| engine packets in per second, one core, keep-alive mix | {median} | >= 5 Mpps |"
    );
    let _ = writeln!(md, "| heap bytes per idle session | {idle} | <= 1024 |");
    fs::create_dir_all("target/bench")?;
    fs::write("target/bench/engine.md", &md)?;
    step("written to target/bench/engine.md");
    print!("{md}");
    Ok(())
}
