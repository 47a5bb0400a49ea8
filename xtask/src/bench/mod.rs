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
    Spawned, Testbed,
    rig::{start_intercept, start_intercept_named, start_tcpcopy},
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
        in_testbed(
            "harm",
            "harm to production: online throughput with and without tcpcopy",
            |bed, _| Ok(harm::table(&harm::run(bed)?)),
        )?;
    }
    if matches!(which, Which::All | Which::Sustained) {
        sustained()?;
    }
    if matches!(which, Which::All | Which::Pace) {
        pace()?;
    }
    if which == Which::ReplayCompare {
        in_testbed(
            "replay-compare",
            "replay throughput with --compare against without (16 connections, same run)",
            |bed, intercept| {
                Ok(format!(
                    "# Replay with --compare\n\n{}",
                    replay_compare::table(&replay_compare::run(bed, &intercept)?)
                ))
            },
        )?;
    }
    Ok(())
}

/// What every testbed benchmark does around its own part: builds the release binaries, runs
/// them from `target/release`, brings up a testbed, says `what`, runs `body` with intercept
/// running there (it may end it and start another), and writes the markdown it returns to `target/bench/{name}.md` (and prints it) once
/// the testbed is down.
fn in_testbed(
    name: &str,
    what: &str,
    body: impl FnOnce(&Testbed, Spawned) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    sh::cargo(&["build", "--release", "--workspace"])?;
    tcpcopy_testbed::use_binaries_from(PathBuf::from("target/release"));
    step(what);
    let bed = Testbed::up()?;
    let md = body(&bed, start_intercept(&bed))?;
    drop(bed);
    write(&format!("{name}.md"), &md)?;
    step(&format!("written to target/bench/{name}.md"));
    print!("{md}");
    Ok(())
}

/// Writes `target/bench/{file}`.
fn write(file: &str, text: &str) -> anyhow::Result<()> {
    fs::create_dir_all("target/bench")?;
    fs::write(PathBuf::from("target/bench").join(file), text)?;
    Ok(())
}

/// The first line under a testbed benchmark's title: what shares the machine.
fn shared_cores() -> String {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    format!(
        "One run on {cores} cores, which the client (wrk), online (nginx, tcpcopy), test (nginx) and assistant (intercept) hosts all share."
    )
}

fn pace() -> anyhow::Result<()> {
    let opts = [
        "--session-buffer-mib",
        "2048",
        "--ring-mib",
        "256",
        "--metrics",
        pace::METRICS,
    ];
    // Baseline builds to compare with in the same run, if some were put there.
    let baseline = |name: &str| std::path::Path::new("target/release").join(name).exists();
    let tcpcopy_base = if baseline(pace::BASELINE) {
        pace::BASELINE
    } else {
        "tcpcopy"
    };
    let intercept_base = if baseline(pace::INTERCEPT_BASELINE) {
        pace::INTERCEPT_BASELINE
    } else {
        "intercept"
    };
    let values = pace::send_ahead_values()?;
    // Each round: the baselines (if some were put there, with their own default), then the
    // current build with each --send-ahead value.
    let with_baseline = (tcpcopy_base, intercept_base) != ("tcpcopy", "intercept");
    let mut rounds: Vec<(&'static str, &'static str, Option<u8>)> = Vec::new();
    for _ in 0..pace::ROUNDS {
        if with_baseline {
            rounds.push((tcpcopy_base, intercept_base, None));
        }
        rounds.extend(values.iter().map(|&v| ("tcpcopy", "intercept", Some(v))));
    }
    let what = format!(
        "single connections at full speed, {} s each (tcpcopy {}), --send-ahead {:?} alternately, {} rounds{}",
        pace::RUN.as_secs(),
        opts.join(" "),
        values,
        pace::ROUNDS,
        if with_baseline {
            format!("; with target/release/{tcpcopy_base} and {intercept_base} first in each round")
        } else {
            String::new()
        }
    );
    in_testbed("pace", &what, |bed, intercept| {
        let mut intercept = Some(intercept);
        let mut current = "intercept";
        let mut runs = Vec::new();
        for (i, &(binary, intercepting, ahead)) in rounds.iter().enumerate() {
            step(&format!("{binary} --send-ahead {ahead:?}, {intercepting}"));
            if intercepting != current {
                // This round's intercept in place of the last one.
                drop(intercept.take());
                intercept = Some(start_intercept_named(bed, intercepting, None, &[]));
                current = intercepting;
            }
            let ahead_arg = ahead.map(|n| n.to_string());
            let mut args: Vec<&str> = opts.to_vec();
            if let Some(n) = &ahead_arg {
                args.extend(["--send-ahead", n]);
            }
            let mut tcpcopy = pace::start(bed, binary, &args)?;
            for mut r in pace::run(bed, &tcpcopy, &format!("{i}"))? {
                r.binary = binary;
                r.intercept = intercepting;
                r.send_ahead = ahead;
                runs.push(r);
            }
            tcpcopy.finish(std::time::Duration::from_secs(20))?;
        }
        Ok(format!(
            "# Single connections at full speed\n\n{}\n\n{}\n",
            shared_cores(),
            pace::table(&runs)
        ))
    })
}

fn sustained() -> anyhow::Result<()> {
    let what = format!(
        "sustained replay, {} s a level (the cores shared by client, online, test and assistant)",
        sustained::SUSTAIN.as_secs()
    );
    in_testbed("sustained", &what, |bed, _| {
        let mut tcpcopy = start_tcpcopy(bed, &[]);
        let (saturation, levels) = sustained::run(bed, &tcpcopy)?;
        tcpcopy.finish(std::time::Duration::from_secs(20))?;
        write("sustained.csv", &sustained::csv(&levels))?;
        step("every second in target/bench/sustained.csv");
        Ok(format!(
            "# Sustained replay\n\n{}\n\n{}\n",
            shared_cores(),
            sustained::table(&saturation, &levels)
        ))
    })
}

fn testbed() -> anyhow::Result<()> {
    in_testbed(
        "testbed",
        "testbed benchmarks (the cores shared by client, online, test and assistant)",
        |bed, intercept| {
            let mut tcpcopy = start_tcpcopy(bed, &[]);
            step(
                "replay at increasing load (wrk on the client against online's nginx, 5 s a level)",
            );
            let levels = load::run(bed, &tcpcopy, &intercept)?;
            tcpcopy.finish(std::time::Duration::from_secs(20))?;
            // Bulk uploads outrun the replay on this machine: room for the backlog in the capture
            // ring and in the session, as an operator replaying uploads would give it.
            let bulk_opts = ["--session-buffer-mib", "2048", "--ring-mib", "256"];
            step(&format!(
                "bulk: 1 MB uploads on keep-alive connections (tcpcopy {})",
                bulk_opts.join(" ")
            ));
            let mut tcpcopy = start_tcpcopy(bed, &bulk_opts);
            let bulk = bulk::run(bed, &tcpcopy)?;
            tcpcopy.finish(std::time::Duration::from_secs(20))?;
            step("replay throughput with --compare against without (16 connections, same run)");
            let comparing = replay_compare::run(bed, &intercept)?;
            step("harm to production: online throughput with and without tcpcopy");
            let harm = harm::run(bed)?;
            step("the packet path: AF_XDP raw forwarding against tcpcopy's rewrite, same veth");
            let path = path::run(bed)?;

            let mut md = String::new();
            let _ = writeln!(md, "# Testbed benchmarks\n\n{}\n", shared_cores());
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
            Ok(md)
        },
    )
}
