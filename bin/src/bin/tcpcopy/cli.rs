//! Command line of `tcpcopy`. Short options are the original tcpcopy's; long ones stand beside them.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::Parser;
use tcpcopy_engine::{Config, Mapping, MappingError, parse_client_addrs};
use tcpcopy_proto::DEFAULT_PORT;

use crate::send::SendMode;

#[derive(Debug, Parser)]
#[expect(clippy::struct_excessive_bools, reason = "command-line flags")]
#[command(
    name = "tcpcopy",
    version,
    about = "Copies live TCP requests arriving at this host to a test server",
    long_about = "Copies live TCP requests arriving at this host to a test server.\n\n\
An XDP program on the capture interface selects the requests to the mapped ports in the kernel and \
copies them to tcpcopy; the live packets always go on to the online service untouched (XDP_PASS). \
tcpcopy replays each session to the target; intercept, on the host the test server routes its \
replies to, reports the replies back over the control channel."
)]
pub struct Cli {
    /// Capture interface on the online host (the one the requests arrive on), or a capture file
    /// (pcap or pcapng) to replay offline.
    #[arg(
        short = 'i',
        long = "iface",
        value_name = "IFACE|FILE",
        required_unless_present = "pcap"
    )]
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

    /// Bytes all sessions together may buffer before new data drops sessions (`memory_cap`), MiB.
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    pub memory_mib: usize,

    /// Worker threads, each pinned to a core and owning the connections whose address/port hash
    /// falls to it; default: one per receive queue of the capture interface, at most one per
    /// core, at most 8.
    #[arg(long, value_name = "N")]
    pub workers: Option<u16>,

    /// Attach XDP in generic (SKB) mode instead of trying driver mode first.
    #[arg(long)]
    pub skb_mode: bool,

    /// Size of the kernel-to-userspace frame ring, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 16)]
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
    #[error("--stats-interval {0}: must be a number of seconds >= 0")]
    BadInterval(f64),
    #[error("-s {0:?}: expected ip[:port][,...]")]
    BadIntercept(String),
    #[error(transparent)]
    Config(#[from] tcpcopy_engine::ConfigError),
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

    /// The stats interval, `None` for "only at exit".
    pub fn stats_interval(&self) -> Result<Option<Duration>, CliError> {
        if !self.stats_interval.is_finite() || self.stats_interval < 0.0 {
            return Err(CliError::BadInterval(self.stats_interval));
        }
        Ok((self.stats_interval > 0.0).then(|| Duration::from_secs_f64(self.stats_interval)))
    }

    /// The engine's configuration.
    pub fn engine_config(&self) -> Result<Config, CliError> {
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
        cfg.mtu = self.mtu.unwrap_or_else(|| path_mtu(&targets));
        cfg.mss = self.mss;
        cfg.only_syn = self.only_syn;
        cfg.no_wait = self.no_wait;
        cfg.session_buffer_limit = self.session_buffer_mib.max(1).saturating_mul(1 << 20);
        cfg.memory_limit = self.memory_mib.max(1).saturating_mul(1 << 20);
        cfg.validate()?;
        Ok(cfg)
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
    fn bad_values_are_clear_errors() {
        let cli = parse(&["-i", "eth1"]).unwrap();
        assert!(matches!(cli.mappings(), Err(CliError::NoMapping)));
        let cli = parse(&["-i", "eth1", "-x", "80:10.0.0.1"]).unwrap();
        assert!(matches!(cli.mappings(), Err(CliError::Mapping(_))));
        assert!(parse(&["-x", "80-10.0.0.1:80"]).is_err(), "-i is required");
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
    }
}
