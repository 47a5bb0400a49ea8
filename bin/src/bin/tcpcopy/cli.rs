//! Command line of `tcpcopy`. Short options are the original tcpcopy's; long ones stand beside them.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::Parser;
use tcpcopy_engine::{Config, MAX_SEND_AHEAD, Mapping, MappingError, parse_client_addrs};
use tcpcopy_proto::DEFAULT_PORT;

use crate::send::SendMode;

/// `--response-wait` with `--compare`: a test server's answer may take this long and still be
/// compared (and timed).
pub const COMPARE_RESPONSE_WAIT: Duration = Duration::from_secs(10);

/// Parses `--send-ahead`: 0 to [`MAX_SEND_AHEAD`] requests.
fn send_ahead(text: &str) -> Result<u8, String> {
    text.parse::<u8>()
        .ok()
        .filter(|n| *n <= MAX_SEND_AHEAD)
        .ok_or_else(|| format!("{text:?}: a number of requests from 0 to {MAX_SEND_AHEAD}"))
}

/// `--hook`: where the capture program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Hook {
    Auto,
    Xdp,
    Tc,
}

#[derive(Debug, Parser)]
#[expect(clippy::struct_excessive_bools, reason = "command-line flags")]
#[command(
    name = "tcpcopy",
    version,
    disable_version_flag = true,
    about = "Copies live TCP requests arriving at this host to a test server",
    long_about = "Copies live TCP requests arriving at this host to a test server.\n\n\
An XDP program on the capture interface selects the requests to the mapped ports in the kernel and \
copies them to tcpcopy; the live packets always go on to the online service untouched (XDP_PASS). \
tcpcopy replays each session to the target; intercept, on the host the test server routes its \
replies to, reports the replies back over the control channel."
)]
pub struct Cli {
    /// Capture interface on the online host (the one the requests arrive on), or a capture file
    /// (pcap or pcapng) to replay offline. Default: the interface that carries the -x online
    /// addresses, or else the default route's.
    #[arg(short = 'i', long = "iface", value_name = "IFACE|FILE")]
    pub iface: Option<String>,

    /// Replay this capture file (pcap or pcapng) instead of live traffic.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,

    /// Offline: play the file N times faster.
    #[arg(
        short = 'a',
        long = "accelerate",
        value_name = "N",
        default_value_t = 1.0
    )]
    pub accelerate: f64,

    /// Offline: shorten idle gaps longer than MS milliseconds to MS.
    #[arg(short = 'I', long = "idle-cap", value_name = "MS")]
    pub idle_cap: Option<u64>,

    /// Offline: play the file N times (the next pass starts when the sessions are done).
    #[arg(short = 'T', long = "loops", value_name = "N", default_value_t = 1)]
    pub loops: u32,

    /// Port mapping(s): [onlineIP:]onlinePort-targetIP:targetPort[,...]; may be repeated.
    #[arg(short = 'x', long = "map", value_name = "MAPPING")]
    pub map: Vec<String>,

    /// Short form of -x: replay requests for the target's port (or --online-port) to IP:PORT.
    #[arg(long, value_name = "IP:PORT")]
    pub target: Option<SocketAddr>,

    /// With --target: the online service's port, when it differs from the target's.
    #[arg(long, value_name = "PORT", requires = "target")]
    pub online_port: Option<u16>,

    /// intercept address(es): ip[:port][,...] (port defaults to -p); may be repeated.
    #[arg(short = 's', long = "intercept", value_name = "ADDRS")]
    pub intercept: Vec<String>,

    /// Rewrite client addresses to these: ip[,ip...], a.b.c.x for .1-.254.
    #[arg(short = 'c', long = "client-addrs", value_name = "ADDRS")]
    pub client_addrs: Option<String>,

    /// Copies of every session.
    #[arg(short = 'n', long = "copies", value_name = "N", default_value_t = 1)]
    pub copies: u16,

    /// Replay this percentage of sessions (whole sessions, chosen by client ip:port).
    #[arg(
        short = 'r',
        long = "percentage",
        value_name = "P",
        default_value_t = 100
    )]
    pub percentage: u8,

    /// Ramp up from 1% of sessions, +1% per second.
    #[arg(short = 'g', long = "ramp")]
    pub ramp: bool,

    /// This instance's number (0-15) when several tcpcopy instances replay to one target.
    #[arg(short = 'f', long = "instance", value_name = "F")]
    pub instance: Option<u8>,

    /// Session idle timeout, seconds.
    #[arg(
        short = 't',
        long = "timeout",
        value_name = "SECS",
        default_value_t = 600
    )]
    pub timeout: u64,

    /// Idle timeout of a session with nothing outstanding (everything captured acknowledged by
    /// the test server), seconds; default: -t.
    #[arg(short = 'k', long = "keepalive", value_name = "SECS")]
    pub keepalive: Option<u64>,

    /// Keep running while no intercept is reachable (tcpcopy always does so here: it retries
    /// every intercept with backoff); accepted for the original's command lines.
    #[arg(short = 'L', long = "lonely")]
    pub lonely: bool,

    /// Connections to each intercept.
    #[arg(
        short = 'C',
        long = "connections",
        value_name = "N",
        default_value_t = 2
    )]
    pub connections: u16,

    /// intercept's control port.
    #[arg(short = 'p', long = "port", value_name = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Highest control-channel protocol version to offer: 7 (negotiated; an intercept that
    /// speaks only version 6 is spoken to in version 6) or 6 (as the original tcpcopy).
    #[arg(long, value_name = "VERSION", default_value_t = 7,
          value_parser = clap::value_parser!(u16).range(6..=7))]
    pub protocol: u16,

    /// While the test server restarts: a refused or unanswered SYN is tried again, with backoff,
    /// for this long from the session's start (or its rebuild); 0 tries once.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub restart_window: f64,

    /// How long a request is held for the test server's answer to the one before (once that one
    /// is acknowledged and the answer is still short of production's), and how long a closing
    /// connection waits for the rest of an answer. Default 0.5 s, 10 s with --compare (an
    /// answer cut off by it is counted not compared, `incomplete`).
    #[arg(long, value_name = "SECS")]
    pub response_wait: Option<f64>,

    /// A file holding the shared secret the intercepts ask for (their --secret-file): proven by
    /// challenge-response over protocol version 7, never sent.
    #[arg(long = "secret-file", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// Largest packet towards the test server (default: the path's MTU: the route's, else its
    /// interface's; this caps it).
    #[arg(short = 'M', long = "mtu", value_name = "BYTES")]
    pub mtu: Option<u16>,

    /// MSS in the SYNs faked for sessions captured mid-stream.
    #[arg(
        short = 'D',
        long = "mss",
        value_name = "BYTES",
        default_value_t = 1460
    )]
    pub mss: u16,

    /// Only replay sessions whose SYN was captured.
    #[arg(short = 'O', long = "only-syn")]
    pub only_syn: bool,

    /// Send requests without waiting for the test server's responses.
    #[arg(short = 'W', long = "no-wait")]
    pub no_wait: bool,

    /// While a request waits for the test server's answer to the one before it, up to N further
    /// captured requests may go out on the keep-alive connection (pipelined), once the test
    /// server has answered a request on it; never the client's close. 0..=64; default 1, 0 with
    /// --compare (which pairs answers with requests one by one).
    #[arg(long = "send-ahead", value_name = "N", value_parser = send_ahead)]
    pub send_ahead: Option<u8>,

    /// Capture filter applied on top of -x: tcp, [src|dst] port N, [src|dst] host ADDR,
    /// [src|dst] net ADDR/LEN, and/or/not, parentheses.
    #[arg(short = 'F', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// How replayed packets are sent.
    #[arg(long = "send", value_enum, default_value_t = SendMode::Auto)]
    pub send: SendMode,

    /// The capture interface is a mirror/tap port: redirect the selected frames into AF_XDP
    /// sockets (one per receive queue) instead of copying them.
    #[arg(long)]
    pub mirror: bool,

    /// Bytes one session may buffer (captured, not yet acknowledged by the test server) before it
    /// is dropped (`buffer_limit`), MiB. Raise it for bulk uploads the test server takes slower
    /// than online does: the replay then lags and catches up.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub session_buffer_mib: usize,

    /// Bytes all sessions together may buffer before new data drops sessions (`memory_cap`), MiB
    /// (-m: the original's memory limit, in MB too).
    #[arg(short = 'm', long, value_name = "MIB", default_value_t = 4096)]
    pub memory_mib: usize,

    /// Worker threads, each pinned to a core and owning the connections whose address/port hash
    /// falls to it; default: one per receive queue of the capture interface, at most one per
    /// core, at most 8.
    #[arg(long, value_name = "N")]
    pub workers: Option<u16>,

    /// Attach XDP in generic (SKB) mode instead of trying driver mode first.
    #[arg(long)]
    pub skb_mode: bool,

    /// Where to capture: XDP, falling back to a tc ingress program (tcx link) when the interface's
    /// XDP is taken by another program (auto); XDP only; or tc ingress only, next to whatever
    /// programs the interface has.
    #[arg(long, value_enum, default_value_t = Hook::Auto)]
    pub hook: Hook,

    /// Size of the kernel-to-userspace frame ring, MiB (-B: the original's capture buffer, in MB
    /// too).
    #[arg(short = 'B', long, value_name = "MIB", default_value_t = 16)]
    pub ring_mib: u32,

    /// Print counters every SECS seconds (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub stats_interval: f64,

    /// Run in the background (detached; output to the -l log file).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Write the process id to this file (removed at exit).
    #[arg(short = 'P', long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Log to this file instead of stderr.
    #[arg(short = 'l', long = "log", value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Logs and report lines as text (default) or one JSON object a line.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: tcpcopy_host::logfmt::LogFormat,

    /// Serve Prometheus metrics on http://ADDR:PORT/metrics, readiness on /ready (attached and
    /// every intercept link up) and liveness on /live.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// Append one JSON line per ended session to FILE (reopened on SIGHUP, for logrotate).
    #[arg(long, value_name = "FILE")]
    pub session_log: Option<PathBuf>,

    /// Compare every replayed response with production's (status, headers, body digest for
    /// HTTP/1.x; bytes otherwise) and both latencies. Captures the service's responses with a tc
    /// egress program (from a capture file: its server-to-client packets, with its timestamps)
    /// and asks intercept (protocol version 7) for the test server's payloads.
    #[arg(long)]
    pub compare: bool,

    /// With --compare: a response header left out of the comparison, besides Date, Server,
    /// Expires, Last-Modified, ETag, Age, Connection, Keep-Alive, Content-Length and
    /// Transfer-Encoding (repeatable).
    #[arg(long, value_name = "NAME", requires = "compare")]
    pub compare_ignore_header: Vec<String>,

    /// With --compare: append one JSON line per differing request and a summary (counters,
    /// latency histograms) at each stats interval and at the end to FILE (reopened on SIGHUP).
    #[arg(long, value_name = "FILE", requires = "compare")]
    pub compare_log: Option<PathBuf>,

    /// With --compare: memory one session's comparison may hold, in KiB; past it the session's
    /// requests are counted not compared (`over_cap`).
    #[arg(long, value_name = "KIB", default_value_t = 8192, requires = "compare")]
    pub compare_session_kib: usize,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: (),

    /// The original's options that no longer apply: refused with the reason (see `refused`).
    #[command(flatten)]
    pub gone: Gone,
}

/// Options of tcpcopy 1.3.0 that no longer apply here. They parse (so the answer is not clap's
/// "unexpected argument") and are refused, each with one line saying why and what replaces it.
#[derive(Debug, clap::Args)]
pub struct Gone {
    #[arg(short = 'H', hide = true, value_name = "IP")]
    localhost: Option<String>,
    #[arg(short = 'o', hide = true, value_name = "IFACE")]
    output: Option<String>,
    #[arg(short = 'S', hide = true, value_name = "SNAPLEN")]
    snaplen: Option<String>,
    #[arg(short = 'U', hide = true, value_name = "KB")]
    pool: Option<String>,
    #[arg(short = 'R', hide = true, value_name = "MS")]
    rtt: Option<String>,
}

impl Gone {
    /// The first option given that no longer applies, and why.
    pub fn check(&self) -> Result<(), CliError> {
        let why = [
            (
                self.localhost.is_some(),
                "-H (a source address for 127.0.0.1 clients) is not supported: -c ADDR rewrites every client address, loopback ones included",
            ),
            (
                self.output.is_some(),
                "-o (the sending interface of the original's pcap-send build) no longer applies: replayed packets leave through the interface of the route to the target; drop -o",
            ),
            (
                self.snaplen.is_some(),
                "-S (pcap snaplen) no longer applies: the XDP program copies each selected frame whole (up to 2048 bytes); drop -S",
            ),
            (
                self.pool.is_some(),
                "-U (session pool size) no longer applies: sessions are allocated as they come, bounded by --session-buffer-mib and -m; drop -U",
            ),
            (
                self.rtt.is_some(),
                "-R (a fixed RTT for pacing) no longer applies: a request waits for the test server's response (at most 500 ms) and each session measures its own RTT; drop -R",
            ),
        ];
        match why.into_iter().find(|(given, _)| *given) {
            Some((_, why)) => Err(CliError::Gone(why)),
            None => Ok(()),
        }
    }
}

/// Options that parse but do not make sense together.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(
        "nothing to replay: give -x [onlineIP:]onlinePort-targetIP:targetPort or --target IP:PORT"
    )]
    NoMapping,
    #[error("--{0} {1}: must be a number of seconds {2}")]
    BadInterval(&'static str, f64, &'static str),
    #[error("-s {0:?}: expected ip[:port][,...]")]
    BadIntercept(String),
    #[error(transparent)]
    Config(#[from] tcpcopy_engine::ConfigError),
    #[error("{0}")]
    Gone(&'static str),
}

/// The smallest MTU on the paths to `targets` (the route's, else its interface's); 1500 where
/// none is known (offline replay on a host without a route to the target).
fn path_mtu(targets: &[IpAddr]) -> u16 {
    targets
        .iter()
        .filter_map(|t| tcpcopy_host::neigh::path_mtu(*t))
        .min()
        .map_or(1500, |m| u16::try_from(m).unwrap_or(u16::MAX))
}

impl Cli {
    /// The capture file to replay offline: `--pcap`, or `-i` naming a file.
    pub fn offline_file(&self) -> Option<PathBuf> {
        self.pcap.clone().or_else(|| {
            self.iface
                .as_ref()
                .map(PathBuf::from)
                .filter(|p| p.is_file())
        })
    }

    /// Every mapping given with `-x` and `--target`; at least one is required.
    pub fn mappings(&self) -> Result<Vec<Mapping>, CliError> {
        let mut out = Vec::new();
        for text in &self.map {
            out.extend(Mapping::parse_list(text)?);
        }
        if let Some(target) = self.target {
            out.push(Mapping::from_target(target, self.online_port));
        }
        if out.is_empty() {
            return Err(CliError::NoMapping);
        }
        Ok(out)
    }

    /// The intercept control addresses (`-s`); none means replies are not awaited.
    pub fn intercepts(&self) -> Result<Vec<SocketAddr>, CliError> {
        let mut out = Vec::new();
        for text in &self.intercept {
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let addr = part
                    .parse::<SocketAddr>()
                    .or_else(|_| {
                        part.parse::<IpAddr>()
                            .map(|ip| SocketAddr::new(ip, self.port))
                    })
                    .map_err(|_| CliError::BadIntercept(part.to_owned()))?;
                out.push(addr);
            }
        }
        Ok(out)
    }

    /// The control channel's settings: `-s`, `-C`, `--protocol`, `--secret-file` (read here).
    pub fn control(&self) -> anyhow::Result<crate::link::Control> {
        let secret = match &self.secret_file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("reading the secret file {}: {e}", path.display())
                })?;
                Some(
                    tcpcopy_proto::Secret::new(&bytes)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        if secret.is_some() && self.protocol < 7 {
            anyhow::bail!("--secret-file needs protocol version 7 (--protocol 6 cannot prove it)");
        }
        Ok(crate::link::Control {
            intercepts: self.intercepts()?,
            per_intercept: self.connections,
            max_version: self.protocol,
            secret,
            payloads: self.compare,
        })
    }

    /// The stats interval, `None` for "only at exit".
    pub fn stats_interval(&self) -> Result<Option<Duration>, CliError> {
        let every = seconds("stats-interval", self.stats_interval, false)?;
        Ok((!every.is_zero()).then_some(every))
    }

    /// The engine's configuration.
    pub fn engine_config(&self) -> Result<Config, CliError> {
        self.gone.check()?;
        let mappings = self.mappings()?;
        let targets: Vec<IpAddr> = mappings.iter().map(|m| m.target.ip()).collect();
        let mut cfg = Config::new(mappings);
        if let Some(c) = &self.client_addrs {
            cfg.client_addrs = parse_client_addrs(c, &targets)?;
        }
        cfg.copies = self.copies;
        cfg.percentage = self.percentage;
        cfg.ramp = self.ramp;
        cfg.instance = self.instance;
        cfg.idle_timeout = Duration::from_secs(self.timeout.max(1));
        cfg.keepalive_timeout = self.keepalive.map(|k| Duration::from_secs(k.max(1)));
        cfg.mtu = self.mtu.unwrap_or_else(|| path_mtu(&targets));
        cfg.mss = self.mss;
        cfg.restart_window = seconds("restart-window", self.restart_window, false)?;
        match self.response_wait {
            Some(w) => cfg.response_wait = seconds("response-wait", w, true)?,
            None if self.compare => cfg.response_wait = COMPARE_RESPONSE_WAIT,
            None => {}
        }
        cfg.only_syn = self.only_syn;
        cfg.no_wait = self.no_wait;
        cfg.send_ahead = match self.send_ahead {
            Some(n) => n,
            None if self.compare => 0,
            None => cfg.send_ahead,
        };
        cfg.session_buffer_limit = self.session_buffer_mib.max(1).saturating_mul(1 << 20);
        cfg.memory_limit = self.memory_mib.max(1).saturating_mul(1 << 20);
        // The comparison needs every byte of the test server's answers: a reply lost on its way
        // to intercept must be sent again, so none is acknowledged past a hole.
        cfg.in_order_acks = self.compare;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// `--{option} {value}` as a duration: a number of seconds, at least 0 (above 0 when `positive`),
/// that a `Duration` holds.
fn seconds(option: &'static str, value: f64, positive: bool) -> Result<Duration, CliError> {
    let bound = if positive { "> 0" } else { ">= 0" };
    match Duration::try_from_secs_f64(value) {
        Ok(d) if !(positive && d.is_zero()) => Ok(d),
        _ => Err(CliError::BadInterval(option, value, bound)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tcpcopy").chain(args.iter().copied()))
    }

    #[test]
    fn original_command_lines_work() {
        let cli = parse(&[
            "-x",
            "80-10.0.0.12:80,8080-10.0.0.12:8080",
            "-s",
            "10.0.0.13",
            "-c",
            "10.1.2.x",
            "-n",
            "3",
            "-r",
            "50",
            "-i",
            "eth1",
            "-C",
            "4",
            "-M",
            "1500",
            "-D",
            "1400",
            "-O",
            "-W",
            "-f",
            "2",
            "-g",
            "-t",
            "120",
        ])
        .unwrap();
        let cfg = cli.engine_config().unwrap();
        assert_eq!(cfg.mappings.len(), 2);
        assert_eq!(cfg.copies, 3);
        assert_eq!(cfg.percentage, 50);
        assert_eq!(cfg.client_addrs.len(), 254);
        assert_eq!(cfg.instance, Some(2));
        assert!(cfg.only_syn && cfg.no_wait && cfg.ramp);
        assert_eq!(
            cli.intercepts().unwrap(),
            vec!["10.0.0.13:36524".parse().unwrap()]
        );
        let cli = parse(&[
            "--iface",
            "eth1",
            "--target",
            "10.0.0.12:80",
            "--intercept",
            "10.0.0.13:4000,10.0.0.14",
        ])
        .unwrap();
        assert_eq!(cli.mappings().unwrap()[0].online_port, 80);
        assert_eq!(cli.intercepts().unwrap().len(), 2);
        assert_eq!(cli.engine_config().unwrap().session_buffer_limit, 64 << 20);
        let cli = parse(&[
            "-i",
            "eth1",
            "--target",
            "10.0.0.12:80",
            "--session-buffer-mib",
            "1024",
            "--memory-mib",
            "8192",
        ])
        .unwrap();
        let cfg = cli.engine_config().unwrap();
        assert_eq!(cfg.session_buffer_limit, 1 << 30);
        assert_eq!(cfg.memory_limit, 8 << 30);
    }

    #[test]
    fn every_option_of_the_original_parses() {
        // tcpcopy 1.3.0's getopt string, every letter (-h and -v print and exit).
        let cli = parse(&[
            "-x",
            "80-10.0.0.12:80",
            "-c",
            "10.1.2.x",
            "-i",
            "eth0",
            "-a",
            "2",
            "-I",
            "100",
            "-T",
            "2",
            "-F",
            "tcp",
            "-B",
            "32",
            "-n",
            "2",
            "-f",
            "1",
            "-m",
            "512",
            "-C",
            "3",
            "-p",
            "36524",
            "-r",
            "50",
            "-M",
            "1500",
            "-D",
            "1460",
            "-t",
            "60",
            "-k",
            "900",
            "-s",
            "10.0.0.13",
            "-l",
            "/tmp/log",
            "-P",
            "/tmp/pid",
            "-L",
            "-W",
            "-O",
            "-g",
            "-d",
        ])
        .unwrap();
        let cfg = cli.engine_config().unwrap();
        assert_eq!(cfg.memory_limit, 512 << 20, "-m is MB, as the original's");
        assert_eq!(cfg.keepalive(), Duration::from_mins(15));
        assert_eq!(cfg.idle_timeout, Duration::from_mins(1));
        assert_eq!(cli.ring_mib, 32, "-B is the capture buffer, MB");
        assert!(cli.lonely);
        let cli = parse(&["--target", "10.0.0.12:80", "-s", "10.0.0.13"]).unwrap();
        let cfg = cli.engine_config().unwrap();
        assert_eq!(cfg.keepalive(), cfg.idle_timeout, "-k defaults to -t");
        assert!(cli.iface.is_none(), "-i is optional");
        for (flag, exits) in [
            ("-h", clap::error::ErrorKind::DisplayHelp),
            ("-v", clap::error::ErrorKind::DisplayVersion),
        ] {
            assert_eq!(parse(&[flag]).unwrap_err().kind(), exits);
        }
        for (opt, why) in [
            ("-H", "-c ADDR rewrites every client address"),
            ("-o", "route to the target"),
            ("-S", "copies each selected frame whole"),
            ("-U", "allocated as they come"),
            ("-R", "measures its own RTT"),
        ] {
            let cli = parse(&["--target", "10.0.0.12:80", opt, "1"]).unwrap();
            let err = cli.engine_config().unwrap_err().to_string();
            assert!(
                err.starts_with(opt) && err.contains(why) && !err.contains('\n'),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let cli = parse(&["-i", "eth1"]).unwrap();
        assert!(matches!(cli.mappings(), Err(CliError::NoMapping)));
        let cli = parse(&["-i", "eth1", "-x", "80:10.0.0.1"]).unwrap();
        assert!(matches!(cli.mappings(), Err(CliError::Mapping(_))));
        let cli = parse(&["-i", "e", "--target", "1.2.3.4:5", "--stats-interval=-1"]).unwrap();
        assert!(cli.stats_interval().is_err());
        let cli = parse(&["-i", "e", "--target", "1.2.3.4:5", "-s", "nope"]).unwrap();
        assert!(matches!(cli.intercepts(), Err(CliError::BadIntercept(_))));
        let cli = parse(&["-i", "e", "--target", "1.2.3.4:5", "-r", "0"]).unwrap();
        assert!(matches!(cli.engine_config(), Err(CliError::Config(_))));
        let cli = parse(&["-i", "e", "--target", "1.2.3.4:5", "-c", "1.2.x"]).unwrap();
        assert!(cli.engine_config().is_err());
        assert!(
            parse(&["-i", "e", "--target", "1.2.3.4:5", "-r", "300"]).is_err(),
            "u8 range"
        );
        let cli = parse(&["-i", "e", "--target", "1.2.3.4:5", "--response-wait", "0"]).unwrap();
        let e = cli.engine_config().unwrap_err();
        assert_eq!(
            e.to_string(),
            "--response-wait 0: must be a number of seconds > 0"
        );
    }

    #[test]
    fn compare_waits_longer_for_answers() {
        let base = ["-i", "e", "--target", "1.2.3.4:5"];
        let wait = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            parse(&args).unwrap().engine_config().unwrap().response_wait
        };
        assert_eq!(wait(&[]), Duration::from_millis(500));
        assert_eq!(wait(&["--compare"]), COMPARE_RESPONSE_WAIT);
        assert_eq!(
            wait(&["--compare", "--response-wait", "2.5"]),
            Duration::from_millis(2500)
        );
        assert_eq!(
            wait(&["--response-wait", "0.1"]),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn send_ahead_defaults_to_four_and_to_zero_with_compare() {
        let base = ["-i", "e", "--target", "1.2.3.4:5"];
        let ahead = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            parse(&args).unwrap().engine_config().unwrap().send_ahead
        };
        assert_eq!(ahead(&[]), 4);
        assert_eq!(ahead(&["--compare"]), 0);
        assert_eq!(ahead(&["--compare", "--send-ahead", "2"]), 2);
        assert_eq!(ahead(&["--send-ahead", "0"]), 0);
        assert_eq!(ahead(&["--send-ahead", "64"]), 64);
        for bad in ["65", "300", "x"] {
            let args: Vec<&str> = base.iter().copied().chain(["--send-ahead", bad]).collect();
            let e = parse(&args).unwrap_err().to_string();
            assert!(
                e.contains("a number of requests from 0 to 64"),
                "--send-ahead {bad}: {e}"
            );
        }
    }
}
