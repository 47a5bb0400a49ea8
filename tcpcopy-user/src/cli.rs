//! Command line of `tcpcopy`. Short options are the original tcpcopy's; long ones stand beside them.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

use tcpcopy_engine::{Mapping, MappingError};

#[derive(Debug, Parser)]
#[command(
    name = "tcpcopy",
    version,
    about = "Copies live TCP requests arriving at this host to a test server",
    long_about = "Copies live TCP requests arriving at this host to a test server.\n\n\
An XDP program on the capture interface selects the requests to the mapped ports in the kernel; \
the live packets always go on to the online service untouched (XDP_PASS)."
)]
pub struct Cli {
    /// Capture interface on the online host (the one the requests arrive on).
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    pub iface: String,

    /// Port mapping(s): [onlineIP:]onlinePort-targetIP:targetPort[,...]; may be repeated.
    #[arg(short = 'x', long = "map", value_name = "MAPPING")]
    pub map: Vec<String>,

    /// Short form of -x: replay requests for the target's port (or --online-port) to IP:PORT.
    #[arg(long, value_name = "IP:PORT")]
    pub target: Option<SocketAddr>,

    /// With --target: the online service's port, when it differs from the target's.
    #[arg(long, value_name = "PORT", requires = "target")]
    pub online_port: Option<u16>,

    /// Attach XDP in generic (SKB) mode instead of trying driver mode first.
    #[arg(long)]
    pub skb_mode: bool,

    /// Print the capture counters every SECS seconds (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub stats_interval: f64,
}

impl Cli {
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

    /// The stats interval, `None` for "only at exit".
    pub fn stats_interval(&self) -> Result<Option<Duration>, CliError> {
        if !self.stats_interval.is_finite() || self.stats_interval < 0.0 {
            return Err(CliError::BadInterval(self.stats_interval));
        }
        Ok((self.stats_interval > 0.0).then(|| Duration::from_secs_f64(self.stats_interval)))
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
    #[error("--stats-interval {0}: must be a number of seconds >= 0")]
    BadInterval(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tcpcopy").chain(args.iter().copied()))
    }

    #[test]
    fn original_syntax_and_long_options() {
        let cli = parse(&["-x", "80-10.0.0.12:80,8080-10.0.0.12:8080", "-i", "eth1"]).unwrap();
        assert_eq!(cli.mappings().unwrap().len(), 2);
        let cli = parse(&["--iface", "eth1", "--target", "10.0.0.12:80"]).unwrap();
        assert_eq!(cli.mappings().unwrap()[0].online_port, 80);
    }

    #[test]
    fn missing_mapping_and_bad_values_are_errors() {
        let cli = parse(&["-i", "eth1"]).unwrap();
        assert!(matches!(cli.mappings(), Err(CliError::NoMapping)));
        let cli = parse(&["-i", "eth1", "-x", "80:10.0.0.1"]).unwrap();
        assert!(matches!(cli.mappings(), Err(CliError::Mapping(_))));
        assert!(parse(&["-x", "80-10.0.0.1:80"]).is_err(), "-i is required");
        let cli = parse(&["-i", "e", "--target", "1.2.3.4:5", "--stats-interval=-1"]).unwrap();
        assert!(cli.stats_interval().is_err());
    }
}
