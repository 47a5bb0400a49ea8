//! Which sessions are replayed (`-r`, `-g`) and the client address/port each copy uses (`-n`,
//! `-c`, `-f`).

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use crate::config::{MAX_INSTANCES, WorkerShare};

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
/// first one not in use towards the same target. The ports handed out are split into disjoint
/// slots so that engines that cannot see each other never pick the same tuple: each `-f`
/// instance only uses ports `p` with `p % 16 == instance`, and within it each worker its own
/// share (`(p - 1024) / 16 % workers == worker` with instances, `(p - 1024) % workers == worker`
/// without).
#[derive(Clone, Debug)]
pub struct TupleSource {
    addrs: Vec<IpAddr>,
    instance: Option<u8>,
    worker: WorkerShare,
    /// Every replayed tuple is a captured one (no `-c`, one copy): captured tuples are unique
    /// among live connections and a connection's packets all reach one worker, so copy 0 keeps
    /// its captured port whichever worker's share that port is in.
    originals_only: bool,
}

impl TupleSource {
    pub fn new(addrs: Vec<IpAddr>, instance: Option<u8>) -> Self {
        Self::for_worker(addrs, instance, WorkerShare::ALONE, 1)
    }

    /// The tuple source of one worker, for sessions of `copies` copies each.
    pub fn for_worker(
        addrs: Vec<IpAddr>,
        instance: Option<u8>,
        worker: WorkerShare,
        copies: u16,
    ) -> Self {
        let originals_only = addrs.is_empty() && copies == 1;
        Self {
            addrs,
            instance,
            worker: WorkerShare {
                count: worker.count.max(1),
                index: worker.index % worker.count.max(1),
            },
            originals_only,
        }
    }

    /// Distance between two ports of this source, and the first one's offset above `FIRST_PORT`.
    fn slots(&self) -> (u32, u32) {
        let (stride, offset) = match self.instance {
            Some(f) => (u32::from(MAX_INSTANCES), u32::from(f)),
            None => (1, 0),
        };
        let workers = u32::from(self.worker.count);
        (
            stride * workers,
            offset + stride * u32::from(self.worker.index),
        )
    }

    fn space(&self) -> u32 {
        PORT_SPACE / self.slots().0
    }

    fn port_at(&self, index: u32) -> u16 {
        let (stride, offset) = self.slots();
        u16::try_from(FIRST_PORT + index * stride + offset).unwrap_or(u16::MAX)
    }

    /// Whether `port` is one this source hands out.
    fn owns(&self, port: u16) -> bool {
        let (stride, offset) = self.slots();
        u32::from(port) >= FIRST_PORT && (u32::from(port) - FIRST_PORT) % stride == offset
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
        let first_addr = address_index(client.ip(), copy, own.len());
        // Copy 0 of a single instance keeps the captured port (and address, without -c) first,
        // unless another worker might hand that port out.
        let keep_port = self.instance.is_none()
            && (self.worker.count == 1 || self.originals_only || self.owns(client.port()));
        let keep = (copy == 0 && keep_port).then(|| {
            SocketAddr::new(
                own.get(first_addr).copied().unwrap_or(client.ip()),
                client.port(),
            )
        });
        let space = self.space();
        let base = (u32::from(client.port()) + u32::from(copy) * COPY_STRIDE) % space;
        let n = own.len();
        // The client's own address is tried on every port of this source's share before another
        // is taken (so a client stays on it until all of those are in use); the others on
        // `PROBES_PER_ADDR` ports each.
        let probes = move |a: usize| {
            if a == 0 {
                space
            } else {
                PROBES_PER_ADDR.min(space)
            }
        };
        keep.into_iter()
            .filter(move |_| n > 0)
            .chain((0..n).flat_map(move |a| {
                let ip = own[(first_addr + a) % n];
                (0..probes(a)).map(move |k| SocketAddr::new(ip, self.port_at((base + k) % space)))
            }))
    }
}

/// `-c`: the index, among `n` rewrite addresses, of the one copy `copy` of every session from
/// client address `ip` takes first. It depends on the address and the copy only (not the port),
/// through the fixed FNV-1a hash: every connection of a client, in every run, gets the same
/// address for the same copy; each copy is placed apart (the original re-hashes per copy too).
pub fn address_index(ip: IpAddr, copy: u16, n: usize) -> usize {
    let h = hash(ip, 0, u64::from(copy) + 1);
    usize::try_from(h % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
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
    fn workers_keep_captured_ports_only_where_no_other_worker_hands_them_out() {
        let two = |index| WorkerShare { index, count: 2 };
        let c: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap()];
        let even: SocketAddr = "198.51.100.10:40000".parse().unwrap();
        let odd: SocketAddr = "198.51.100.10:40001".parse().unwrap();
        // One copy, no -c: every replayed tuple is a captured one, kept by whichever worker.
        let plain = TupleSource::for_worker(vec![], None, two(1), 1);
        assert_eq!(plain.candidates(even, 0, target()).next(), Some(even));
        // With -c or -n, worker 1 hands out odd offsets above 1024 only (40001 - 1024 is odd).
        for src in [
            TupleSource::for_worker(c.clone(), None, two(1), 1),
            TupleSource::for_worker(vec![], None, two(1), 3),
        ] {
            assert_eq!(
                src.candidates(odd, 0, target()).next().unwrap().port(),
                40001
            );
            assert_ne!(
                src.candidates(even, 0, target()).next().unwrap().port(),
                40000
            );
            assert!(
                src.candidates(even, 2, target())
                    .take(3000)
                    .all(|t| (t.port() - 1024) % 2 == 1)
            );
        }
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
        // The same clients are picked on every run and every host: FNV-1a (computed apart, with
        // Python) of 192.0.2.9, port 10000 and salt 0 is 0xe072_98a4_63fa_d263, 87 modulo 100;
        // of ports 10000..10016, those at 1, 24, 21 and 28 modulo 100 are below 30.
        assert_eq!(
            hash("192.0.2.9".parse().unwrap(), 10_000, 0),
            0xe072_98a4_63fa_d263
        );
        let picked_ports: Vec<u16> = clients[..16]
            .iter()
            .filter(|c| selected(**c, 30))
            .map(SocketAddr::port)
            .collect();
        assert_eq!(picked_ports, [10_002, 10_005, 10_010, 10_013]);
        assert!(clients.iter().all(|c| selected(*c, 100)));
    }

    #[test]
    fn ramp_grows_one_percent_a_second() {
        assert_eq!(ramped(100, Duration::ZERO), 1);
        assert_eq!(ramped(100, Duration::from_secs(49)), 50);
        assert_eq!(ramped(30, Duration::from_secs(99)), 30);
        assert_eq!(ramped(100, Duration::from_secs(10_000)), 100);
    }

    fn x_range() -> Vec<IpAddr> {
        (1..=254).map(|d| IpAddr::from([192, 0, 2, d])).collect()
    }

    /// The address a session's copy would take with nothing else in use.
    fn first_addr(src: &TupleSource, client: SocketAddr, copy: u16) -> IpAddr {
        src.candidates(client, copy, target()).next().unwrap().ip()
    }

    #[test]
    fn a_client_address_keeps_one_rewrite_address_across_connections_and_runs() {
        let client_ip: IpAddr = "198.51.100.10".parse().unwrap();
        // Fixed, so the same on every run and every host: FNV-1a (computed apart, with Python)
        // of 198.51.100.10, port 0 and salt 1 is 0x7d44_134e_ff69_673f, 45 modulo 254: the
        // 46th address of 192.0.2.x; copies 1 and 2 (salts 2, 3) take the 5th and the 218th.
        assert_eq!(hash(client_ip, 0, 1), 0x7d44_134e_ff69_673f);
        let expected: [IpAddr; 3] = [
            "192.0.2.46".parse().unwrap(),
            "192.0.2.5".parse().unwrap(),
            "192.0.2.218".parse().unwrap(),
        ];
        for run in 0..2u16 {
            // A new source each run, and any worker of any instance.
            let src = TupleSource::for_worker(
                x_range(),
                (run == 1).then_some(3),
                WorkerShare {
                    index: run,
                    count: 2,
                },
                3,
            );
            let mut used = HashSet::new();
            for port in (1000..61_000).step_by(97) {
                let client = SocketAddr::new(client_ip, port);
                for (copy, want) in (0..3).zip(expected) {
                    assert_eq!(first_addr(&src, client, copy), want);
                    // Also while the client's other connections are live.
                    assert_eq!(allocate(&src, &mut used, client, copy).unwrap().ip(), want);
                }
            }
        }
    }

    #[test]
    fn many_client_addresses_spread_over_the_rewrite_addresses() {
        let src = TupleSource::new(x_range(), None);
        let mut per_addr = std::collections::HashMap::<IpAddr, usize>::new();
        let clients = 25_400u32;
        for i in 0..clients {
            let ip = IpAddr::from((0x0a00_0000 + i * 7).to_be_bytes());
            *per_addr
                .entry(first_addr(&src, SocketAddr::new(ip, 40_000), 0))
                .or_default() += 1;
        }
        // 100 a address on average: every address used, none more than 1.5 times that.
        assert_eq!(per_addr.len(), 254);
        let (min, max) = (
            per_addr.values().min().unwrap(),
            per_addr.values().max().unwrap(),
        );
        assert!(*min >= 50 && *max <= 150, "{min}..{max}");
    }

    #[test]
    fn a_client_moves_to_another_address_only_when_its_own_is_full() {
        // One instance of 16 and 8 workers: 504 ports a share.
        let src = TupleSource::for_worker(
            x_range()[..2].to_vec(),
            Some(0),
            WorkerShare { index: 0, count: 8 },
            1,
        );
        let client_ip: IpAddr = "198.51.100.10".parse().unwrap();
        let own = first_addr(&src, SocketAddr::new(client_ip, 5000), 0);
        let mut used = HashSet::new();
        let picks: Vec<SocketAddr> = (0..600)
            .filter_map(|p| allocate(&src, &mut used, SocketAddr::new(client_ip, 2000 + p), 0))
            .collect();
        assert_eq!(picks.len(), 600);
        assert!(picks[..504].iter().all(|t| t.ip() == own));
        assert!(picks[504..].iter().all(|t| t.ip() != own));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Distinct captured connections (many client addresses and ports) never share a
        /// replayed 4-tuple, with -c, several copies, workers and instances; and with -c each
        /// copy of a client address's connections sits on one address (while it has room).
        #[test]
        fn distinct_clients_get_distinct_tuples_and_keep_their_address(
            clients in proptest::collection::hash_set((0u8..6, 1024u16..), 1..120),
            copies in 1u16..5,
            instances in 1u8..3,
            workers in 1u16..4,
            addrs in 1usize..8,
        ) {
            let addrs: Vec<IpAddr> = x_range()[..addrs].to_vec();
            let mut used = HashSet::new();
            for f in 0..instances {
                for w in 0..workers {
                    let share = WorkerShare { index: w, count: workers };
                    let src = TupleSource::for_worker(addrs.clone(), (instances > 1).then_some(f), share, copies);
                    let mut mine = HashSet::new();
                    for (host, port) in clients.iter().filter(|(_, p)| *p % workers == w) {
                        let client = SocketAddr::new(IpAddr::from([198, 51, 100, *host]), *port);
                        for copy in 0..copies {
                            let t = allocate(&src, &mut mine, client, copy).expect("room for all");
                            prop_assert!(used.insert(t), "{t} given twice");
                            prop_assert_eq!(t.ip(), addrs[address_index(client.ip(), copy, addrs.len())]);
                        }
                    }
                }
            }
        }

        /// Every copy of every concurrent session gets its own 4-tuple, for hundreds of copies,
        /// several instances sharing a target and several workers in each instance.
        #[test]
        fn copies_get_unique_tuples(
            // Concurrent connections of one client address: distinct ports.
            ports in proptest::collection::hash_set(1u16.., 1..24),
            copies in 1u16..300,
            instances in 1u8..4,
            workers in 1u16..4,
            with_c in any::<bool>(),
        ) {
            let addrs: Vec<IpAddr> = if with_c { (1..=20).map(|d| IpAddr::from([192, 0, 2, d])).collect() } else { vec![] };
            let mut used = HashSet::new();
            let mut got = 0usize;
            for f in 0..instances {
                for w in 0..workers {
                    // Each worker allocates without seeing the others' tuples, as threads do.
                    let share = WorkerShare { index: w, count: workers };
                    let src = TupleSource::for_worker(addrs.clone(), (instances > 1).then_some(f), share, copies);
                    let mut mine = HashSet::new();
                    // A worker replays the sessions whose captured port falls to it.
                    for p in ports.iter().filter(|p| **p % workers == w) {
                        let client = SocketAddr::new("198.51.100.10".parse().unwrap(), *p);
                        for copy in 0..copies {
                            if let Some(t) = allocate(&src, &mut mine, client, copy) {
                                prop_assert!(used.insert(t), "{t} taken by two workers or instances");
                                got += 1;
                            }
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
