//! The response comparison alone (criterion): HTTP sessions reassembled, parsed, summarized and
//! compared, in response bytes per second, and the digest alone (XXH3-128 against SHA-256);
//! figures to `target/bench/compare.md`.

use std::{fmt::Write as _, fs, process::Command};

use anyhow::{Context as _, bail};

use crate::sh::step;

pub fn compare() -> anyhow::Result<()> {
    step("cargo bench -p tcpcopy-compare --bench compare");
    let out = Command::new("cargo")
        .args(["bench", "-p", "tcpcopy-compare", "--bench", "compare"])
        .output()
        .context("running cargo bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("the compare benchmark failed");
    }
    // Each benchmark's name line is followed by its time and throughput lines; a second
    // `thrpt:` line with percentages (the change against the last run) is skipped. A name
    // too long for its column has its time on the next line.
    let mut rates = Vec::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("compare/") || t.starts_with("digest/") {
            current = t.split_whitespace().next();
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
    let _ = writeln!(md, "| measure | bytes per second, one core |");
    let _ = writeln!(md, "| --- | --- |");
    for (name, rate) in &rates {
        let what = if name.starts_with("compare/") {
            "summarized and compared (both sides' response bytes)"
        } else {
            "digest alone"
        };
        let _ = writeln!(md, "| {name}: {what} | {rate} |");
    }
    fs::create_dir_all("target/bench")?;
    fs::write("target/bench/compare.md", &md)?;
    step("written to target/bench/compare.md");
    print!("{md}");
    Ok(())
}
