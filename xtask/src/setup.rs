//! `cargo xtask setup`: installs what building and testing need, idempotently, step by step.
//!
//! - the nightly toolchain's `rust-src` (for `-Z build-std=core`),
//! - `bpf-linker`, built against the nightly's own LLVM (Debian's LLVM is too old),
//! - `cargo-fuzz` (the fuzz targets' smoke run),
//! - the Debian packages of every program the tests, testbed, demo and benchmarks start (the list
//!   in `testbed/src/tools.rs`, which the README prints and a unit test keeps complete).
//!
//! Without root or without the package registries it says exactly what is missing and the
//! command that would install it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use tcpcopy_testbed::tools;

use crate::sh::{self, step};

pub fn setup() -> anyhow::Result<()> {
    let root = testbed_is_root();
    nightly_rust_src()?;
    bpf_linker()?;
    cargo_fuzz()?;
    debian_packages(root)?;
    if !root {
        bail!(
            "not root: the testbed, demo and end-to-end tests create network namespaces and attach XDP; run `sudo cargo xtask ...` (or as root)"
        );
    }
    step("setup complete");
    Ok(())
}

fn testbed_is_root() -> bool {
    tcpcopy_testbed::is_root()
}

fn nightly_rust_src() -> anyhow::Result<()> {
    let installed = sh::stdout("rustup", &["toolchain", "list"]).unwrap_or_default();
    if !installed.lines().any(|l| l.starts_with("nightly")) {
        bail!(
            "the nightly Rust toolchain is missing (the XDP programs build with it): run `rustup toolchain install nightly --component rust-src`"
        );
    }
    let components = sh::stdout(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )?;
    if components.lines().any(|l| l.starts_with("rust-src")) {
        step("rust-src for nightly: present");
        return Ok(());
    }
    step("rust-src for nightly: installing");
    sh::run(
        "rustup",
        &["component", "add", "rust-src", "--toolchain", "nightly"],
    )
    .context("installing rust-src; by hand: `rustup component add rust-src --toolchain nightly`")
}

fn nightly_sysroot() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(
        sh::stdout("rustc", &["+nightly", "--print", "sysroot"])?.trim(),
    ))
}

/// The nightly's `libLLVM.so.*` (the full-named one bpf-linker links to).
fn nightly_libllvm(sysroot: &Path) -> anyhow::Result<PathBuf> {
    let lib = sysroot.join("lib");
    let mut found: Vec<PathBuf> = fs::read_dir(&lib)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .with_context(|| format!("no libLLVM in {}", lib.display()))
}

/// cargo-fuzz, for the fuzz targets' smoke run in `cargo xtask test`.
fn cargo_fuzz() -> anyhow::Result<()> {
    let works = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        step("cargo-fuzz: present");
        return Ok(());
    }
    step("cargo-fuzz: installing (about a minute)");
    sh::run("cargo", &["install", "cargo-fuzz", "--locked"])
        .context("installing cargo-fuzz; by hand: `cargo install cargo-fuzz --locked`")
}

fn bpf_linker_works() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn bpf_linker() -> anyhow::Result<()> {
    if bpf_linker_works() {
        step("bpf-linker: present");
        return Ok(());
    }
    step("bpf-linker: building against the nightly toolchain's LLVM (about a minute)");
    let sysroot = nightly_sysroot()?;
    let llvm = nightly_libllvm(&sysroot)?;
    // bpf-linker's build looks for `$LLVM_PREFIX/lib/libLLVM.so`: a folder of symlinks to the
    // nightly's library gives it that without Debian's (too old) llvm-config.
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let prefix = home.join(".cache/tcpcopy-xtask/llvm");
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib)?;
    for entry in fs::read_dir(sysroot.join("lib"))?.filter_map(Result::ok) {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("libLLVM") {
            let link = lib.join(&name);
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(entry.path(), link)?;
        }
    }
    let link = lib.join("libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)?;
    let status = Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", &prefix)
        .status()
        .context("running cargo install")?;
    if !status.success() || !bpf_linker_works() {
        bail!(
            "building bpf-linker failed; by hand: LLVM_PREFIX={} cargo install bpf-linker --locked --no-default-features --features llvm-22",
            prefix.display()
        );
    }
    Ok(())
}

fn debian_packages(root: bool) -> anyhow::Result<()> {
    // A package counts as missing when dpkg does not have it or one of its programs is not
    // there (a package removed but not purged still has a dpkg entry).
    let missing: Vec<&str> = tools::debian_packages()
        .into_iter()
        .filter(|pkg| {
            !dpkg_installed(pkg)
                || tools::TOOLS.iter().any(|t| {
                    t.source == tools::Source::Debian(pkg) && tools::locate(t.program).is_none()
                })
        })
        .collect();
    if missing.is_empty() {
        step("Debian packages: present");
        return Ok(());
    }
    let command = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !root {
        bail!(
            "missing Debian packages: {}; as root: {command}",
            missing.join(" ")
        );
    }
    step(&format!(
        "Debian packages: installing {}",
        missing.join(" ")
    ));
    // Keep package scripts from starting services (nginx) in the main namespace: the testbed
    // starts its own instances inside its namespaces.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let made_policy = !policy.exists();
    if made_policy {
        fs::write(policy, "#!/bin/sh\nexit 101\n")?;
        sh::run("chmod", &["755", "/usr/sbin/policy-rc.d"])?;
    }
    let result = sh::run("apt-get", &["update", "-qq"]).and_then(|()| {
        // Non-interactive: no debconf question (tshark asks about its capture group) blocks a run.
        let mut args = vec![
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
        ];
        args.extend(&missing);
        sh::run_env("apt-get", &args, &[("DEBIAN_FRONTEND", "noninteractive")])
    });
    if made_policy {
        let _ = fs::remove_file(policy);
    }
    result.with_context(|| format!("installing Debian packages failed (no network to the package registry?); by hand: {command}"))
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}
