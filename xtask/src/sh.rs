//! Running commands from xtask, with each step printed.

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Prints a step the way every xtask command does.
pub fn step(msg: &str) {
    println!("==> {msg}");
}

/// Runs `program args..` with the terminal attached; fails if it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    run_env(program, args, &[])
}

/// [`run`] with extra environment variables.
pub fn run_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Standard output of `program args..`; fails (with its stderr) if it exits non-zero.
pub use tcpcopy_testbed::output as stdout;

/// `cargo args..` (the pinned stable toolchain, from the repository root).
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    step(&format!("cargo {}", args.join(" ")));
    run("cargo", args)
}
