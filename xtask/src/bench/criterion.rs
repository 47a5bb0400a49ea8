//! Running a criterion benchmark and reading its throughputs from what it prints.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::sh::step;

/// `cargo bench -p PACKAGE --bench BENCH`: its standard output (also printed), or an error if it
/// failed.
pub fn cargo_bench(package: &str, bench: &str) -> anyhow::Result<String> {
    step(&format!("cargo bench -p {package} --bench {bench}"));
    let out = Command::new("cargo")
        .args(["bench", "-p", package, "--bench", bench])
        .output()
        .context("running cargo bench")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("the {bench} benchmark failed");
    }
    Ok(text)
}

/// Each benchmark's median throughput (`"1.2345 GiB/s"`), by name: `name_of` picks a name out
/// of a (trimmed) line that names a benchmark. A name line is followed by its time and
/// throughput lines (a name too long for its column has its time on the next line); a second
/// `thrpt:` line with percentages (the change against the last run) is skipped.
pub fn throughputs<'t>(
    text: &'t str,
    name_of: impl Fn(&'t str) -> Option<&'t str>,
) -> anyhow::Result<Vec<(&'t str, String)>> {
    let mut rates = Vec::new();
    let mut current = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = name_of(t) {
            current = Some(name);
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
    Ok(rates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_median_and_skips_the_change_line() {
        let text = "compare/http_1k\n                        time:   [1.0 µs 1.1 µs 1.2 µs]\n                        thrpt:  [300 MiB/s 383 MiB/s 400 MiB/s]\n                 change:\n                        thrpt:  [-1% +0.5% +2%]\ndigest/xxh3 time: [1 ns 2 ns 3 ns]\n thrpt: [1 GiB/s 2 GiB/s 3 GiB/s]\n";
        let rates = throughputs(text, |t| {
            (t.starts_with("compare/") || t.starts_with("digest/"))
                .then(|| t.split_whitespace().next())
                .flatten()
        })
        .unwrap();
        assert_eq!(
            rates,
            vec![
                ("compare/http_1k", "383 MiB/s".to_owned()),
                ("digest/xxh3", "2 GiB/s".to_owned())
            ]
        );
        assert!(throughputs("nothing", |_| None).is_err());
    }
}
