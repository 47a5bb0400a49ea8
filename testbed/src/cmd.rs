//! Running the system tools the testbed is built with (`ip`, `sysctl`, `nginx`, `curl`).

use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, bail};

/// Runs `program args..`, failing with its stderr when it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<Output> {
    crate::tools::require(program)?;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// `ip args..`
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args).map(drop)
}

/// Standard output of `program args..` as text.
pub fn output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    Ok(String::from_utf8_lossy(&run(program, args)?.stdout).into_owned())
}

/// A `Command` that runs `program` inside network namespace `ns` (`ip netns exec`).
///
/// # Panics
/// When `program` is not installed or not on [`TOOLS`](crate::tools::TOOLS): the message names
/// it and the command that installs it.
pub fn in_ns(ns: &str, program: &str) -> Command {
    crate::tools::require_or_panic("ip");
    crate::tools::require_or_panic(program);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// Whether we are root (the testbed creates namespaces and attaches XDP).
pub fn is_root() -> bool {
    // Read from /proc to keep this crate free of unsafe code.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
