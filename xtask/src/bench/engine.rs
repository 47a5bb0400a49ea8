//! The session engine alone (criterion): packets per second through the engine on a keep-alive
//! mix, and heap bytes per idle session; figures to `target/bench/engine.md`.

use std::{fmt::Write as _, fs};

use anyhow::Context as _;

use super::criterion;
use crate::sh::step;

pub fn engine() -> anyhow::Result<()> {
    let text = criterion::cargo_bench("tcpcopy-engine", "engine")?;
    let idle = text
        .lines()
        .find_map(|l| l.strip_prefix("engine/idle_session_bytes: "))
        .and_then(|l| l.split_whitespace().next())
        .context("no idle-session figure in the benchmark output")?;
    let rates = criterion::throughputs(&text, |t| {
        (t.starts_with("engine/keepalive_mix_") && !t.contains(' ')).then_some(t)
    })?;
    let mut md = String::new();
    let _ = writeln!(md, "| measure | value | target |");
    let _ = writeln!(md, "| --- | --- | --- |");
    for (name, rate) in &rates {
        let _ = writeln!(
            md,
            "| {name}: packets in per second, one core | {rate} | >= 5 Mpps |"
        );
    }
    let _ = writeln!(md, "| heap bytes per idle session | {idle} | <= 1024 |");
    fs::create_dir_all("target/bench")?;
    fs::write("target/bench/engine.md", &md)?;
    step("written to target/bench/engine.md");
    print!("{md}");
    Ok(())
}
