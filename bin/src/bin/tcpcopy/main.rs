//! `tcpcopy`: copies live TCP requests arriving at this host to a test server.
//!
//! The XDP program on the capture interface copies the selected requests into a ring buffer (the
//! live packets pass on untouched); the session engine replays each session to the target; the
//! replies come back from intercept over the control channel.

mod cli;
mod compare;
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
use tcpcopy_abi::maps::{
    TCPCOPY_EGRESS_PROGRAM, TCPCOPY_MIRROR_PROGRAM, TCPCOPY_PROGRAM, TCPCOPY_TC_PROGRAM,
};
use tcpcopy_engine::{Mapping, WorkerShare};
use tcpcopy_xsk::program::XdpProgram;

fn main() -> ExitCode {
    // `tcpcopy report FILE [-o OUT.html]`: a --compare-log as an HTML page (crate
    // tcpcopy-report); no capture, no privileges, none of the replay's options.
    if std::env::args_os().nth(1).is_some_and(|a| a == "report") {
        return tcpcopy_report::cli::main(std::env::args_os().skip(1));
    }
    let cli = cli::Cli::parse();
    // Before -d starts the background process, so the reason is said here.
    if let Err(e) = cli.gone.check() {
        eprintln!("tcpcopy: error: {e}");
        return ExitCode::FAILURE;
    }
    tcpcopy_host::daemon::main_with(
        "tcpcopy",
        cli.log.as_deref(),
        &capability_tasks(&cli),
        cli.log_format,
        || run(&cli),
    )
}

/// What this run does that needs capabilities (see `tcpcopy_host::caps`): live capture loads
/// XDP; AF_XDP sends (`--send auto|xdp`, IPv4 and IPv6 targets) or receives (`--mirror`); a raw
/// socket always may be needed (`--send raw`, the fallback, targets behind another interface).
fn capability_tasks(cli: &cli::Cli) -> Vec<tcpcopy_host::caps::Task> {
    let live = cli.offline_file().is_none();
    let af_xdp = cli.send != send::SendMode::Raw || (live && cli.mirror);
    tcpcopy_host::caps::tcpcopy_tasks(live, af_xdp)
}

/// The capture interface: `-i`, else the one interface that carries the `-x` online addresses,
/// else (no online address given) the default route's.
fn capture_iface(given: Option<&str>, mappings: &[Mapping]) -> anyhow::Result<String> {
    if let Some(iface) = given {
        if iface.contains(',') || iface == "any" {
            bail!(
                "-i {iface}: one interface per tcpcopy here (its XDP program attaches to one); run one tcpcopy per interface, each with its own -f"
            );
        }
        return Ok(iface.to_owned());
    }
    let mut online: Vec<std::net::IpAddr> = mappings.iter().filter_map(|m| m.online_ip).collect();
    online.sort_unstable();
    online.dedup();
    if online.is_empty() {
        let iface = tcpcopy_host::neigh::default_route_iface().context(
            "no -i given, no online address in -x and no default route to take the interface from; give -i IFACE",
        )?;
        log::info!("no -i given: capturing on {iface}, the default route's interface");
        return Ok(iface);
    }
    let mut found: Vec<(String, std::net::IpAddr)> = Vec::new();
    for ip in online {
        let ifaces = tcpcopy_host::neigh::ifaces_with_addr(ip);
        if ifaces.is_empty() {
            bail!(
                "no -i given and the -x online address {ip} is on no interface of this host; give -i IFACE"
            );
        }
        found.extend(ifaces.into_iter().map(|i| (i, ip)));
    }
    let mut names: Vec<&str> = found.iter().map(|(i, _)| i.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() > 1 {
        let list: Vec<String> = found.iter().map(|(i, ip)| format!("{ip} on {i}")).collect();
        bail!(
            "no -i given and the -x online addresses sit on several interfaces ({}); tcpcopy captures on one: give -i IFACE (one tcpcopy per interface, each with its own -f)",
            list.join(", ")
        );
    }
    let iface = found.swap_remove(0).0;
    log::info!("no -i given: capturing on {iface}, the interface of the -x online address");
    Ok(iface)
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

/// What the kernel program decides for the engine: it copies only the sessions the engine
/// replays (with -g, those of the percentage it ramps up to), and of a connection's pure ACKs
/// after its first at most one per an eighth of the shortest idle timeout (at most a second),
/// enough to keep every session's idle timer running; `--mirror` redirects instead.
fn select_in_kernel(
    program: &mut XdpProgram,
    config: &tcpcopy_engine::Config,
    mirror: bool,
) -> anyhow::Result<()> {
    program.set_percentage(config.percentage)?;
    program.set_ack_gap((config.idle_timeout.min(config.keepalive()) / 8).clamp(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_secs(1),
    ))?;
    if mirror {
        program.set_mode(tcpcopy_abi::maps::MODE_MIRROR)?;
    }
    Ok(())
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    let config = cli.engine_config()?;
    let filter = tcpcopy_abi::filter_expr::compile(cli.filter.as_deref().unwrap_or(""))?;
    let interval = cli.stats_interval()?;
    let control = cli.control()?;
    if control.intercepts.is_empty() {
        bail!(
            "no intercept: give -s with the address of the host running intercept (the test server routes its replies there)"
        );
    }
    refuse_replay_loop(&config.mappings)?;
    let outputs = Outputs::open(cli)?;
    let mut ports: Vec<u16> = config.mappings.iter().map(|m| m.online_port).collect();
    ports.sort_unstable();
    ports.dedup();

    if let Some(path) = cli.offline_file() {
        return run_offline(cli, config, &control, interval, &filter, &path, outputs);
    }
    if cli.lonely {
        log::info!(
            "-L: tcpcopy keeps running and retries while no intercept is reachable (always so here)"
        );
    }
    let iface = capture_iface(cli.iface.as_deref(), &config.mappings)?;
    if !std::path::Path::new("/sys/class/net").join(&iface).exists() {
        return Err(tcpcopy_xsk::program::XdpError::NoSuchInterface(iface).into());
    }
    let workers = tcpcopy_host::workers::count(cli.workers, &iface)?;
    // `--mirror --compare`: the mirror port carries production's responses too, taken by the
    // XDP program that selects both directions (no tc egress program: nothing of the online
    // host's own path is touched).
    let xdp_program = if cli.mirror && cli.compare {
        TCPCOPY_MIRROR_PROGRAM
    } else {
        TCPCOPY_PROGRAM
    };
    let mut program = XdpProgram::load_configured(
        tcpcopy::TCPCOPY_OBJECT,
        xdp_program,
        cli.ring_mib.saturating_mul(1 << 20),
        u32::from(workers),
        &ports,
        &filter,
    )?;
    select_in_kernel(&mut program, &config, cli.mirror)?;
    let captures = tcpcopy_xsk::capture::per_worker(
        &mut program,
        &iface,
        workers,
        cli.mirror,
        tcpcopy_xsk::capture::MIRROR_FRAMES,
    )
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
            control: control.clone(),
            records: outputs.records.clone(),
            compare: outputs.compare.clone(),
            source: Box::new(move || Ok(replay::Source::Live(capture()?))),
        });
    }
    let (mut pool, started) = workers::start(plans)?;
    let mode =
        attach(&mut program, cli, &iface).with_context(|| format!("capture interface {iface}"))?;
    let compare_hook = attach_compare(&mut program, cli, &iface)?;
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
            "iface={iface} mode={mode} ports={ports:?} workers={workers} capture={capture_via} send={send}{compare_hook}"
        ),
    );
    let program = Arc::new(program);
    let compare_log = serve_outputs(outputs, &mut pool, Some(program.clone()))?;
    let _pid_file =
        tcpcopy_host::daemon::started(cli.pid_file.as_deref()).context("writing the pid file")?;
    pool.until_done(interval, |p| {
        stats_line(Some(&program), compare_log.as_deref(), p)
    })
}

/// `--compare`: production's responses leaving `iface`, copied by a tc egress program (tcx link);
/// with `--mirror`, taken from the mirror port by the XDP program already attached. What the
/// `attached` line says of it.
fn attach_compare(
    program: &mut XdpProgram,
    cli: &cli::Cli,
    iface: &str,
) -> anyhow::Result<&'static str> {
    if !cli.compare {
        return Ok("");
    }
    if cli.mirror {
        return Ok(" compare=mirror");
    }
    program
        .attach_tc(
            TCPCOPY_EGRESS_PROGRAM,
            iface,
            tcpcopy_xsk::program::TcHook::Egress,
        )
        .with_context(|| format!("--compare: production's responses on {iface}"))?;
    Ok(" compare=tc-egress")
}

/// Attaches the capture where `--hook` says: XDP (driver, else SKB mode), or where the
/// interface's XDP is taken by a program tcpcopy did not attach (auto), or with `--hook tc`, a tc
/// ingress program through a tcx link, next to the programs already there; nothing is detached
/// or replaced. The mode for the `attached` line (`driver`, `skb`, `tc-ingress`).
fn attach(program: &mut XdpProgram, cli: &cli::Cli, iface: &str) -> anyhow::Result<String> {
    use tcpcopy_xsk::program::{TcHook, XdpError};
    if cli.mirror && cli.hook == cli::Hook::Tc {
        bail!("--mirror needs XDP (frames are redirected into AF_XDP sockets); drop --hook tc");
    }
    let tc = |program: &mut XdpProgram| -> anyhow::Result<String> {
        program.attach_tc(TCPCOPY_TC_PROGRAM, iface, TcHook::Ingress)?;
        log::info!(
            "capturing on {iface} with a tc ingress program (tcx link): it sees packets after GRO and copies long ones in segments"
        );
        Ok(TcHook::Ingress.to_string())
    };
    if cli.hook == cli::Hook::Tc {
        return tc(program);
    }
    match program.attach(iface, cli.skb_mode) {
        Ok(mode) => {
            log::info!("capturing on {iface} with XDP ({mode} mode)");
            Ok(mode.to_string())
        }
        Err(XdpError::Attach { reason, .. }) if cli.hook == cli::Hook::Auto && !cli.mirror => {
            log::warn!(
                "XDP on {iface} is taken or refused ({reason}); another program may hold it, and it is left as it is: capturing with a tc ingress program (tcx link) instead"
            );
            tc(program)
        }
        Err(e) => Err(e.into()),
    }
}

/// `--metrics`, `--session-log` and `--compare` (with `--compare-log`), opened at start.
struct Outputs {
    metrics: Option<tcpcopy_host::metrics::Listener>,
    records: Option<Arc<sessions::SessionLog>>,
    compare: Option<Arc<compare::Settings>>,
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
            .map(|p| sessions::LineLog::open("--session-log", p))
            .transpose()?
            .map(Arc::new);
        let compare = cli
            .compare
            .then(|| -> anyhow::Result<_> {
                let mut config = tcpcopy_compare::Config::default();
                for name in &cli.compare_ignore_header {
                    config.ignore.add(name);
                }
                config.session_cap = cli.compare_session_kib.max(1).saturating_mul(1024);
                let log = cli
                    .compare_log
                    .as_deref()
                    .map(compare::CompareLog::open)
                    .transpose()?
                    .map(Arc::new);
                Ok(Arc::new(compare::Settings {
                    config: Arc::new(config),
                    log,
                }))
            })
            .transpose()?;
        Ok(Self {
            metrics,
            records,
            compare,
        })
    }
}

/// Serves the metrics (from the program's counters and the workers' snapshots) and reopens the
/// session and compare logs on SIGHUP; returns the compare log.
fn serve_outputs(
    out: Outputs,
    pool: &mut tcpcopy_host::workers::Pool<report::Snapshot>,
    program: Option<Arc<XdpProgram>>,
) -> anyhow::Result<Option<Arc<compare::CompareLog>>> {
    let compare_log = out.compare.and_then(|c| c.log.clone());
    let returned = compare_log.clone();
    if out.records.is_some() || compare_log.is_some() {
        let records = out.records;
        pool.on_hangup = Some(Box::new(move || {
            if let Some(r) = &records {
                r.reopen();
            }
            if let Some(c) = &compare_log {
                c.reopen();
            }
        }));
    }
    if let Some(listener) = out.metrics {
        let slots = pool.slots.clone();
        let ready_slots = pool.slots.clone();
        listener.serve(tcpcopy_host::metrics::Source {
            families: Box::new(move || report::metrics(program.as_deref(), &slots.all())),
            ready: Box::new(move || report::ready(&ready_slots.all())),
        })?;
    }
    Ok(returned)
}

/// A stats line of `pool` (live with `program`, or offline), and with `--compare-log` a
/// summary line in the log.
fn stats_line(
    program: Option<&XdpProgram>,
    compare_log: Option<&compare::CompareLog>,
    pool: &tcpcopy_host::workers::Pool<report::Snapshot>,
) -> String {
    let line = report::line(program, pool);
    if let Some(log) = compare_log {
        let (total, _) = report::total(&pool.slots.all());
        log.summary(&total.compare.unwrap_or_default(), pool.is_joined());
    }
    line
}

/// `-i FILE` / `--pcap FILE`: replays the file's sessions in one worker; no XDP program is
/// loaded. With `--compare`, the file's server-to-client packets are production's responses.
fn run_offline(
    cli: &cli::Cli,
    config: tcpcopy_engine::Config,
    control: &link::Control,
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
        control: control.clone(),
        records: outputs.records.clone(),
        // --compare: production's responses are the file's server-to-client packets.
        compare: outputs.compare.clone(),
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
    let compare_log = serve_outputs(outputs, &mut pool, None)?;
    let _pid_file =
        tcpcopy_host::daemon::started(cli.pid_file.as_deref()).context("writing the pid file")?;
    pool.until_done(interval, |p| stats_line(None, compare_log.as_deref(), p))
}
