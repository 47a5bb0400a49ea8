//! `intercept`: catches the test server's replies to the replayed clients and sends their
//! headers to the tcpcopy instance that registered each client, over the control channel.
//!
//! Two ways to catch them: on the test server itself (`--egress`: a tc egress program takes the
//! replies as they leave and swallows them, so they never reach the network), or on an
//! assistant host the test server routes them to (XDP consumes them there).

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
use tcpcopy_abi::maps::{INTERCEPT_PROGRAM, INTERCEPT_TC_PROGRAM, MODE_MIRROR};
use tcpcopy_proto::{DEFAULT_BATCH, DEFAULT_PORT};
use tcpcopy_xsk::program::{TcHook, XdpProgram};

#[derive(Debug, Parser)]
#[command(
    name = "intercept",
    version,
    disable_version_flag = true,
    about = "Catches the test server's replies and reports them to tcpcopy",
    long_about = "Catches the test server's replies and reports them to tcpcopy.\n\n\
With --egress, run it on the test server itself: a tc egress program on the interface the replies \
leave by takes the replies to the replayed clients (-c) from the test service's port as they leave, \
hands their headers to intercept and swallows them, so they never reach the network. The replayed \
client addresses must be routed through a next hop that answers ARP/ND (e.g. the default gateway), \
not on-link.\n\n\
Without it, run it on the host the test server routes its replies for the replayed clients to. An \
XDP program on --iface selects the replies (by source port) and hands them to intercept (AF_XDP, or \
their headers through a ring buffer); they are dropped there, so the assistant never answers them. \
Either way intercept sends each header to the tcpcopy instance that registered that client."
)]
struct Cli {
    /// Interface the test server's replies arrive on (default: the default route's interface);
    /// with --egress, the interface they leave by (default: the route to the replayed clients).
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    iface: Option<String>,

    /// Run on the test server itself: catch its replies to the replayed clients (-c) at tc
    /// egress as they leave and swallow them (no assistant host, no route, no sysctl).
    #[arg(long)]
    egress: bool,

    /// With --egress: the replayed client addresses (what tcpcopy's -c rewrites clients into),
    /// as networks (192.0.2.0/24, 2001:db8:2::/64) or addresses; repeatable or comma-separated.
    /// Only replies to these are caught: the test server's own clients are left alone. `-c`
    /// without a value is the original's single-tcpcopy flag ("keep the connected tcpcopy"):
    /// accepted, always so here (every tcpcopy's connections are kept side by side).
    #[arg(short = 'c', long = "clients", value_name = "NET", value_delimiter = ',',
          num_args = 0.., value_parser = parse_net)]
    clients_arg: Option<Vec<ipnet::IpNet>>,

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

    /// Accept tcpcopy connections only from this network (CIDR, e.g. 10.0.0.5/32 or
    /// 2001:db8::/64); may be repeated. Without it any peer is accepted (said at start).
    #[arg(long = "allow", value_name = "CIDR")]
    allow: Vec<ipnet::IpNet>,

    /// A file holding a shared secret (at least 16 bytes) every tcpcopy must prove before it
    /// registers anything (protocol version 7, challenge-response: the secret never crosses the
    /// network); version-6 peers are then refused.
    #[arg(long = "secret-file", value_name = "FILE")]
    secret_file: Option<PathBuf>,

    /// Routes (replayed connections) one tcpcopy connection may register. Each costs about
    /// 500 bytes in every worker's table.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    max_routes_per_connection: usize,

    /// Routes all tcpcopy connections together may register.
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    max_routes: usize,

    /// A route with no registration and no reply for this long is removed (version-6 peers
    /// never withdraw theirs).
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    route_idle_timeout: u64,

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

    /// Replies to these addresses are not caught (they go on to this host's stack): the
    /// original's firewall pass list, ip[,ip...]; at most 8 in all, may be repeated.
    #[arg(short = 'x', long = "pass", value_name = "IPS")]
    pass: Vec<String>,

    /// The original's hash table size: accepted and ignored (the routing table here grows as
    /// needed).
    #[arg(short = 's', value_name = "N", hide = true)]
    hash_size: Option<String>,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: (),

    #[arg(short = 't', hide = true, value_name = "N")]
    router_timeout: Option<String>,
    #[arg(short = 'D', hide = true, value_name = "DOCKER-ORIG")]
    docker: Option<String>,
    #[arg(short = 'q', hide = true, value_name = "N")]
    queue_len: Option<String>,
}

impl Cli {
    /// `--egress`'s client networks (none for the original's bare `-c`).
    fn clients(&self) -> &[ipnet::IpNet] {
        self.clients_arg.as_deref().unwrap_or_default()
    }

    /// The first option given that no longer applies, and why (one line each).
    fn gone(&self) -> Option<&'static str> {
        [
            (
                self.router_timeout.is_some(),
                "-t (router entry timeout) no longer applies (intercept 1.0 refused it too): an entry lives as long as its tcpcopy connection, replies wait at most 1 s for their registration; drop -t",
            ),
            (
                self.docker.is_some(),
                "-D (rewriting a container address back to the original) is not supported: give the test server's replies for the -c addresses a route to this host instead; drop -D",
            ),
            (
                self.queue_len.is_some(),
                "-q (netfilter queue length) no longer applies: XDP catches the replies, there is no queue to size; drop -q",
            ),
        ]
        .into_iter()
        .find_map(|(given, why)| given.then_some(why))
    }

    /// `-F` and `-x` together: the filter the XDP program evaluates ("" for none).
    fn filter_text(&self) -> anyhow::Result<String> {
        let mut pass = Vec::new();
        for part in self.pass.iter().flat_map(|p| p.split(',')).map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let ip: IpAddr = part.parse().map_err(|_| {
                anyhow::anyhow!(
                    "-x {part:?}: expected ip[,ip...] (the addresses whose replies pass)"
                )
            })?;
            pass.push(format!("not dst host {ip}"));
        }
        let mut parts: Vec<String> = self.filter.iter().map(|f| format!("({f})")).collect();
        parts.extend(pass);
        Ok(parts.join(" and "))
    }
}

/// `--capture`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CaptureMode {
    Auto,
    Xdp,
    Ring,
}

/// A network, or an address as a network of one.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither a network (192.0.2.0/24) nor an address"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(why) = cli.gone() {
        eprintln!("intercept: error: {why}");
        return ExitCode::FAILURE;
    }
    let tasks = tcpcopy_host::caps::intercept_tasks(
        cli.capture != CaptureMode::Ring,
        tcpcopy_host::caps::privileged_port(cli.port),
    );
    tcpcopy_host::daemon::main_with(
        "intercept",
        cli.log.as_deref(),
        &tasks,
        cli.log_format,
        || run(&cli),
    )
}

fn warn_ip_forward() {
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1") {
        log::warn!(
            "ip_forward=1 on this host: the replies intercept catches are dropped by XDP, but other traffic for the replayed client addresses would be forwarded; set net.ipv4.ip_forward=0 on the assistant"
        );
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if cli.hash_size.is_some() {
        log::warn!("-s (hash table size) ignored: the routing table here grows as needed");
    }
    if cli.egress {
        return run_egress(cli);
    }
    if !cli.clients().is_empty() {
        anyhow::bail!(
            "-c/--clients is for --egress (on the assistant, the test server's route decides what arrives)"
        );
    }
    let iface = if let Some(i) = &cli.iface {
        i.clone()
    } else {
        let i = tcpcopy_host::neigh::default_route_iface().context(
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
    let filter_text = cli.filter_text()?;
    let filter = tcpcopy_abi::filter_expr::compile(&filter_text)?;
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
    let policy = policy(cli)?;
    let limits = limits(cli);
    // AF_XDP where it can be had (auto: else the ring buffer, with a warning).
    let (pool, via, senders) =
        match start_workers(&mut program, &iface, workers, af_xdp, cli.batch, limits) {
            Ok(started) => started,
            Err(e) if cli.capture == CaptureMode::Auto => {
                log::warn!(
                    "AF_XDP receive unavailable ({e:#}); replies come through the ring buffer"
                );
                program = load()?;
                start_workers(&mut program, &iface, workers, false, cli.batch, limits)?
            }
            Err(e) => return Err(e),
        };
    let refusals = control(&mut program, listener, senders, policy)?;
    let mode = program
        .attach(&iface, cli.skb_mode)
        .with_context(|| format!("reply interface {iface}"))?;
    tcpcopy_host::logfmt::emit(
        "attached",
        &format!(
            "iface={iface} mode={mode} ports={ports:?} filter={filter_text:?} workers={workers} capture={via} listen={addr}"
        ),
    );
    serve(cli, program, metrics, pool, &refusals)
}

/// What both modes do once attached: metrics served (if asked), the pid file written, the
/// workers run until a signal, with a stats line each interval.
fn serve(
    cli: &Cli,
    program: XdpProgram,
    metrics: Option<tcpcopy_host::metrics::Listener>,
    pool: tcpcopy_host::workers::Pool<workers::Snapshot>,
    refusals: &std::sync::Arc<server::Refusals>,
) -> anyhow::Result<()> {
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
    pool.until_done(interval, |p| workers::line(&program, p, refusals))
}

/// The `-F` expression of `--egress`: the user's, and a reply's destination in one of the
/// replayed clients' networks.
fn egress_filter(user: Option<&str>, clients: &[ipnet::IpNet]) -> String {
    let nets: Vec<String> = clients.iter().map(|n| format!("dst net {n}")).collect();
    let nets = nets.join(" or ");
    match user {
        Some(f) if !f.trim().is_empty() => format!("({f}) and ({nets})"),
        _ => nets,
    }
}

/// The interface the replies to `clients` leave by (the route to the first address of each),
/// with a warning where that route has no gateway: the replies would wait for an ARP/ND answer
/// that never comes and never reach tc egress.
fn egress_iface(cli: &Cli) -> anyhow::Result<String> {
    let mut found = None;
    for net in cli.clients() {
        let probe = net.hosts().next().unwrap_or_else(|| net.addr());
        let Some(route) = tcpcopy_host::neigh::route(probe) else {
            log::warn!(
                "no route to the replayed clients {net}: the test server cannot answer them; route them through a gateway (e.g. the default route)"
            );
            continue;
        };
        if route.next_hop == probe {
            log::warn!(
                "the replayed clients {net} are on-link on {}: replies to them wait for an ARP/ND answer that never comes and never reach the tc egress hook; use client addresses that are routed through a gateway (e.g. the default route)",
                route.iface
            );
        } else if tcpcopy_host::neigh::resolve(&route, Duration::from_secs(1)).is_none() {
            log::warn!(
                "the next hop {} towards the replayed clients {net} does not answer ARP/ND: replies to them never reach the tc egress hook",
                route.next_hop
            );
        }
        found.get_or_insert(route.iface);
    }
    match (&cli.iface, found) {
        (Some(i), _) => Ok(i.clone()),
        (None, Some(i)) => {
            log::info!(
                "no -i given: catching replies leaving by {i}, the route to the replayed clients"
            );
            Ok(i)
        }
        (None, None) => anyhow::bail!("no route to the replayed clients; give -i IFACE"),
    }
}

/// `--egress`: the tc egress program on the test server itself; replies through the ring buffer
/// (AF_XDP sockets take only what XDP redirects).
fn run_egress(cli: &Cli) -> anyhow::Result<()> {
    if cli.clients().is_empty() {
        anyhow::bail!(
            "--egress needs the replayed client addresses: -c NET (what tcpcopy's -c rewrites clients into, e.g. -c 192.0.2.0/24); only replies to them are caught"
        );
    }
    if cli.capture == CaptureMode::Xdp {
        anyhow::bail!(
            "--capture xdp and --egress: replies caught at tc egress come through the ring buffer"
        );
    }
    let iface = egress_iface(cli)?;
    let metrics = cli
        .metrics
        .map(tcpcopy_host::metrics::Listener::bind)
        .transpose()?;
    let workers = tcpcopy_host::workers::count(cli.workers, &iface)?;
    let expr = egress_filter(cli.filter.as_deref(), cli.clients());
    let filter = tcpcopy_abi::filter_expr::compile(&expr)?;
    let ports = if cli.src_ports.is_empty() {
        if cli.filter.is_some() {
            vec![tcpcopy_abi::maps::ANY_PORT]
        } else {
            vec![80]
        }
    } else {
        cli.src_ports.clone()
    };
    let mut program = XdpProgram::load_configured(
        tcpcopy::INTERCEPT_OBJECT,
        INTERCEPT_TC_PROGRAM,
        cli.ring_mib.saturating_mul(1 << 20),
        u32::from(workers),
        &ports,
        &filter,
    )?;
    let (listener, addr) = listen(cli.bind, cli.port)?;
    let policy = policy(cli)?;
    let limits = limits(cli);
    let (pool, via, senders) =
        start_workers(&mut program, &iface, workers, false, cli.batch, limits)?;
    let refusals = control(&mut program, listener, senders, policy)?;
    program
        .attach_tc(INTERCEPT_TC_PROGRAM, &iface, TcHook::Egress)
        .with_context(|| format!("reply interface {iface}"))?;
    tcpcopy_host::logfmt::emit(
        "attached",
        &format!(
            "iface={iface} mode={} ports={ports:?} filter={expr:?} workers={workers} capture={via} listen={addr}",
            TcHook::Egress
        ),
    );
    serve(cli, program, metrics, pool, &refusals)
}

/// The control channel's accept loop, with the switch that turns the programs' payload copies
/// on when a tcpcopy asks for them (`--compare`); its refusal counters.
fn control(
    program: &mut XdpProgram,
    listener: std::net::TcpListener,
    senders: Vec<tokio::sync::mpsc::UnboundedSender<server::ConnEvent>>,
    policy: server::Policy,
) -> anyhow::Result<std::sync::Arc<server::Refusals>> {
    let refusals = std::sync::Arc::new(server::Refusals::default());
    let payloads = program.payload_switch()?;
    workers::control(
        listener,
        senders,
        policy,
        std::sync::Arc::clone(&refusals),
        Some(payloads),
    )?;
    Ok(refusals)
}

/// The routing table's bounds (`--max-routes-per-connection`, `--max-routes`,
/// `--route-idle-timeout`).
fn limits(cli: &Cli) -> server::Limits {
    server::Limits {
        per_connection: cli.max_routes_per_connection.max(1),
        total: cli.max_routes.max(1),
        idle: Duration::from_secs(cli.route_idle_timeout.max(1)),
    }
}

/// Who may use the control channel (`--allow`, `--secret-file`, `--protocol`).
fn policy(cli: &Cli) -> anyhow::Result<server::Policy> {
    let secret = match &cli.secret_file {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the secret file {}", path.display()))?;
            if cli.protocol < 7 {
                anyhow::bail!(
                    "--secret-file needs protocol version 7 (--protocol 6 cannot prove it)"
                );
            }
            Some(tcpcopy_proto::Secret::new(&bytes).with_context(|| path.display().to_string())?)
        }
        None => None,
    };
    match (cli.allow.is_empty(), secret.is_some()) {
        (true, false) => log::warn!(
            "accepting tcpcopy connections from anywhere: restrict them with --allow CIDR and --secret-file"
        ),
        (true, true) => {
            log::info!("tcpcopy connections from anywhere must prove the shared secret");
        }
        (false, _) => log::info!("tcpcopy connections accepted from {:?} only", cli.allow),
    }
    Ok(server::Policy {
        accept_v7: cli.protocol >= 7,
        allow: cli.allow.clone(),
        secret,
    })
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
    limits: server::Limits,
) -> anyhow::Result<Started> {
    if af_xdp {
        program.set_mode(MODE_MIRROR)?;
    }
    let (plans, senders) = workers::plans(program, iface, workers, af_xdp, batch, limits)?;
    let (pool, vias) = workers::start(plans)?;
    let first = vias.first().copied().unwrap_or("ring");
    Ok((pool, first, senders))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("intercept").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn every_option_of_the_original_parses() {
        // intercept 1.0's getopt letters (both builds; -h and -v print and exit).
        let cli = parse(&[
            "-i",
            "eth0",
            "-F",
            "tcp and src port 8080",
            "-n",
            "8",
            "-p",
            "36524",
            "-s",
            "65536",
            "-b",
            "0.0.0.0",
            "-l",
            "/tmp/log",
            "-P",
            "/tmp/pid",
            "-c",
            "-d",
            "-x",
            "10.0.0.5,10.0.0.6",
        ]);
        assert_eq!(cli.gone(), None);
        assert!(cli.clients_arg == Some(Vec::new()) && cli.hash_size.is_some());
        let text = cli.filter_text().unwrap();
        assert_eq!(
            text,
            "(tcp and src port 8080) and not dst host 10.0.0.5 and not dst host 10.0.0.6"
        );
        tcpcopy_abi::filter_expr::compile(&text).unwrap();
        let alone = parse(&["-x", "10.0.0.5"]).filter_text().unwrap();
        assert_eq!(alone, "not dst host 10.0.0.5");
        tcpcopy_abi::filter_expr::compile(&alone).unwrap();
        assert!(parse(&["-x", "nope"]).filter_text().is_err());
        for (flag, exits) in [
            ("-h", clap::error::ErrorKind::DisplayHelp),
            ("-v", clap::error::ErrorKind::DisplayVersion),
        ] {
            let err = Cli::try_parse_from(["intercept", flag]).unwrap_err();
            assert_eq!(err.kind(), exits);
        }
        for (opt, why) in [
            ("-t", "refused it too"),
            ("-D", "route to this host"),
            ("-q", "no queue to size"),
        ] {
            let why_not = parse(&[opt, "1"]).gone().unwrap();
            assert!(
                why_not.starts_with(opt) && why_not.contains(why),
                "{why_not}"
            );
        }
    }
}
