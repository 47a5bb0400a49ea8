//! What the engine replays and how: `-x`, `-c`, `-n`, `-r`, `-g`, `-f`, `-D`, `-O`, `-W`, timeouts (`-t`, `-k`) and limits.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use crate::mapping::Mapping;

/// How many tcpcopy instances can share one target with `-f` (each gets a disjoint port set).
pub const MAX_INSTANCES: u8 = 16;

/// The most requests `Config::send_ahead` may send before the answer to the one before them.
pub const MAX_SEND_AHEAD: u8 = 64;

/// Shares the client port space of one instance divides into, one per worker engine (with 16
/// instances, each share still has 252 ports per client address). How many workers a binary
/// runs is bounded by the kernel programs' rings (`tcpcopy_abi::maps::MAX_WORKERS`), which must
/// not exceed this.
pub const MAX_SHARES: u16 = 16;

/// One worker's share of the tuple space when several workers (threads, each with its own engine)
/// replay side by side: worker `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerShare {
    pub index: u16,
    pub count: u16,
}

impl WorkerShare {
    /// The only worker.
    pub const ALONE: Self = Self { index: 0, count: 1 };
}

/// The engine's configuration. `Config::new(mappings)` gives the original tcpcopy's defaults.
#[derive(Clone, Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent switches, each set by its own command-line option"
)]
pub struct Config {
    /// `-x`: which captured requests are replayed, and to which target.
    pub mappings: Vec<Mapping>,
    /// `-c`: addresses replayed clients are rewritten to (empty: keep the captured address).
    pub client_addrs: Vec<IpAddr>,
    /// `-n`: copies of every session (1 = just the session).
    pub copies: u16,
    /// `-r`: percentage of sessions replayed (whole sessions, by a hash of client ip:port).
    pub percentage: u8,
    /// `-g`: ramp from 1% to `percentage` at +1% per second.
    pub ramp: bool,
    /// `-f`: this instance's number when several tcpcopy instances replay to one target.
    pub instance: Option<u8>,
    /// This engine's worker and how many workers replay side by side (each owns a disjoint share
    /// of the client ports it hands out).
    pub worker: WorkerShare,
    /// `-D`: MSS in faked SYNs (sessions captured mid-stream).
    pub mss: u16,
    /// `-M`: MTU towards the test server; no packet the engine writes is larger.
    pub mtu: u16,
    /// `-O`: only replay sessions whose SYN was captured.
    pub only_syn: bool,
    /// `-W`: send requests without waiting for the previous response.
    pub no_wait: bool,
    /// `--send-ahead`: while the next request waits for the answer before it, up to this many
    /// further captured requests may go out on the keep-alive connection (pipelined), once the
    /// test server has answered a request on that connection; never the client's close. 0: each
    /// request waits for the previous answer (the original pacing).
    pub send_ahead: u8,
    /// `-t`: a session with no captured or reply packet for this long ends.
    pub idle_timeout: Duration,
    /// `-k`: a session with nothing outstanding (every captured byte acknowledged by the test
    /// server) and no packet for this long ends, completed. `None`: `idle_timeout`.
    pub keepalive_timeout: Option<Duration>,
    /// A SYN unanswered this long ends the session (once `restart_window` is over).
    pub handshake_timeout: Duration,
    /// While the test server restarts: a SYN refused (RST) or unanswered is tried again, with
    /// backoff, for this long from the session's start (or its rebuild); zero tries once.
    pub restart_window: Duration,
    /// Bytes missing from the capture are waited for this long.
    pub gap_timeout: Duration,
    /// A request is held at most this long after the previous one was acknowledged while the
    /// test server's response is still short of what the online server sent.
    pub response_wait: Duration,
    /// Bounds of the retransmission timeout towards the test server.
    pub rto_min: Duration,
    pub rto_max: Duration,
    /// Retransmissions of one segment before the session is given up.
    pub max_retransmits: u8,
    /// Bytes one session may buffer (captured, not yet acknowledged by the test server).
    pub session_buffer_limit: usize,
    /// Bytes all sessions together may buffer.
    pub memory_limit: usize,
    /// Acknowledge the test server's bytes only as far as they arrived in order (a segment
    /// beyond a hole is remembered, up to `OUT_OF_ORDER_MAX` ranges, and acknowledged once the
    /// hole is filled), so a reply lost before intercept is sent again. `tcpcopy --compare`
    /// needs every byte of the test server's answers; otherwise (the default) the latest
    /// reply's end is acknowledged, holes and all: the replay needs no answer bytes.
    pub in_order_acks: bool,
}

impl Config {
    pub fn new(mappings: Vec<Mapping>) -> Self {
        Self {
            mappings,
            client_addrs: Vec::new(),
            copies: 1,
            percentage: 100,
            ramp: false,
            instance: None,
            worker: WorkerShare::ALONE,
            mss: 1460,
            mtu: 1500,
            only_syn: false,
            no_wait: false,
            send_ahead: 4,
            idle_timeout: Duration::from_mins(10),
            keepalive_timeout: None,
            handshake_timeout: Duration::from_secs(3),
            restart_window: Duration::from_secs(30),
            gap_timeout: Duration::from_secs(2),
            response_wait: Duration::from_millis(500),
            rto_min: Duration::from_millis(100),
            rto_max: Duration::from_secs(4),
            max_retransmits: 12,
            session_buffer_limit: 64 << 20,
            memory_limit: 4 << 30,
            in_order_acks: false,
        }
    }

    /// The idle timeout of a session with nothing outstanding (`-k`, else `-t`).
    pub fn keepalive(&self) -> Duration {
        self.keepalive_timeout.unwrap_or(self.idle_timeout)
    }

    /// Checks values that cannot work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mappings.is_empty() {
            return Err(ConfigError::NoMapping);
        }
        if self.copies == 0 {
            return Err(ConfigError::Copies);
        }
        if self.percentage == 0 || self.percentage > 100 {
            return Err(ConfigError::Percentage(self.percentage));
        }
        if let Some(i) = self.instance
            && i >= MAX_INSTANCES
        {
            return Err(ConfigError::Instance(i));
        }
        if self.worker.count == 0
            || self.worker.count > MAX_SHARES
            || self.worker.index >= self.worker.count
        {
            return Err(ConfigError::Workers(self.worker.count));
        }
        if self.mss < 64 {
            return Err(ConfigError::Mss(self.mss));
        }
        if self.mtu < 576 {
            return Err(ConfigError::Mtu(self.mtu));
        }
        if self.send_ahead > MAX_SEND_AHEAD {
            return Err(ConfigError::SendAhead(self.send_ahead));
        }
        for m in &self.mappings {
            let family_ok = self.client_addrs.is_empty()
                || self
                    .client_addrs
                    .iter()
                    .any(|a| a.is_ipv4() == m.target.is_ipv4());
            if !family_ok {
                return Err(ConfigError::Family(m.target.ip()));
            }
        }
        Ok(())
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no mapping: give -x [onlineIP:]onlinePort-targetIP:targetPort")]
    NoMapping,
    #[error("-n must be at least 1")]
    Copies,
    #[error("-r {0}: the percentage must be 1..=100")]
    Percentage(u8),
    #[error("-f {0}: the instance number must be below {MAX_INSTANCES}")]
    Instance(u8),
    #[error("{0} workers: 1 to {MAX_SHARES} (each owns a share of the client ports)")]
    Workers(u16),
    #[error("-D {0}: MSS too small")]
    Mss(u16),
    #[error("-M {0}: MTU below 576")]
    Mtu(u16),
    #[error("--send-ahead {0}: at most {MAX_SEND_AHEAD} requests")]
    SendAhead(u8),
    #[error("-c gives no address of the same family as target {0}")]
    Family(IpAddr),
    #[error("-c {0:?}: {1}")]
    ClientAddr(String, &'static str),
}

/// Parses `-c`: comma-separated addresses; `a.b.c.x` means `a.b.c.1` to `a.b.c.254`, leaving out
/// any of `exclude` (the targets, so a replayed client is never the test server itself).
pub fn parse_client_addrs(text: &str, exclude: &[IpAddr]) -> Result<Vec<IpAddr>, ConfigError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let err = |why| ConfigError::ClientAddr(part.to_owned(), why);
        if let Some(prefix) = part.strip_suffix(".x") {
            let octets: Vec<u8> = prefix
                .split('.')
                .map(|o| o.parse::<u8>().map_err(|_| err("expected a.b.c.x")))
                .collect::<Result<_, _>>()?;
            let [a, b, c] = octets[..] else {
                return Err(err("expected a.b.c.x"));
            };
            out.extend(
                (1..=254)
                    .map(|d| IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
                    .filter(|ip| !exclude.contains(ip)),
            );
        } else {
            let ip: IpAddr = part.parse().map_err(|_| err("not an IP address"))?;
            if !exclude.contains(&ip) {
                out.push(ip);
            }
        }
    }
    if out.is_empty() {
        return Err(ConfigError::ClientAddr(
            text.to_owned(),
            "no usable address",
        ));
    }
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_ranges_skip_targets() {
        let target: IpAddr = "10.1.2.12".parse().unwrap();
        let v = parse_client_addrs("10.1.2.x", &[target]).unwrap();
        assert_eq!(v.len(), 253);
        assert!(!v.contains(&target));
        assert_eq!(v[0], "10.1.2.1".parse::<IpAddr>().unwrap());
        let v = parse_client_addrs("192.0.2.7, 2001:db8::7", &[]).unwrap();
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn bad_client_addrs() {
        assert!(parse_client_addrs("10.1.x", &[]).is_err());
        assert!(parse_client_addrs("nope", &[]).is_err());
        assert!(parse_client_addrs("10.0.0.1", &["10.0.0.1".parse().unwrap()]).is_err());
    }

    #[test]
    fn validation() {
        let m = Mapping::parse("80-10.0.0.1:80").unwrap();
        let mut c = Config::new(vec![m]);
        assert!(c.validate().is_ok());
        c.percentage = 0;
        assert_eq!(c.validate(), Err(ConfigError::Percentage(0)));
        c.percentage = 50;
        c.client_addrs = vec!["2001:db8::1".parse().unwrap()];
        assert!(matches!(c.validate(), Err(ConfigError::Family(_))));
        c.client_addrs.clear();
        c.instance = Some(16);
        assert_eq!(c.validate(), Err(ConfigError::Instance(16)));
    }
}
