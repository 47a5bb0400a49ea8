//! The response comparison alone (criterion): HTTP sessions reassembled, parsed, summarized and
//! compared, in response bytes per second, and the digest alone (XXH3-128 against SHA-256);
//! figures to `target/bench/compare.md`.

use std::{fmt::Write as _, fs};

use super::criterion;
use crate::sh::step;

pub fn compare() -> anyhow::Result<()> {
    let text = criterion::cargo_bench("tcpcopy-compare", "compare")?;
    let rates = criterion::throughputs(&text, |t| {
        (t.starts_with("compare/") || t.starts_with("digest/"))
            .then(|| t.split_whitespace().next())
            .flatten()
    })?;
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
