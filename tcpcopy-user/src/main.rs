//! `tcpcopy`: copies live TCP requests arriving at this host to a test server.
//!
//! The XDP program on the capture interface copies the selected requests into a ring buffer (the
//! live packets pass on untouched); the session engine replays each session to the target; the
//! replies come back from intercept over the control channel.

mod cli;
mod link;
mod offline;
mod replay;
mod send;

use std::{net::UdpSocket, process::ExitCode};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use tcpcopy_common::{maps::TCPCOPY_PROGRAM, ring::FrameRing, xdp::XdpProgram};
use tcpcopy_engine::{Engine, Mapping};

/// The XDP object built by build.rs from tcpcopy-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcpcopy-xdp"));

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tcpcopy_common::daemon::main_with("tcpcopy", cli.log.as_deref(), || run(&cli))
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
    let filter = tcpcopy_common::filter_expr::compile(cli.filter.as_deref().unwrap_or(""))?;
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
    let mut program = XdpProgram::load(
        OBJECT,
        TCPCOPY_PROGRAM,
        cli.ring_mib.saturating_mul(1 << 20),
    )?;
    program.set_ports(&ports)?;
    program.set_filter(&filter)?;
    let runtime = tcpcopy_common::daemon::runtime().context("starting the runtime")?;
    let _rt = runtime.enter();
    let ring = FrameRing::take(&mut program)?;
    let mirror = if cli.mirror {
        program.set_mode(tcpcopy_common::maps::MODE_MIRROR)?;
        Some(
            tcpcopy_common::xsk_rx::XskRx::new(&mut program, &iface)
                .context("--mirror: AF_XDP receive sockets")?,
        )
    } else {
        None
    };
    let capture = tcpcopy_common::capture::Capture { ring, xsk: mirror };
    let targets: Vec<std::net::IpAddr> = config.mappings.iter().map(|m| m.target.ip()).collect();
    let sender = send::Sender::new(cli.send, &targets)
        .context("setting up the sender for replayed packets")?;
    let engine = Engine::new(config.clone())?;
    let mode = program
        .attach(&iface, cli.skb_mode)
        .with_context(|| format!("capture interface {iface}"))?;
    for m in &config.mappings {
        log::info!("copying requests to port {} -> {}", m.online_port, m.target);
    }
    let capture_via = match capture.xsk.as_ref().map(|m| m.mode) {
        Some(tcpcopy_common::xsk::XskMode::ZeroCopy) => "af_xdp-zerocopy",
        Some(tcpcopy_common::xsk::XskMode::Copy) => "af_xdp-copy",
        None => "ring",
    };
    println!(
        "attached iface={iface} mode={mode} ports={ports:?} capture={capture_via} send={}",
        sender.describe()
    );
    let _pid_file =
        tcpcopy_common::daemon::started(cli.pid_file.as_deref()).context("writing the pid file")?;
    runtime.block_on(replay::run(
        engine,
        Some(&program),
        replay::Source::Live(capture),
        sender,
        &intercepts,
        cli.connections,
        interval,
    ))
}

/// `-i FILE` / `--pcap FILE`: replays the file's sessions; no XDP program is loaded.
fn run_offline(
    cli: &cli::Cli,
    config: tcpcopy_engine::Config,
    intercepts: &[std::net::SocketAddr],
    interval: Option<std::time::Duration>,
    filter: &tcpcopy_common::filter::FilterProgram,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let play = offline::Playback {
        speed: cli.accelerate,
        idle_cap: cli.idle_cap.map(std::time::Duration::from_millis),
        loops: cli.loops.max(1),
        filter: *filter,
    };
    let file = offline::Offline::open(path, play)?;
    let runtime = tcpcopy_common::daemon::runtime().context("starting the runtime")?;
    let _rt = runtime.enter();
    let targets: Vec<std::net::IpAddr> = config.mappings.iter().map(|m| m.target.ip()).collect();
    let sender = send::Sender::new(cli.send, &targets)
        .context("setting up the sender for replayed packets")?;
    let engine = Engine::new(config)?;
    println!(
        "replaying file={} speed={} loops={} send={}",
        path.display(),
        cli.accelerate,
        cli.loops.max(1),
        sender.describe()
    );
    let _pid_file =
        tcpcopy_common::daemon::started(cli.pid_file.as_deref()).context("writing the pid file")?;
    runtime.block_on(replay::run(
        engine,
        None,
        replay::Source::Offline(file),
        sender,
        intercepts,
        cli.connections,
        interval,
    ))
}
