//! `intercept`: on the host the test server routes its replies to, catches those replies with
//! XDP (they are dropped there, so nothing answers them) and sends their headers to the tcpcopy
//! instance that registered each client, over the control channel.

mod server;
mod workers;

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::Parser;
use tcpcopy_abi::maps::{INTERCEPT_PROGRAM, MODE_MIRROR};
use tcpcopy_proto::{DEFAULT_BATCH, DEFAULT_PORT};
use tcpcopy_xsk::program::XdpProgram;

#[derive(Debug, Parser)]
#[command(
    name = "intercept",
    version,
    about = "Catches the test server's replies and reports them to tcpcopy",
    long_about = "Catches the test server's replies and reports them to tcpcopy.\n\n\
Run it on the host the test server routes its replies for the replayed clients to. An XDP program \
on --iface selects the replies (by source port) and hands them to intercept (AF_XDP, or their headers \
through a ring buffer); they are dropped there, so the assistant never answers them; \
intercept sends each header to the tcpcopy instance that registered that client."
)]
struct Cli {
    /// Interface the test server's replies arrive on (default: the default route's interface).
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    iface: Option<String>,

    /// Source port(s) of the replies to catch (the test service's ports); may be repeated.
    /// Default 80, unless -F decides.
    #[arg(long = "src-port", value_name = "PORT")]
    src_ports: Vec<u16>,

    /// Filter of the replies to catch, e.g. "tcp and src port 80": tcp, [src|dst] port N,
    /// [src|dst] host ADDR, [src|dst] net ADDR/LEN, and/or/not, parentheses.
    #[arg(short = 'F', long = "filter", value_name = "EXPR")]
    filter: Option<String>,

    /// Control port tcpcopy connects to.
    #[arg(short = 'p', long = "port", value_name = "PORT", default_value_t = DEFAULT_PORT)]
    port: u16,

    /// Address to listen on for tcpcopy (default: every address, IPv4 and IPv6).
    #[arg(short = 'b', long = "bind", value_name = "IP")]
    bind: Option<IpAddr>,

    /// Highest control-channel protocol version to speak: 7 (negotiated with each tcpcopy; a
    /// tcpcopy that speaks only version 6 is served in version 6) or 6 (answer no offer, as the
    /// original intercept).
    #[arg(long, value_name = "VERSION", default_value_t = 7,
          value_parser = clap::value_parser!(u16).range(6..=7))]
    protocol: u16,

    /// Reply headers per message to tcpcopy.
    #[arg(short = 'n', long = "batch", value_name = "N", default_value_t = DEFAULT_BATCH)]
    batch: usize,

    /// How caught replies reach intercept: AF_XDP sockets (auto: falling back to the ring buffer
    /// where they cannot be bound) or the ring buffer (headers only).
    #[arg(long, value_enum, default_value_t = CaptureMode::Auto)]
    capture: CaptureMode,

    /// Worker threads, each pinned to a core and handling the replies whose address/port hash
    /// falls to it; default: one per receive queue of the interface, at most one per core, at
    /// most 8.
    #[arg(long, value_name = "N")]
    workers: Option<u16>,

    /// Attach XDP in generic (SKB) mode instead of trying driver mode first.
    #[arg(long)]
    skb_mode: bool,

    /// Size of the kernel-to-userspace frame ring, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    ring_mib: u32,

    /// Print counters every SECS seconds (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    stats_interval: u64,

    /// Run in the background (detached; output to the -l log file).
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,

    /// Write the process id to this file (removed at exit).
    #[arg(short = 'P', long = "pid-file", value_name = "FILE")]
    pid_file: Option<PathBuf>,

    /// Log to this file instead of stderr.
    #[arg(short = 'l', long = "log", value_name = "FILE")]
    log: Option<PathBuf>,

    /// Logs and report lines as text (default) or one JSON object a line.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: tcpcopy_host::logfmt::LogFormat,

    /// Serve Prometheus metrics on http://ADDR:PORT/metrics, readiness on /ready (attached and
    /// listening for tcpcopy) and liveness on /live.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
}

/// `--capture`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CaptureMode {
    Auto,
    Xdp,
    Ring,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tcpcopy_host::daemon::main_with("intercept", cli.log.as_deref(), cli.log_format, || {
        run(&cli)
    })
}

fn warn_ip_forward() {
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1") {
        log::warn!(
            "ip_forward=1 on this host: the replies intercept catches are dropped by XDP, but other traffic for the replayed client addresses would be forwarded; set net.ipv4.ip_forward=0 on the assistant"
        );
    }
}

/// The interface of the IPv4 default route (`/proc/net/route`).
fn default_route_iface() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_owned())
    })
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let iface = if let Some(i) = &cli.iface {
        i.clone()
    } else {
        let i = default_route_iface().context(
            "no -i given and no default route to take the interface from; give -i IFACE",
        )?;
        log::info!("no -i given: catching replies on {i}, the default route's interface");
        i
    };
    warn_ip_forward();
    let metrics = cli
        .metrics
        .map(tcpcopy_host::metrics::Listener::bind)
        .transpose()?;
    let workers = tcpcopy_host::workers::count(cli.workers, &iface)?;
    let filter = tcpcopy_abi::filter_expr::compile(cli.filter.as_deref().unwrap_or(""))?;
    let ports = match (&cli.filter, cli.src_ports.is_empty()) {
        (_, false) => cli.src_ports.clone(),
        (Some(_), true) => vec![tcpcopy_abi::maps::ANY_PORT],
        (None, true) => vec![80],
    };
    let load = || {
        XdpProgram::load_configured(
            tcpcopy::INTERCEPT_OBJECT,
            INTERCEPT_PROGRAM,
            cli.ring_mib.saturating_mul(1 << 20),
            u32::from(workers),
            &ports,
            &filter,
        )
    };
    let mut program = load()?;
    let af_xdp = cli.capture != CaptureMode::Ring;
    let (listener, addr) = listen(cli.bind, cli.port)?;
    // AF_XDP where it can be had (auto: else the ring buffer, with a warning).
    let (pool, via, senders) = match start_workers(&mut program, &iface, workers, af_xdp, cli.batch)
    {
        Ok(started) => started,
        Err(e) if cli.capture == CaptureMode::Auto => {
            log::warn!("AF_XDP receive unavailable ({e:#}); replies come through the ring buffer");
            program = load()?;
            start_workers(&mut program, &iface, workers, false, cli.batch)?
        }
        Err(e) => return Err(e),
    };
    workers::control(listener, senders, cli.protocol >= 7)?;
    let mode = program
        .attach(&iface, cli.skb_mode)
        .with_context(|| format!("reply interface {iface}"))?;
    tcpcopy_host::logfmt::emit(
        "attached",
        &format!(
            "iface={} mode={mode} ports={ports:?} filter={:?} workers={workers} capture={via} listen={addr}",
            iface,
            cli.filter.as_deref().unwrap_or("")
        ),
    );
    let program = std::sync::Arc::new(program);
    if let Some(listener) = metrics {
        let slots = pool.slots.clone();
        let program = program.clone();
        listener.serve(tcpcopy_host::metrics::Source {
            families: Box::new(move || workers::metrics(&program, &slots.all())),
            // Attached and listening: served from here on only.
            ready: Box::new(|| Ok(())),
        })?;
    }
    let _pid_file =
        tcpcopy_host::daemon::started(cli.pid_file.as_deref()).context("writing the pid file")?;
    let interval = (cli.stats_interval > 0).then(|| Duration::from_secs(cli.stats_interval));
    pool.until_done(interval, |p| workers::line(&program, p))
}

/// The control port's socket: on `bind`, or on every IPv6 and IPv4 address (`[::]`, which takes
/// IPv4 too), or where the host has no IPv6, every IPv4 address.
fn listen(bind: Option<IpAddr>, port: u16) -> anyhow::Result<(std::net::TcpListener, SocketAddr)> {
    let any6 = SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), port);
    let any4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), port);
    let addr = match bind {
        Some(ip) => SocketAddr::new(ip, port),
        None => match std::net::TcpListener::bind(any6) {
            Ok(l) => return Ok((l, any6)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(e).with_context(|| format!("listening on {any6} for tcpcopy"));
            }
            Err(_) => any4,
        },
    };
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("listening on {addr} for tcpcopy"))?;
    Ok((l, addr))
}

type Started = (
    tcpcopy_host::workers::Pool<workers::Snapshot>,
    &'static str,
    Vec<tokio::sync::mpsc::UnboundedSender<server::ConnEvent>>,
);

/// Starts the workers, with AF_XDP sockets (`af_xdp`) or the ring buffers.
fn start_workers(
    program: &mut XdpProgram,
    iface: &str,
    workers: u16,
    af_xdp: bool,
    batch: usize,
) -> anyhow::Result<Started> {
    if af_xdp {
        program.set_mode(MODE_MIRROR)?;
    }
    let (plans, senders) = workers::plans(program, iface, workers, af_xdp, batch)?;
    let (pool, vias) = workers::start(plans)?;
    let first = vias.first().copied().unwrap_or("ring");
    Ok((pool, first, senders))
}
