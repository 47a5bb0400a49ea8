//! `-x [onlineIP:]onlinePort-targetIP:targetPort[,...]`: which requests are copied and where to.

use std::net::{IpAddr, SocketAddr};

/// One `-x` rule: requests to `online_port` (on `online_ip`, or any address) are replayed to
/// `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub online_ip: Option<IpAddr>,
    pub online_port: u16,
    pub target: SocketAddr,
}

/// A `-x` or `--target` value that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "bad mapping {text:?}: {reason} (expected [onlineIP:]onlinePort-targetIP:targetPort, e.g. 80-10.0.0.12:8080)"
)]
pub struct MappingError {
    text: String,
    reason: &'static str,
}

impl Mapping {
    /// Parses one rule, as `-x` takes it (several rules are separated by commas).
    pub fn parse(text: &str) -> Result<Self, MappingError> {
        let err = |reason| MappingError {
            text: text.into(),
            reason,
        };
        if text.contains('@') {
            return Err(err(
                "@MAC parts (the original's pcap-send build) are not needed: replayed packets leave through the route to the target; drop them",
            ));
        }
        let (online, target) = text
            .split_once('-')
            .ok_or_else(|| err("no '-' between the online and target sides"))?;
        let target: SocketAddr = target
            .trim()
            .parse()
            .map_err(|_| err("target is not ip:port"))?;
        let online = online.trim();
        let (online_ip, port) = if let Ok(port) = online.parse::<u16>() {
            (None, port)
        } else {
            let addr: SocketAddr = online
                .parse()
                .map_err(|_| err("online side is not port or ip:port"))?;
            (Some(addr.ip()), addr.port())
        };
        if port == 0 || target.port() == 0 {
            return Err(err("port 0"));
        }
        Ok(Self {
            online_ip,
            online_port: port,
            target,
        })
    }

    /// Parses a comma-separated list of rules.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, MappingError> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Self::parse)
            .collect()
    }

    /// `--target ip:port`: copy requests to the target's port (or `online_port`) to the target.
    pub fn from_target(target: SocketAddr, online_port: Option<u16>) -> Self {
        Self {
            online_ip: None,
            online_port: online_port.unwrap_or(target.port()),
            target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_only() {
        let m = Mapping::parse("80-10.0.0.12:8080").unwrap();
        assert_eq!(m.online_ip, None);
        assert_eq!(m.online_port, 80);
        assert_eq!(m.target, "10.0.0.12:8080".parse().unwrap());
    }

    #[test]
    fn with_online_ip_and_ipv6() {
        let m = Mapping::parse("192.0.2.1:80-[2001:db8::2]:81").unwrap();
        assert_eq!(m.online_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(m.target, "[2001:db8::2]:81".parse().unwrap());
        let m = Mapping::parse("[2001:db8::1]:443-[2001:db8::2]:443").unwrap();
        assert_eq!(m.online_ip, Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn list() {
        let v = Mapping::parse_list("80-10.0.0.1:80,443-10.0.0.1:8443").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].online_port, 443);
    }

    #[test]
    fn errors_name_the_problem() {
        for bad in [
            "80",
            "80-10.0.0.1",
            "x-10.0.0.1:80",
            "0-10.0.0.1:80",
            "80-10.0.0.1:99999",
            "70000-1.2.3.4:5",
            "80@00:13:21:B2:5E:42-121.55.111.148:18080@00:0F:1F:03:F2:E6",
        ] {
            let e = Mapping::parse(bad).unwrap_err();
            assert!(
                e.to_string().contains("expected [onlineIP:]onlinePort"),
                "{e}"
            );
        }
        let e = Mapping::parse("80@00:13:21:B2:5E:42-10.0.0.1:80").unwrap_err();
        assert!(e.to_string().contains("@MAC parts"), "{e}");
    }

    #[test]
    fn target_short_form() {
        let m = Mapping::from_target("10.0.0.12:80".parse().unwrap(), None);
        assert_eq!(m.online_port, 80);
        let m = Mapping::from_target("10.0.0.12:8080".parse().unwrap(), Some(80));
        assert_eq!(m.online_port, 80);
    }
}
