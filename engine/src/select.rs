//! Which sessions are replayed (`-r`, `-g`) and the client address/port each copy uses (`-n`,
//! `-c`, `-f`).

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use crate::config::MAX_INSTANCES;

/// FNV-1a over an address, a port and a salt: fixed, so selections repeat from run to run.
pub fn hash(ip: IpAddr, port: u16, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    match ip {
        IpAddr::V4(a) => a.octets().into_iter().for_each(&mut eat),
        IpAddr::V6(a) => a.octets().into_iter().for_each(&mut eat),
    }
    port.to_be_bytes().into_iter().for_each(&mut eat);
    salt.to_be_bytes().into_iter().for_each(&mut eat);
    h
}

/// `-r`: whether the session of `client` is among `percentage` percent (whole sessions, the same
/// answer every time for the same client ip:port).
pub fn selected(client: SocketAddr, percentage: u8) -> bool {
    hash(client.ip(), client.port(), 0) % 100 < u64::from(percentage)
}

/// `-g`: the percentage in force `elapsed` after the start: 1% at first, +1% per second, up to
/// `percentage`.
pub fn ramped(percentage: u8, elapsed: Duration) -> u8 {
    let grown = 1 + elapsed.as_secs().min(100);
    percentage.min(u8::try_from(grown).unwrap_or(100))
}

/// Ports above this are handed out to copies (below it only a session's own port is kept).
const FIRST_PORT: u32 = 1024;
/// Ports `FIRST_PORT..=65535`.
const PORT_SPACE: u32 = 65536 - FIRST_PORT;
/// Step between copies of one session in the port space; coprime to its size, so the copies'
/// preferred ports are all different.
const COPY_STRIDE: u32 = 331;
/// Candidate ports tried on one address before moving to the next.
pub const PROBES_PER_ADDR: u32 = 1024;

/// Generates the candidate source addresses for a copy, most preferred first; the engine takes the
/// first one not in use towards the same target. Candidates of different `-f` instances never
/// overlap: each instance only uses ports `p` with `p % 16 == instance`.
#[derive(Clone, Debug)]
pub struct TupleSource {
    addrs: Vec<IpAddr>,
    instance: Option<u8>,
}

impl TupleSource {
    pub fn new(addrs: Vec<IpAddr>, instance: Option<u8>) -> Self {
        Self { addrs, instance }
    }

    fn space(&self) -> u32 {
        match self.instance {
            Some(_) => PORT_SPACE / u32::from(MAX_INSTANCES),
            None => PORT_SPACE,
        }
    }

    fn port_at(&self, index: u32) -> u16 {
        let port = match self.instance {
            Some(f) => FIRST_PORT + index * u32::from(MAX_INSTANCES) + u32::from(f),
            None => FIRST_PORT + index,
        };
        u16::try_from(port).unwrap_or(u16::MAX)
    }

    /// Candidate sources for copy `copy` (0-based) of the session of `client` towards `target`.
    pub fn candidates(
        &self,
        client: SocketAddr,
        copy: u16,
        target: SocketAddr,
    ) -> impl Iterator<Item = SocketAddr> + '_ {
        let same_family = |ip: &IpAddr| ip.is_ipv4() == target.is_ipv4();
        let own: Vec<IpAddr> = if self.addrs.is_empty() {
            vec![client.ip()].into_iter().filter(same_family).collect()
        } else {
            self.addrs.iter().copied().filter(same_family).collect()
        };
        let h = hash(client.ip(), client.port(), u64::from(copy) + 1);
        let first_addr = usize::try_from(h % own.len().max(1) as u64).unwrap_or(0);
        // Copy 0 of a single instance keeps the captured port (and address, without -c) first.
        let keep = (copy == 0 && self.instance.is_none()).then(|| {
            SocketAddr::new(
                own.get(first_addr).copied().unwrap_or(client.ip()),
                client.port(),
            )
        });
        let space = self.space();
        let base = (u32::from(client.port()) + u32::from(copy) * COPY_STRIDE) % space;
        let n = own.len();
        let probes = PROBES_PER_ADDR.min(space);
        keep.into_iter()
            .filter(move |_| n > 0)
            .chain((0..n).flat_map(move |a| {
                let ip = own[(first_addr + a) % n];
                (0..probes).map(move |k| SocketAddr::new(ip, self.port_at((base + k) % space)))
            }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn target() -> SocketAddr {
        "10.0.0.12:80".parse().unwrap()
    }

    /// Takes the first free candidate, as the engine does.
    fn allocate(
        src: &TupleSource,
        used: &mut HashSet<SocketAddr>,
        client: SocketAddr,
        copy: u16,
    ) -> Option<SocketAddr> {
        let pick = src
            .candidates(client, copy, target())
            .find(|c| !used.contains(c))?;
        used.insert(pick);
        Some(pick)
    }

    #[test]
    fn copy_zero_keeps_the_client() {
        let src = TupleSource::new(vec![], None);
        let client: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        assert_eq!(src.candidates(client, 0, target()).next(), Some(client));
    }

    #[test]
    fn instances_use_disjoint_ports() {
        let client: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        for f in 0..MAX_INSTANCES {
            let src = TupleSource::new(vec![], Some(f));
            assert!(
                src.candidates(client, 3, target())
                    .take(2000)
                    .all(|c| c.port() % 16 == u16::from(f) && c.port() >= 1024)
            );
        }
    }

    #[test]
    fn selection_is_deterministic_and_proportional() {
        let clients: Vec<SocketAddr> = (0..10_000u16)
            .map(|p| SocketAddr::new("192.0.2.9".parse().unwrap(), 10_000 + p))
            .collect();
        let picked = clients.iter().filter(|c| selected(**c, 30)).count();
        assert!((2_700..=3_300).contains(&picked), "{picked}");
        assert!(clients.iter().all(|c| selected(*c, 30) == selected(*c, 30)));
        assert!(clients.iter().all(|c| selected(*c, 100)));
    }

    #[test]
    fn ramp_grows_one_percent_a_second() {
        assert_eq!(ramped(100, Duration::ZERO), 1);
        assert_eq!(ramped(100, Duration::from_secs(49)), 50);
        assert_eq!(ramped(30, Duration::from_secs(99)), 30);
        assert_eq!(ramped(100, Duration::from_secs(10_000)), 100);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Every copy of every concurrent session gets its own 4-tuple, for hundreds of copies and
        /// several instances sharing a target.
        #[test]
        fn copies_get_unique_tuples(
            ports in proptest::collection::vec(1u16.., 1..24),
            copies in 1u16..300,
            instances in 1u8..4,
            with_c in any::<bool>(),
        ) {
            let addrs: Vec<IpAddr> = if with_c { (1..=20).map(|d| IpAddr::from([192, 0, 2, d])).collect() } else { vec![] };
            let mut used = HashSet::new();
            let mut got = 0usize;
            for f in 0..instances {
                let src = TupleSource::new(addrs.clone(), (instances > 1).then_some(f));
                for p in &ports {
                    let client = SocketAddr::new("198.51.100.10".parse().unwrap(), *p);
                    for copy in 0..copies {
                        if allocate(&src, &mut used, client, copy).is_some() {
                            got += 1;
                        }
                    }
                }
            }
            // `used` is a set: every allocation was unique. With -c there is room for all.
            prop_assert_eq!(used.len(), got);
            if with_c {
                prop_assert_eq!(got, ports.len() * usize::from(copies) * usize::from(instances));
            }
        }
    }
}
