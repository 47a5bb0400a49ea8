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
mod sessions;
mod workers;

use std::{net::UdpSocket, process::ExitCode, sync::Arc};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use tcpcopy_abi::maps::TCPCOPY_PROGRAM;
use tcpcopy_engine::{Mapping, WorkerShare};
use tcpcopy_xsk::program::XdpProgram;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tcpcopy_host::daemon::main_with("tcpcopy", cli.log.as_deref(), cli.log_format, || run(&cli))
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
    let Outputs { metrics, records } = Outputs::open(cli)?;
    let mut ports: Vec<u16> = config.mappings.iter().map(|m| m.online_port).collect();
    ports.sort_unstable();
    ports.dedup();

    if let Some(path) = cli.offline_file() {
        return run_offline(
            cli,
            config,
            &intercepts,
            interval,
            &filter,
            &path,
            Outputs { metrics, records },
        );
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
            protocol: cli.protocol,
            records: records.clone(),
            source: Box::new(move || Ok(replay::Source::Live(capture()?))),
        });
    }
    let (mut pool, started) = workers::start(plans)?;
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
    tcpcopy_host::logfmt::emit(
        "attached",
        &format!(
            "iface={iface} mode={mode} ports={ports:?} workers={workers} capture={capture_via} send={send}"
        ),
    );
    let program = Arc::new(program);
    serve_outputs(
        Outputs { metrics, records },
        &mut pool,
        Some(program.clone()),
    )?;
    let _pid_file =
        tcpcopy_host::daemon::started(cli.pid_file.as_deref()).context("writing the pid file")?;
    pool.until_done(interval, |p| report::line(Some(&program), p))
}

/// `--metrics` and `--session-log`, opened at start.
struct Outputs {
    metrics: Option<tcpcopy_host::metrics::Listener>,
    records: Option<Arc<sessions::SessionLog>>,
}

impl Outputs {
    /// Bound and opened before anything is loaded: a taken port or an unwritable file fails the
    /// start at once.
    fn open(cli: &cli::Cli) -> anyhow::Result<Self> {
        let metrics = cli
            .metrics
            .map(tcpcopy_host::metrics::Listener::bind)
            .transpose()?;
        let records = cli
            .session_log
            .as_deref()
            .map(sessions::SessionLog::open)
            .transpose()?
            .map(Arc::new);
        Ok(Self { metrics, records })
    }
}

/// Serves the metrics (from the program's counters and the workers' snapshots) and reopens the
/// session log on SIGHUP.
fn serve_outputs(
    out: Outputs,
    pool: &mut tcpcopy_host::workers::Pool<report::Snapshot>,
    program: Option<Arc<XdpProgram>>,
) -> anyhow::Result<()> {
    if let Some(records) = out.records {
        pool.on_hangup = Some(Box::new(move || records.reopen()));
    }
    if let Some(listener) = out.metrics {
        let slots = pool.slots.clone();
        let ready_slots = pool.slots.clone();
        listener.serve(tcpcopy_host::metrics::Source {
            families: Box::new(move || report::metrics(program.as_deref(), &slots.all())),
            ready: Box::new(move || report::ready(&ready_slots.all())),
        })?;
    }
    Ok(())
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
    outputs: Outputs,
) -> anyhow::Result<()> {
    let play = offline::Playback {
        speed: cli.accelerate,
        idle_cap: cli.idle_cap.map(std::time::Duration::from_millis),
        loops: cli.loops.max(1),
        filter: *filter,
    };
    let file = offline::Offline::open(path, play)?;
    let (mut pool, started) = workers::start(vec![workers::Plan {
        engine: config,
        send: cli.send,
        intercepts: intercepts.to_vec(),
        connections: cli.connections,
        protocol: cli.protocol,
        records: outputs.records.clone(),
        source: Box::new(move || Ok(replay::Source::Offline(file))),
    }])?;
    tcpcopy_host::logfmt::emit(
        "replaying",
        &format!(
            "file={} speed={} loops={} send={}",
            path.display(),
            cli.accelerate,
            cli.loops.max(1),
            started.first().map_or("raw", |s| s.send)
        ),
    );
    serve_outputs(outputs, &mut pool, None)?;
    let _pid_file =
        tcpcopy_host::daemon::started(cli.pid_file.as_deref()).context("writing the pid file")?;
    pool.until_done(interval, |p| report::line(None, p))
}
