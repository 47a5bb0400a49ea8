//! The session engine alone (criterion): packets per second through the engine on a keep-alive
//! mix, and heap bytes per idle session; figures to `target/bench/engine.md`.

use std::{fmt::Write as _, fs, process::Command};

use anyhow::{Context as _, bail};

use crate::sh::step;

pub fn engine() -> anyhow::Result<()> {
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
    // Each benchmark's name line is followed by its time and throughput lines; a second
    // `thrpt:` line with percentages (the change against the last run) is skipped.
    let mut rates = Vec::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("engine/keepalive_mix_") && !t.contains(' ') {
            current = Some(t);
        } else if let (Some(name), Some(v)) = (current, t.strip_prefix("thrpt:"))
            && !v.contains('%')
        {
            let v: Vec<&str> = v
                .trim()
                .trim_matches(['[', ']'])
                .split_whitespace()
                .collect();
            rates.push((name, v.get(2..4).map(|m| m.join(" ")).unwrap_or_default()));
            current = None;
        }
    }
    if rates.is_empty() {
        bail!("no throughput in the benchmark output");
    }
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
