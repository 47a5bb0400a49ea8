//! Project tasks. `cargo xtask demo` and `cargo xtask test` are the README's two commands.

mod bench;
mod demo;
mod image;
mod setup;
mod sh;
mod testbed_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "tcpcopy project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (rust-src, bpf-linker, Debian packages).
    Setup,
    /// Build every binary (the XDP objects are embedded by build.rs).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build (release) and run `tcpcopy` or `intercept` with the given options, as root.
    Run {
        /// Run inside this network namespace (e.g. a testbed host: tcx-bed-online).
        #[arg(long)]
        netns: Option<String>,
        program: Program,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The testbed for people: up, down, status.
    Testbed {
        action: TestbedAction,
        /// veth queues per host (for multi-queue runs).
        #[arg(long, default_value_t = 1)]
        queues: u16,
    },
    /// The main job shown in a throwaway testbed.
    Demo,
    /// Every check CI runs: fmt, clippy (host and BPF), unit and end-to-end tests.
    Test,
    /// The container image of both programs (static binaries, FROM scratch) with podman.
    Image,
    /// The benchmarks; figures go to target/bench/.
    Bench {
        /// engine (criterion, no root: the engine and the response comparison), testbed
        /// (namespaces, release binaries) or all.
        #[arg(value_enum, default_value_t = bench::Which::All)]
        which: bench::Which,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Program {
    Tcpcopy,
    Intercept,
}

#[derive(Clone, Copy, ValueEnum)]
enum TestbedAction {
    Up,
    Down,
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = std::env::set_current_dir(repo_root()) {
        eprintln!("xtask: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Task::Setup => setup::setup(),
        Task::Build { release } => build(release),
        Task::Run {
            netns,
            program,
            args,
        } => run(netns.as_deref(), program, &args),
        Task::Testbed { action, queues } => match action {
            TestbedAction::Up => setup::setup()
                .and_then(|()| build(false))
                .and_then(|()| testbed_cmd::up(queues)),
            TestbedAction::Down => {
                testbed_cmd::down();
                Ok(())
            }
            TestbedAction::Status => {
                testbed_cmd::status();
                Ok(())
            }
        },
        Task::Demo => setup::setup()
            .and_then(|()| build(false))
            .and_then(|()| demo::demo()),
        Task::Test => setup::setup().and_then(|()| test()),
        Task::Image => image::image(),
        Task::Bench { which } => bench::bench(which),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn build(release: bool) -> anyhow::Result<()> {
    let mut args = vec!["build", "--workspace"];
    if release {
        args.push("--release");
    }
    sh::cargo(&args)
}

fn run(netns: Option<&str>, program: Program, args: &[String]) -> anyhow::Result<()> {
    sh::cargo(&["build", "--release", "-p", "tcpcopy"])?;
    let name = match program {
        Program::Tcpcopy => "tcpcopy",
        Program::Intercept => "intercept",
    };
    let bin = format!("target/release/{name}");
    let mut cmd = match netns {
        Some(ns) => tcpcopy_testbed::in_ns(ns, &bin),
        None => std::process::Command::new(&bin),
    };
    let status = cmd.args(args).status()?;
    anyhow::ensure!(status.success(), "{name} exited with {status}");
    Ok(())
}

fn test() -> anyhow::Result<()> {
    sh::cargo(&["fmt", "--all", "--check"])?;
    sh::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    sh::step("clippy on the XDP programs for the BPF target");
    sh::run(
        "cargo",
        &[
            "+nightly",
            "clippy",
            "-Z",
            "build-std=core",
            "--target",
            "bpfel-unknown-none",
            "--release",
            "-p",
            "tcpcopy-ebpf",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    sh::cargo(&["build", "--workspace"])?;
    let tests = sh::cargo(&["test", "--workspace", "--no-fail-fast"]);
    let fuzz = fuzz_smoke();
    // Testbeds of the finished test processes that are still there were not torn down. (Other
    // live processes' testbeds, such as `cargo xtask testbed up`, are not this run's.)
    let left = tcpcopy_testbed::stale_ids();
    tcpcopy_testbed::sweep_stale();
    tests?;
    fuzz?;
    anyhow::ensure!(left.is_empty(), "tests left testbeds behind: {left:?}");
    Ok(())
}

/// The fuzz targets (`fuzz/fuzz_targets/`) and the seconds each runs in `cargo xtask test`.
const FUZZ_SMOKE: &[(&str, u32)] = &[
    ("capture_reader", 20),
    ("engine", 15),
    ("control_channel", 10),
    ("filter_expr", 10),
    ("compare", 10),
];

/// Each fuzz target, briefly: a smoke run that catches a reader, decoder, compiler or the engine
/// panicking or looping on bytes no unit test thought of (`cargo +nightly fuzz run TARGET` for
/// longer runs).
fn fuzz_smoke() -> anyhow::Result<()> {
    for &(target, secs) in FUZZ_SMOKE {
        sh::step(&format!("fuzz smoke: {target} for {secs} s"));
        let status = std::process::Command::new("cargo")
            .current_dir("fuzz")
            .args([
                "+nightly",
                "fuzz",
                "run",
                target,
                "--",
                &format!("-max_total_time={secs}"),
                "-rss_limit_mb=1024",
                "-timeout=10",
            ])
            .stdin(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "the fuzz target {target} failed ({status}); the input is in fuzz/artifacts/{target}/"
        );
    }
    Ok(())
}
