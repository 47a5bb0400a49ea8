//! `tcpcopy`: copies live TCP requests arriving at this host to a test server.
//!
//! The XDP program on the capture interface copies the selected requests into a ring buffer (the
//! live packets pass on untouched); the session engine replays each session to the target; the
//! replies come back from intercept over the control channel.

mod cli;
mod link;
mod offline;
mod replay;
mod report;
mod send;
mod workers;

use std::{net::UdpSocket, process::ExitCode};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use tcpcopy_abi::maps::TCPCOPY_PROGRAM;
use tcpcopy_engine::{Mapping, WorkerShare};
use tcpcopy_xsk::program::XdpProgram;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tcpcopy_host::daemon::main_with(
        "tcpcopy",
        cli.log.as_deref(),
        &capability_tasks(&cli),
        || run(&cli),
    )
}

/// What this run does that needs capabilities (see `tcpcopy_host::caps`): live capture loads
/// XDP; AF_XDP sends (`--send auto|xdp` to an IPv4 target) or receives (`--mirror`); a raw socket
/// always may be needed (`--send raw`, the fallback, IPv6 targets).
fn capability_tasks(cli: &cli::Cli) -> Vec<tcpcopy_host::caps::Task> {
    let live = cli.offline_file().is_none();
    // Unparsable mappings are reported by `run`; assume an IPv4 target until then.
    let v4_target = cli
        .mappings()
        .map_or(true, |m| m.iter().any(|m| m.target.is_ipv4()));
    let af_xdp = (cli.send != send::SendMode::Raw && v4_target) || (live && cli.mirror);
    tcpcopy_host::caps::tcpcopy_tasks(live, af_xdp)
}

/// A target that is this host's own online service would replay into itself.
fn refuse_replay_loop(mappings: &[Mapping]) -> anyhow::Result<()> {
    for m in mappings {
        let local = UdpSocket::bind((m.target.ip(), 0)).is_ok();
        if local && m.target.port() == m.online_port {
            bail!(
                "target {} is this host's own service on port {}: the replay would loop into the online service; use the test server's address",
                m.target,
                m.online_port
            );
        }
    }
    Ok(())
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    let config = cli.engine_config()?;
    let filter = tcpcopy_abi::filter_expr::compile(cli.filter.as_deref().unwrap_or(""))?;
    let interval = cli.stats_interval()?;
    let intercepts = cli.intercepts()?;
    if intercepts.is_empty() {
        bail!(
            "no intercept: give -s with the address of the host running intercept (the test server routes its replies there)"
        );
    }
    refuse_replay_loop(&config.mappings)?;
    let mut ports: Vec<u16> = config.mappings.iter().map(|m| m.online_port).collect();
    ports.sort_unstable();
    ports.dedup();

    if let Some(path) = cli.offline_file() {
        return run_offline(cli, config, &intercepts, interval, &filter, &path);
    }
    let iface = cli
        .iface
        .clone()
        .context("give -i IFACE (or a capture file with --pcap)")?;
    if !std::path::Path::new("/sys/class/net").join(&iface).exists() {
        return Err(tcpcopy_xsk::program::XdpError::NoSuchInterface(iface).into());
    }
    let workers = tcpcopy_host::workers::count(cli.workers, &iface)?;
    let mut program = XdpProgram::load_configured(
        tcpcopy::TCPCOPY_OBJECT,
        TCPCOPY_PROGRAM,
        cli.ring_mib.saturating_mul(1 << 20),
        u32::from(workers),
        &ports,
        &filter,
    )?;
    if cli.mirror {
        program.set_mode(tcpcopy_abi::maps::MODE_MIRROR)?;
    }
    let captures = tcpcopy_xsk::capture::per_worker(&mut program, &iface, workers, cli.mirror)
        .context("--mirror")?;
    let mut plans = Vec::new();
    for (w, capture) in (0..workers).zip(captures) {
        let mut engine = config.clone();
        engine.worker = WorkerShare {
            index: w,
            count: workers,
        };
        plans.push(workers::Plan {
            engine,
            send: cli.send,
            intercepts: intercepts.clone(),
            connections: cli.connections,
            source: Box::new(move || Ok(replay::Source::Live(capture()?))),
        });
    }
    let (pool, started) = workers::start(plans)?;
    let mode = program
        .attach(&iface, cli.skb_mode)
        .with_context(|| format!("capture interface {iface}"))?;
    for m in &config.mappings {
        log::info!("copying requests to port {} -> {}", m.online_port, m.target);
    }
    // Each is the same for every worker unless one fell back (then that one is named).
    let mode_of = |modes: &[&'static str]| {
        let first = modes.first().copied().unwrap_or("none");
        if modes.iter().all(|m| *m == first) {
            first.to_owned()
        } else {
            modes.join(",")
        }
    };
    let capture_via = mode_of(&started.iter().map(|s| s.capture).collect::<Vec<_>>());
    let send = mode_of(&started.iter().map(|s| s.send).collect::<Vec<_>>());
    println!(
        "attached iface={iface} mode={mode} ports={ports:?} workers={workers} capture={capture_via} send={send}"
    );
    let _pid_file =
        tcpcopy_host::daemon::started(cli.pid_file.as_deref()).context("writing the pid file")?;
    pool.until_done(interval, |p| report::line(Some(&program), p))
}

/// `-i FILE` / `--pcap FILE`: replays the file's sessions in one worker; no XDP program is
/// loaded.
fn run_offline(
    cli: &cli::Cli,
    config: tcpcopy_engine::Config,
    intercepts: &[std::net::SocketAddr],
    interval: Option<std::time::Duration>,
    filter: &tcpcopy_abi::filter::FilterProgram,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let play = offline::Playback {
        speed: cli.accelerate,
        idle_cap: cli.idle_cap.map(std::time::Duration::from_millis),
        loops: cli.loops.max(1),
        filter: *filter,
    };
    let file = offline::Offline::open(path, play)?;
    let (pool, started) = workers::start(vec![workers::Plan {
        engine: config,
        send: cli.send,
        intercepts: intercepts.to_vec(),
        connections: cli.connections,
        source: Box::new(move || Ok(replay::Source::Offline(file))),
    }])?;
    println!(
        "replaying file={} speed={} loops={} send={}",
        path.display(),
        cli.accelerate,
        cli.loops.max(1),
        started.first().map_or("raw", |s| s.send)
    );
    let _pid_file =
        tcpcopy_host::daemon::started(cli.pid_file.as_deref()).context("writing the pid file")?;
    pool.until_done(interval, |p| report::line(None, p))
}
