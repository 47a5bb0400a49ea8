//! `cargo xtask bench`: the benchmarks, with their figures written to `target/bench/`.
//!
//! - `engine.md`: the session engine alone (criterion): packets per second, bytes per idle
//!   session.
//! - `kernel.md`: the XDP programs per packet (`bpf-cost`), next to an empty program.
//! - `compare.md`: the response comparison alone (criterion): response bytes summarized and
//!   compared per second, and the digest's cost.
//! - `testbed.md`: the release binaries in the namespace testbed, each figure a ratio of two
//!   measurements of the same run: replay at increasing load (replayed vs online requests),
//!   bulk uploads (replayed vs online Gbit/s), harm to production (online throughput with
//!   tcpcopy vs without), CPU per 1000 replayed requests per second, the AF_XDP packet path
//!   (tcpcopy's rewrite-and-forward vs raw AF_XDP forwarding on the same veth), replay
//!   throughput with `--compare` against without.
//! - `harm.md` (`cargo xtask bench harm`): the harm benchmark of `testbed.md` alone.
//! - `sustained.md` (and every second of it in `sustained.csv`): a minute of load at a few
//!   rates below the saturation found first, keep-alive and one request per connection:
//!   replayed vs online, the replay's lag every second, whether it stops growing.

mod bulk;
mod compare;
mod criterion;
mod engine;
mod harm;
mod kernel;
mod load;
mod pace;
mod path;
mod replay_compare;
mod rig;
mod sustained;

use std::{fmt::Write as _, fs, path::PathBuf};

use tcpcopy_testbed::{
    Testbed,
    rig::{start_intercept, start_tcpcopy},
};

use crate::sh::{self, step};

/// Which benchmarks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    All,
    Engine,
    Kernel,
    Testbed,
    /// Only the testbed's harm benchmark (online throughput with and without tcpcopy).
    Harm,
    Sustained,
    Pace,
    /// Only the replay with `--compare` against without (part of `testbed`).
    ReplayCompare,
}

pub fn bench(which: Which) -> anyhow::Result<()> {
    if matches!(which, Which::All | Which::Engine) {
        engine::engine()?;
        compare::compare()?;
    }
    if matches!(which, Which::All | Which::Kernel) {
        kernel::kernel()?;
    }
    if matches!(which, Which::All | Which::Testbed) {
        testbed()?;
    }
    if which == Which::Harm {
        harm_only()?;
    }
    if matches!(which, Which::All | Which::Sustained) {
        sustained()?;
    }
    if matches!(which, Which::All | Which::Pace) {
        pace()?;
    }
    if which == Which::ReplayCompare {
        sh::cargo(&["build", "--release", "--workspace"])?;
        tcpcopy_testbed::use_binaries_from(PathBuf::from("target/release"));
        step("replay throughput with --compare against without (16 connections, same run)");
        let bed = Testbed::up()?;
        let intercept = start_intercept(&bed);
        let md = format!(
            "# Replay with --compare\n\n{}",
            replay_compare::table(&replay_compare::run(&bed, &intercept)?)
        );
        fs::create_dir_all("target/bench")?;
        fs::write("target/bench/replay-compare.md", &md)?;
        step("written to target/bench/replay-compare.md");
        print!("{md}");
    }
    Ok(())
}

/// The harm benchmark alone, its table to `target/bench/harm.md`.
fn harm_only() -> anyhow::Result<()> {
    sh::cargo(&["build", "--release", "--workspace"])?;
    tcpcopy_testbed::use_binaries_from(PathBuf::from("target/release"));
    step("harm to production: online throughput with and without tcpcopy");
    let bed = Testbed::up()?;
    let intercept = start_intercept(&bed);
    let harm = harm::run(&bed)?;
    drop(intercept);
    drop(bed);
    let md = harm::table(&harm);
    fs::create_dir_all("target/bench")?;
    fs::write("target/bench/harm.md", &md)?;
    step("written to target/bench/harm.md");
    print!("{md}");
    Ok(())
}

fn pace() -> anyhow::Result<()> {
    sh::cargo(&["build", "--release", "--workspace"])?;
    tcpcopy_testbed::use_binaries_from(PathBuf::from("target/release"));
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let opts = [
        "--session-buffer-mib",
        "2048",
        "--ring-mib",
        "256",
        "--metrics",
        pace::METRICS,
    ];
    step(&format!(
        "single connections at full speed, {} s each (tcpcopy {})",
        pace::RUN.as_secs(),
        opts.join(" ")
    ));
    // A baseline build to compare with in the same run, if one was put there.
    let baseline = std::path::Path::new("target/release")
        .join(pace::BASELINE)
        .exists();
    let binaries: &[&str] = if baseline {
        step(&format!(
            "comparing with target/release/{}, alternately, two rounds",
            pace::BASELINE
        ));
        &[pace::BASELINE, "tcpcopy", pace::BASELINE, "tcpcopy"]
    } else {
        &["tcpcopy"]
    };
    let bed = Testbed::up()?;
    let _intercept = start_intercept(&bed);
    let mut runs = Vec::new();
    for (i, binary) in binaries.iter().enumerate() {
        step(binary);
        let mut tcpcopy = pace::start(&bed, binary, &opts)?;
        for mut r in pace::run(&bed, &tcpcopy, &format!("{i}"))? {
            r.binary = binary;
            runs.push(r);
        }
        tcpcopy.finish(std::time::Duration::from_secs(20))?;
    }
    drop(bed);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Single connections at full speed\n\nOne run on {cores} cores, which the client (wrk), online (nginx, tcpcopy), test (nginx) and assistant (intercept) hosts all share.\n\n{}",
        pace::table(&runs)
    );
    fs::create_dir_all("target/bench")?;
    fs::write("target/bench/pace.md", &md)?;
    step("written to target/bench/pace.md");
    print!("{md}");
    Ok(())
}

fn sustained() -> anyhow::Result<()> {
    sh::cargo(&["build", "--release", "--workspace"])?;
    tcpcopy_testbed::use_binaries_from(PathBuf::from("target/release"));
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    step(&format!(
        "sustained replay, {} s a level ({cores} cores shared by client, online, test and assistant)",
        sustained::SUSTAIN.as_secs()
    ));
    let bed = Testbed::up()?;
    let _intercept = start_intercept(&bed);
    let mut tcpcopy = start_tcpcopy(&bed, &[]);
    let (saturation, levels) = sustained::run(&bed, &tcpcopy)?;
    tcpcopy.finish(std::time::Duration::from_secs(20))?;
    drop(bed);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Sustained replay\n\nOne run on {cores} cores, which the client (wrk), online (nginx, tcpcopy), test (nginx) and assistant (intercept) hosts all share.\n\n{}",
        sustained::table(&saturation, &levels)
    );
    fs::create_dir_all("target/bench")?;
    fs::write("target/bench/sustained.md", &md)?;
    fs::write("target/bench/sustained.csv", sustained::csv(&levels))?;
    step("written to target/bench/sustained.md and sustained.csv");
    print!("{md}");
    Ok(())
}

fn testbed() -> anyhow::Result<()> {
    sh::cargo(&["build", "--release", "--workspace"])?;
    tcpcopy_testbed::use_binaries_from(PathBuf::from("target/release"));
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    step(&format!(
        "testbed benchmarks ({cores} cores shared by client, online, test and assistant)"
    ));
    let bed = Testbed::up()?;
    let intercept = start_intercept(&bed);
    let mut tcpcopy = start_tcpcopy(&bed, &[]);
    step("replay at increasing load (wrk on the client against online's nginx, 5 s a level)");
    let levels = load::run(&bed, &tcpcopy, &intercept)?;
    tcpcopy.finish(std::time::Duration::from_secs(20))?;
    // Bulk uploads outrun the replay on this machine: room for the backlog in the capture ring
    // and in the session, as an operator replaying uploads would give it.
    let bulk_opts = ["--session-buffer-mib", "2048", "--ring-mib", "256"];
    step(&format!(
        "bulk: 1 MB uploads on keep-alive connections (tcpcopy {})",
        bulk_opts.join(" ")
    ));
    let mut tcpcopy = start_tcpcopy(&bed, &bulk_opts);
    let bulk = bulk::run(&bed, &tcpcopy)?;
    tcpcopy.finish(std::time::Duration::from_secs(20))?;
    step("replay throughput with --compare against without (16 connections, same run)");
    let comparing = replay_compare::run(&bed, &intercept)?;
    step("harm to production: online throughput with and without tcpcopy");
    let harm = harm::run(&bed)?;
    step("the packet path: AF_XDP raw forwarding against tcpcopy's rewrite, same veth");
    let path = path::run(&bed)?;
    drop(bed);

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Testbed benchmarks\n\nOne run on {cores} cores, which the client (wrk), online (nginx, tcpcopy), test (nginx) and assistant (intercept) hosts all share.\n"
    );
    let _ = writeln!(
        md,
        "## Replay at increasing load\n\n{}",
        load::table(&levels)
    );
    let _ = writeln!(md, "## Bulk uploads\n\n{}", bulk::table(&bulk));
    let _ = writeln!(
        md,
        "## Replay with --compare\n\n{}",
        replay_compare::table(&comparing)
    );
    let _ = writeln!(md, "## Harm to production\n\n{}", harm::table(&harm));
    let _ = writeln!(md, "## The packet path\n\n{}", path::table(&path));
    fs::create_dir_all("target/bench")?;
    fs::write("target/bench/testbed.md", &md)?;
    step("written to target/bench/testbed.md");
    print!("{md}");
    Ok(())
}
