//! The project's testbed: four hosts in network namespaces on a private bridge.
//!
//! ```text
//!   client 198.51.100.10  2001:db8:100::10 ─┐
//!   online 198.51.100.20  2001:db8:100::20 ─┤ br0 (in its own namespace)
//!   test   198.51.100.30  2001:db8:100::30 ─┤
//!   assistant .40         2001:db8:100::40 ─┘
//! ```
//! nginx listens on port 80 (IPv4 and IPv6) in `online` and `test`, each with its own access log.
//! The test host routes replies for the replay client addresses ([`REPLAY_CLIENT_NET`],
//! [`REPLAY_CLIENT_NET6`]) via the assistant, which forwards nothing. In the two-host layout
//! ([`Options::two_hosts`]) there is no such route: the test host's only route beyond the subnet
//! is a default route via [`GATEWAY`] (an address of the bridge, which answers ARP/ND and
//! forwards nothing), intercept runs on the test host (`--egress`), and tc counters on the
//! bridge's port of the test host count what leaves it ([`Testbed::leaving_test`]). Nothing here touches the main namespace: every link is created inside the
//! testbed's own namespaces. Names carry the creating process's pid and a counter, so tests run in
//! parallel; [`Testbed`]'s `Drop` tears everything down (also when a test panics) and
//! [`sweep_stale`] removes what a killed process left behind.

mod cmd;
mod nginx;
mod process;
pub mod rig;
mod sweep;
pub mod tools;
pub mod upstream;

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub use cmd::{in_ns, is_root, output, run};
pub use process::{Spawned, binary, use_binaries_from};
pub use sweep::{PREFIX, project_namespaces, stale_ids, sweep_stale, teardown};

/// The testbed's subnet (a documentation range) and prefix length.
pub const SUBNET_PREFIX: u8 = 24;
/// Addresses tcpcopy rewrites replayed clients to (`-c`); the test host routes them via the
/// assistant.
pub const REPLAY_CLIENT_NET: &str = "192.0.2.0/24";
/// The IPv6 subnet's prefix length.
pub const SUBNET6_PREFIX: u8 = 64;
/// IPv6 addresses tcpcopy rewrites replayed clients to; the test host routes them via the
/// assistant.
pub const REPLAY_CLIENT_NET6: &str = "2001:db8:2::/64";
/// `-c` for IPv6 replays: addresses in [`REPLAY_CLIENT_NET6`].
pub const REPLAY_CLIENTS6: &str = "2001:db8:2::1,2001:db8:2::2,2001:db8:2::3,2001:db8:2::4";
/// The two-host layout's default gateway of the test host: the bridge's own address, in the
/// bridge's namespace, which answers ARP and forwards nothing.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// [`GATEWAY`] for IPv6.
pub const GATEWAY6: &str = "2001:db8:100::1";
/// What the test host sends towards the replay clients, as counted on the far side of its link
/// (two-host layout): tc filters on the bridge's port, each mirroring what it matches to a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaving {
    /// TCP from port 80 to [`REPLAY_CLIENT_NET`]: replies intercept must catch.
    Replies,
    /// TCP from port 80 to [`REPLAY_CLIENT_NET6`].
    Replies6,
    /// ICMP to [`REPLAY_CLIENT_NET`]: other traffic, which must pass.
    Icmp,
}

impl Leaving {
    const fn pref(self) -> u32 {
        match self {
            Leaving::Replies => 10,
            Leaving::Replies6 => 11,
            Leaving::Icmp => 12,
        }
    }
}

/// The port of the redis servers [`Testbed::start_redis`] starts.
pub const REDIS_PORT: u16 = 6379;

/// The interface name of every host inside its namespace.
pub const IFACE: &str = "veth0";
/// The online host's mirror port (with `Options::mirror`).
pub const MIRROR_IFACE: &str = "mirror0";

/// One of the testbed's hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Client,
    Online,
    Test,
    Assistant,
}

impl Host {
    pub const ALL: [Host; 4] = [Host::Client, Host::Online, Host::Test, Host::Assistant];

    pub const fn name(self) -> &'static str {
        match self {
            Host::Client => "client",
            Host::Online => "online",
            Host::Test => "test",
            Host::Assistant => "assistant",
        }
    }

    pub const fn addr(self) -> Ipv4Addr {
        match self {
            Host::Client => Ipv4Addr::new(198, 51, 100, 10),
            Host::Online => Ipv4Addr::new(198, 51, 100, 20),
            Host::Test => Ipv4Addr::new(198, 51, 100, 30),
            Host::Assistant => Ipv4Addr::new(198, 51, 100, 40),
        }
    }

    pub fn addr6(self) -> Ipv6Addr {
        let last = u16::from(self.addr().octets()[3]);
        Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, last)
    }

    /// The host's address of the family `v6` says.
    pub fn ip(self, v6: bool) -> IpAddr {
        if v6 {
            self.addr6().into()
        } else {
            self.addr().into()
        }
    }

    /// `ip:port` as a URL or a command line writes it (`[v6]:port`).
    pub fn socket(self, v6: bool, port: u16) -> String {
        std::net::SocketAddr::new(self.ip(v6), port).to_string()
    }

    /// Hosts that run nginx on port 80.
    pub const fn serves_http(self) -> bool {
        matches!(self, Host::Online | Host::Test)
    }
}

/// Options for [`Testbed::up_with`].
#[derive(Clone, Debug)]
pub struct Options {
    /// RX/TX queues of every veth (more than 1 for multi-queue runs).
    pub queues: u16,
    /// Keep the namespaces when the `Testbed` is dropped (`cargo xtask testbed up`).
    pub persistent: bool,
    /// The id (namespace prefix); `None` for a unique one.
    pub id: Option<String>,
    /// Give the online host a mirror port: `mirror0` receives a copy of every frame the client
    /// sends and of every frame the online host sends to the client (tc mirred in the bridge
    /// namespace), like a switch's SPAN port of the service's traffic, both directions.
    pub mirror: bool,
    /// MTU of every link (the veths and the bridge); `None` keeps the default 1500.
    pub mtu: Option<u32>,
    /// The two-host layout: no route via the assistant (which stays, unused); the test host's
    /// default route goes via [`GATEWAY`]; intercept runs on the test host (`--egress`); what
    /// leaves the test host for the replay clients is counted ([`Testbed::leaving_test`]).
    pub two_hosts: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            queues: 1,
            persistent: false,
            id: None,
            mirror: false,
            mtu: None,
            two_hosts: false,
        }
    }
}

/// A running testbed. Dropping it deletes its namespaces and stops what runs in them.
pub struct Testbed {
    id: String,
    dir: PathBuf,
    persistent: bool,
    two_hosts: bool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Testbed {
    /// A fresh testbed with a unique name; stale testbeds of dead processes are swept first.
    pub fn up() -> anyhow::Result<Self> {
        Self::up_with(&Options::default())
    }

    pub fn up_with(opts: &Options) -> anyhow::Result<Self> {
        if !is_root() {
            bail!("the testbed needs root (it creates network namespaces); run as root");
        }
        sweep_stale();
        let id = opts.id.clone().unwrap_or_else(|| {
            format!(
                "{PREFIX}{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            )
        });
        let dir = std::env::temp_dir().join(&id);
        let bed = Self {
            id,
            dir,
            persistent: opts.persistent,
            two_hosts: opts.two_hosts,
        };
        // From here on, a failure drops `bed`, which tears down whatever was made.
        if let Err(e) = bed.build(opts) {
            if bed.persistent {
                teardown(&bed.id);
            }
            return Err(e.context(format!("bringing up testbed {}", bed.id)));
        }
        Ok(bed)
    }

    /// Attaches to a persistent testbed that `up_with(persistent)` made earlier.
    pub fn existing(id: &str) -> anyhow::Result<Self> {
        let mut bed = Self {
            id: id.into(),
            dir: std::env::temp_dir().join(id),
            persistent: true,
            two_hosts: false,
        };
        if !project_namespaces()
            .iter()
            .any(|n| *n == bed.ns(Host::Online))
        {
            bail!("no testbed {id} is up (`cargo xtask testbed up`)");
        }
        let br = cmd::output("ip", &["-n", &bed.bridge_ns(), "-o", "addr", "show", "br0"])?;
        bed.two_hosts = br.contains(&format!(" {GATEWAY}/"));
        Ok(bed)
    }

    fn build(&self, opts: &Options) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let br = self.bridge_ns();
        cmd::ip(&["netns", "add", &br])?;
        for host in Host::ALL {
            cmd::ip(&["netns", "add", &self.ns(host)])?;
        }
        cmd::ip(&["-n", &br, "link", "set", "lo", "up"])?;
        cmd::ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        cmd::ip(&["-n", &br, "link", "set", "br0", "up"])?;
        let queues = opts.queues.max(1).to_string();
        for host in Host::ALL {
            let ns = self.ns(host);
            let port = format!("p-{}", host.name());
            cmd::ip(&[
                "-n",
                &br,
                "link",
                "add",
                &port,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
                "type",
                "veth",
                "peer",
                "name",
                IFACE,
                "netns",
                &ns,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
            ])?;
            if let Some(mtu) = opts.mtu {
                let mtu = mtu.to_string();
                cmd::ip(&["-n", &br, "link", "set", &port, "mtu", &mtu])?;
                cmd::ip(&["-n", &ns, "link", "set", IFACE, "mtu", &mtu])?;
            }
            cmd::ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            let addr = format!("{}/{SUBNET_PREFIX}", host.addr());
            cmd::ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            cmd::ip(&["-n", &ns, "addr", "add", &addr, "dev", IFACE])?;
            // No duplicate address detection: the address is usable at once.
            let addr6 = format!("{}/{SUBNET6_PREFIX}", host.addr6());
            cmd::ip(&["-n", &ns, "addr", "add", &addr6, "dev", IFACE, "nodad"])?;
            cmd::ip(&["-n", &ns, "link", "set", IFACE, "up"])?;
        }
        if let Some(mtu) = opts.mtu {
            cmd::ip(&["-n", &br, "link", "set", "br0", "mtu", &mtu.to_string()])?;
        }
        if opts.mirror {
            self.add_mirror_port(&queues)?;
        }
        if opts.two_hosts {
            self.add_gateway()?;
        } else {
            let test = self.ns(Host::Test);
            let assistant = Host::Assistant.addr().to_string();
            cmd::ip(&[
                "-n",
                &test,
                "route",
                "add",
                REPLAY_CLIENT_NET,
                "via",
                &assistant,
            ])?;
            let assistant6 = Host::Assistant.addr6().to_string();
            cmd::ip(&[
                "-n",
                &test,
                "-6",
                "route",
                "add",
                REPLAY_CLIENT_NET6,
                "via",
                &assistant6,
            ])?;
        }
        self.sysctl(Host::Assistant, "net.ipv6.conf.all.forwarding", "0")?;
        self.sysctl(Host::Test, "net.ipv4.conf.all.rp_filter", "0")?;
        self.sysctl(Host::Test, "net.ipv4.conf.veth0.rp_filter", "0")?;
        self.sysctl(Host::Assistant, "net.ipv4.ip_forward", "0")?;
        // Loads of one request per connection (tens of thousands of connections a second):
        // every local port, and a port in TIME-WAIT taken again, so the client does not run out
        // of ports in the middle of a benchmark round.
        self.sysctl(Host::Client, "net.ipv4.ip_local_port_range", "1024 65535")?;
        self.sysctl(Host::Client, "net.ipv4.tcp_tw_reuse", "1")?;
        for host in Host::ALL.into_iter().filter(|h| h.serves_http()) {
            // Servers under replayed load: room for bursts of handshakes.
            self.sysctl(host, "net.core.somaxconn", "4096")?;
            self.sysctl(host, "net.ipv4.tcp_max_syn_backlog", "4096")?;
            self.start_nginx(host)?;
        }
        self.wait_ready(Duration::from_secs(15))
    }

    /// The two-host layout: the bridge's addresses (answering ARP/ND, forwarding nothing) as the
    /// test host's default gateway, and the counters of what the test host sends to the replay
    /// clients: tc filters on its bridge port that mirror what they match to a sink veth (their
    /// action counts it: `tc -s filter show`).
    fn add_gateway(&self) -> anyhow::Result<()> {
        let br = self.bridge_ns();
        let test = self.ns(Host::Test);
        let tc = |args: &[&str]| {
            let mut all = vec!["netns", "exec", br.as_str(), "tc"];
            all.extend_from_slice(args);
            cmd::run("ip", &all).map(drop)
        };
        for key in [
            "net.ipv4.ip_forward",
            "net.ipv6.conf.all.forwarding",
            "net.ipv4.conf.all.rp_filter",
        ] {
            cmd::run(
                "ip",
                &["netns", "exec", &br, "sysctl", "-qw", &format!("{key}=0")],
            )?;
        }
        let gw = format!("{GATEWAY}/{SUBNET_PREFIX}");
        cmd::ip(&["-n", &br, "addr", "add", &gw, "dev", "br0"])?;
        let gw6 = format!("{GATEWAY6}/{SUBNET6_PREFIX}");
        cmd::ip(&["-n", &br, "addr", "add", &gw6, "dev", "br0", "nodad"])?;
        cmd::ip(&[
            "-n",
            &test,
            "route",
            "add",
            "default",
            "via",
            &GATEWAY.to_string(),
        ])?;
        cmd::ip(&[
            "-n", &test, "-6", "route", "add", "default", "via", GATEWAY6,
        ])?;
        cmd::ip(&[
            "-n", &br, "link", "add", "p-count", "type", "veth", "peer", "name", "p-sink",
        ])?;
        cmd::ip(&["-n", &br, "link", "set", "p-count", "up"])?;
        cmd::ip(&["-n", &br, "link", "set", "p-sink", "up"])?;
        tc(&["qdisc", "add", "dev", "p-test", "clsact"])?;
        let mirror = ["action", "mirred", "egress", "mirror", "dev", "p-count"];
        // (counter, tc protocol, u32 family, destination net, IP protocol, source port)
        let counters = [
            (
                Leaving::Replies,
                "ip",
                "ip",
                REPLAY_CLIENT_NET,
                "6",
                Some("80"),
            ),
            (
                Leaving::Replies6,
                "ipv6",
                "ip6",
                REPLAY_CLIENT_NET6,
                "6",
                Some("80"),
            ),
            (Leaving::Icmp, "ip", "ip", REPLAY_CLIENT_NET, "1", None),
        ];
        for (what, protocol, family, net, ip_proto, sport) in counters {
            let pref = what.pref().to_string();
            let mut f = vec!["filter", "add", "dev", "p-test", "ingress", "pref", &pref];
            f.extend_from_slice(&["protocol", protocol, "u32", "match", family, "dst", net]);
            f.extend_from_slice(&["match", family, "protocol", ip_proto, "0xff"]);
            if let Some(port) = sport {
                f.extend_from_slice(&["match", family, "sport", port, "0xffff"]);
            }
            f.extend_from_slice(&mirror);
            tc(&f)?;
        }
        Ok(())
    }

    /// Packets the test host has sent that match `what`, counted on the bridge's side of its
    /// link (two-host layout).
    pub fn leaving_test(&self, what: Leaving) -> anyhow::Result<u64> {
        if !self.two_hosts {
            bail!("counting what leaves the test host needs the two-host layout");
        }
        let pref = what.pref().to_string();
        let out = cmd::output(
            "ip",
            &[
                "netns",
                "exec",
                &self.bridge_ns(),
                "tc",
                "-s",
                "filter",
                "show",
                "dev",
                "p-test",
                "ingress",
                "pref",
                &pref,
            ],
        )?;
        parse_sent_packets(&out).with_context(|| format!("no counter in {out:?}"))
    }

    /// Whether this is the two-host layout ([`Options::two_hosts`]).
    pub fn two_hosts(&self) -> bool {
        self.two_hosts
    }

    /// The host intercept runs on: the test host itself in the two-host layout (`--egress`),
    /// else the assistant.
    pub fn intercept_host(&self) -> Host {
        if self.two_hosts {
            Host::Test
        } else {
            Host::Assistant
        }
    }

    /// Puts an impairment relay on `host`'s link (this kernel has no netem): in the bridge's
    /// namespace, `host`'s port leaves the bridge and the relay (`impair`, a testbed binary)
    /// carries every frame between it and a new port of the bridge, dropping, duplicating and
    /// reordering the TCP packets to or from the replayed clients ([`REPLAY_CLIENT_NET`]) as
    /// `options` say (`loss=PCT dup=PCT reorder=PCT seed=N`; `in_*` counters: towards `host`,
    /// `out_*`: from it). Frames cross it whole: segmentation and checksum offloads are turned
    /// off on every host's interface first (ethtool), so no frame is larger than the MTU or
    /// carries a checksum left to the hardware. Returns the running relay once it is ready;
    /// dropping it (or the testbed) ends it.
    pub fn impair(&self, host: Host, options: &[&str]) -> anyhow::Result<Spawned> {
        let br = self.bridge_ns();
        tools::require("ethtool")?;
        for h in Host::ALL {
            let ns = self.ns(h);
            cmd::run(
                "ip",
                &[
                    "netns", "exec", &ns, "ethtool", "-K", IFACE, "tx", "off", "tso", "off", "gso",
                    "off",
                ],
            )
            .with_context(|| format!("offloads off on {}", h.name()))?;
        }
        let port = format!("p-{}", host.name());
        let (relay_side, bridge_side) =
            (format!("r-{}", host.name()), format!("b-{}", host.name()));
        cmd::ip(&[
            "-n",
            &br,
            "link",
            "add",
            &relay_side,
            "type",
            "veth",
            "peer",
            "name",
            &bridge_side,
        ])?;
        for dev in [&port, &relay_side, &bridge_side] {
            // No link-local address: nothing of the bridge namespace's own goes through the relay.
            cmd::run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &br,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
                ],
            )?;
        }
        cmd::ip(&["-n", &br, "link", "set", &relay_side, "up"])?;
        cmd::ip(&[
            "-n",
            &br,
            "link",
            "set",
            &bridge_side,
            "master",
            "br0",
            "up",
        ])?;
        cmd::ip(&["-n", &br, "link", "set", &port, "nomaster"])?;
        let relay = binary("impair")?;
        let mut relay_cmd = in_ns(&br, relay.to_str().context("utf-8 path")?);
        relay_cmd
            .args([&port, &relay_side, REPLAY_CLIENT_NET])
            .args(options);
        let mut relay = Spawned::start(relay_cmd)?;
        relay.wait_for_line("ready", Duration::from_secs(10))?;
        Ok(relay)
    }

    /// `mirror0` on the online host, fed by tc mirred copies of what the client sends (its
    /// bridge port's ingress) and of what the online host sends to the client (the online
    /// host's bridge port's ingress, IPv4 and IPv6 to the client's addresses).
    /// Its veths get `queues` queues, as every host's.
    fn add_mirror_port(&self, queues: &str) -> anyhow::Result<()> {
        let br = self.bridge_ns();
        let online = self.ns(Host::Online);
        cmd::ip(&[
            "-n",
            &br,
            "link",
            "add",
            "p-mirror",
            "numtxqueues",
            queues,
            "numrxqueues",
            queues,
            "type",
            "veth",
            "peer",
            "name",
            MIRROR_IFACE,
            "netns",
            &online,
            "numtxqueues",
            queues,
            "numrxqueues",
            queues,
        ])?;
        cmd::ip(&["-n", &br, "link", "set", "p-mirror", "up"])?;
        cmd::ip(&["-n", &online, "link", "set", MIRROR_IFACE, "up"])?;
        cmd::run(
            "ip",
            &[
                "netns", "exec", &br, "tc", "qdisc", "add", "dev", "p-client", "clsact",
            ],
        )?;
        cmd::run(
            "ip",
            &[
                "netns", "exec", &br, "tc", "filter", "add", "dev", "p-client", "ingress", "u32",
                "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev",
                "p-mirror",
            ],
        )?;
        cmd::run(
            "ip",
            &[
                "netns", "exec", &br, "tc", "qdisc", "add", "dev", "p-online", "clsact",
            ],
        )?;
        let client = format!("{}/32", Host::Client.addr());
        let client6 = format!("{}/128", Host::Client.addr6());
        for (protocol, field, addr) in [("ip", "ip", &client), ("ipv6", "ip6", &client6)] {
            cmd::run(
                "ip",
                &[
                    "netns", "exec", &br, "tc", "filter", "add", "dev", "p-online", "ingress",
                    "protocol", protocol, "u32", "match", field, "dst", addr, "action", "mirred",
                    "egress", "mirror", "dev", "p-mirror",
                ],
            )?;
        }
        Ok(())
    }

    fn sysctl(&self, host: Host, key: &str, value: &str) -> anyhow::Result<()> {
        let ns = self.ns(host);
        cmd::run(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                &format!("{key}={value}"),
            ],
        )
        .map(drop)
    }

    fn start_nginx(&self, host: Host) -> anyhow::Result<()> {
        let name = host.name();
        for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            fs::create_dir_all(self.dir.join(format!("{name}-tmp/{sub}")))?;
        }
        let conf = self.dir.join(format!("{name}-nginx.conf"));
        fs::write(&conf, nginx::config(&self.dir, name))?;
        fs::write(self.access_log(host), "")?;
        self.nginx(host, &[])
            .with_context(|| format!("starting nginx on {name}"))
    }

    /// Runs `nginx` of `host` with its files and `args` (none: start it).
    fn nginx(&self, host: Host, args: &[&str]) -> anyhow::Result<()> {
        let name = host.name();
        let conf = self.dir.join(format!("{name}-nginx.conf"));
        let err_log = self.dir.join(format!("{name}-error.log"));
        let ns = self.ns(host);
        let (err_log, conf) = (err_log.to_string_lossy(), conf.to_string_lossy());
        let mut all = vec!["netns", "exec", &ns, "nginx", "-e", &err_log, "-c", &conf];
        all.extend_from_slice(args);
        cmd::run("ip", &all).map(drop)
    }

    /// Stops nginx on `host` the way a deploy does (`nginx -s quit`: no new connections, the
    /// requests in progress answered, idle keep-alive connections closed) and waits until it has
    /// exited (its pid file is gone).
    pub fn stop_nginx(&self, host: Host, timeout: Duration) -> anyhow::Result<()> {
        let pid = self.dir.join(format!("{}-nginx.pid", host.name()));
        self.nginx(host, &["-s", "quit"])?;
        let deadline = Instant::now() + timeout;
        while pid.exists() {
            if Instant::now() > deadline {
                bail!("nginx on {} did not exit within {timeout:?}", host.name());
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts nginx on `host` again after [`Self::stop_nginx`] (its access log kept).
    pub fn restart_nginx(&self, host: Host) -> anyhow::Result<()> {
        self.nginx(host, &[])
            .with_context(|| format!("starting nginx on {} again", host.name()))
    }

    /// Waits until both nginx instances answer the client, over IPv4 and IPv6.
    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let hosts = Host::ALL.into_iter().filter(|h| h.serves_http());
        for (host, v6) in hosts.flat_map(|h| [(h, false), (h, true)]) {
            let url = format!("http://{}/ready", host.socket(v6, 80));
            loop {
                let ok = self
                    .cmd(Host::Client, "curl")
                    .args(["-gsf", "-o", "/dev/null", "--max-time", "1", &url])
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("nginx on {} did not answer within {timeout:?}", host.name());
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Starts the `upstream` helper (a testbed binary) on `host`, on 127.0.0.1 behind nginx's
    /// `/slow/` and `/chunked/` locations: `/slow/` answered after `delay`; `variant` `online`
    /// answers every URI alike, any other answers URIs with `/body/` with another body (see
    /// `src/bin/upstream.rs`). Returns it once it listens; dropping it ends it.
    pub fn start_upstream(
        &self,
        host: Host,
        delay: Duration,
        variant: &str,
    ) -> anyhow::Result<Spawned> {
        let program = binary("upstream")?;
        let mut cmd = self.cmd(host, program.to_str().context("utf-8 path")?);
        cmd.arg(format!("127.0.0.1:{}", nginx::UPSTREAM_PORT))
            .arg(delay.as_millis().to_string())
            .arg(variant);
        let mut p = Spawned::start(cmd)?;
        p.wait_for_line("ready", Duration::from_secs(10))?;
        Ok(p)
    }

    /// Starts a redis server on `host` (port [`REDIS_PORT`], on the host's IPv4 address and
    /// 127.0.0.1, nothing saved to disk, its log on stdout); returns it once it accepts
    /// connections. Dropping it ends it.
    pub fn start_redis(&self, host: Host) -> anyhow::Result<Spawned> {
        let dir = self.dir.join(format!("{}-redis", host.name()));
        fs::create_dir_all(&dir)?;
        let mut cmd = self.cmd(host, "redis-server");
        cmd.args(["--port", &REDIS_PORT.to_string()])
            .args(["--bind", &host.addr().to_string(), "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(["--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&dir);
        let mut p = Spawned::start(cmd)?;
        p.wait_for(
            |l| l.contains("Ready to accept connections"),
            "redis ready",
            Duration::from_secs(10),
        )
        .with_context(|| format!("starting redis on {}", host.name()))?;
        Ok(p)
    }

    /// The testbed's id, the prefix of its namespaces.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: Host) -> String {
        format!("{}-{}", self.id, host.name())
    }

    /// The namespace holding the bridge.
    pub fn bridge_ns(&self) -> String {
        format!("{}-br", self.id)
    }

    /// The folder with the testbed's nginx files and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A `Command` running `program` on `host`.
    pub fn cmd(&self, host: Host, program: &str) -> Command {
        in_ns(&self.ns(host), program)
    }

    /// The nginx access log of `host`.
    pub fn access_log(&self, host: Host) -> PathBuf {
        self.dir.join(format!("{}-access.log", host.name()))
    }

    /// The requests nginx on `host` logged, one line each:
    /// `addr port "METHOD URI PROTO" status request_length body_bytes body_file`.
    pub fn requests(&self, host: Host) -> anyhow::Result<Vec<String>> {
        let text = fs::read_to_string(self.access_log(host))?;
        Ok(text.lines().map(str::to_owned).collect())
    }

    /// `Tcp: InSegs` of `host`'s network namespace: TCP segments its stack has received.
    pub fn tcp_in_segs(&self, host: Host) -> anyhow::Result<u64> {
        let snmp = self.cmd(host, "cat").arg("/proc/net/snmp").output()?;
        parse_in_segs(&String::from_utf8_lossy(&snmp.stdout))
    }

    /// TCP connections of `host` on local port `port` that still expect a segment: every state
    /// but LISTEN and TIME-WAIT (read from the namespace's /proc/net/tcp and tcp6).
    pub fn open_tcp(&self, host: Host, port: u16) -> anyhow::Result<usize> {
        let mut open = 0;
        for (file, required) in [("/proc/net/tcp", true), ("/proc/net/tcp6", false)] {
            let out = self.cmd(host, "cat").arg(file).output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() || !text.starts_with("  sl") {
                if required {
                    bail!("reading {file} on {} failed: {}", host.name(), out.status);
                }
                continue;
            }
            open += count_open(&text, port);
        }
        Ok(open)
    }

    /// Whether any interface of `host` has an XDP program attached.
    pub fn xdp_attached(&self, host: Host) -> anyhow::Result<bool> {
        let links = cmd::output("ip", &["-n", &self.ns(host), "-o", "link", "show"])?;
        Ok(links.lines().any(|l| xdp_program_of(l).is_some()))
    }

    /// The id of the XDP program attached to `host`'s interface `iface`, if one is.
    pub fn xdp_program(&self, host: Host, iface: &str) -> anyhow::Result<Option<u32>> {
        let link = cmd::output(
            "ip",
            &["-n", &self.ns(host), "-o", "link", "show", "dev", iface],
        )?;
        Ok(xdp_program_of(&link))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if !self.persistent {
            teardown(&self.id);
        }
    }
}

/// The XDP program id in an interface's line of `ip -o link show` (`... prog/xdp id 42 ...`).
fn xdp_program_of(link: &str) -> Option<u32> {
    let mut words = link
        .split_whitespace()
        .skip_while(|w| !w.starts_with("prog/xdp"));
    match (words.next(), words.next(), words.next()) {
        (Some(_), Some("id"), Some(id)) => id.parse().ok(),
        _ => None,
    }
}

/// Sockets on local port `port` in /proc/net/tcp text that are neither listening (0A) nor in
/// TIME-WAIT (06).
fn count_open(tcp: &str, port: u16) -> usize {
    let local = format!(":{port:04X}");
    tcp.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, state) = (f.nth(1)?, f.nth(1)?);
            Some((addr, state))
        })
        .filter(|(addr, state)| addr.ends_with(&local) && !matches!(*state, "0A" | "06"))
        .count()
}

/// The packets of the first `Sent N bytes M pkt` in `tc -s` output.
fn parse_sent_packets(tc: &str) -> Option<u64> {
    let at = tc.find("Sent ")?;
    let mut words = tc[at..].split_whitespace();
    let (_, _, _, pkts) = (words.next()?, words.next()?, words.next()?, words.next()?);
    pkts.parse().ok()
}

/// `InSegs` from the text of /proc/net/snmp (a header line of names, then a line of values).
fn parse_in_segs(snmp: &str) -> anyhow::Result<u64> {
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next(), tcp.next());
    let (Some(names), Some(values)) = (names, values) else {
        bail!("no Tcp lines in /proc/net/snmp");
    };
    let at = names
        .split_whitespace()
        .position(|n| n == "InSegs")
        .context("no InSegs in /proc/net/snmp")?;
    values
        .split_whitespace()
        .nth(at)
        .context("short Tcp line")?
        .parse()
        .context("InSegs is not a number")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_segs_from_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs\n\
                    Tcp: 1 200 120000 -1 5 7 0 0 1 4242 4000\n";
        assert_eq!(parse_in_segs(snmp).unwrap(), 4242);
        assert!(parse_in_segs("Ip: x\nIp: 1\n").is_err());
    }

    #[test]
    fn xdp_program_ids_from_ip_link() {
        let with = "2: veth0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 xdpgeneric qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether 02:00:00:00:00:14 brd ff:ff:ff:ff:ff:ff link-netns tcb-1-online\\    prog/xdp id 417 tag 3b185187f1855c4c jited ";
        assert_eq!(xdp_program_of(with), Some(417));
        let without = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00";
        assert_eq!(xdp_program_of(without), None);
    }

    #[test]
    fn open_connections_from_proc_net_tcp() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n\
   1: 1464A8C6:0050 0A64A8C6:D431 01 00000000:00000000 00:00000000 00000000\n\
   2: 1464A8C6:0050 0A64A8C6:D432 09 00000000:00000000 00:00000000 00000000\n\
   3: 1464A8C6:0050 0A64A8C6:D433 06 00000000:00000000 00:00000000 00000000\n\
   4: 1464A8C6:1F90 0A64A8C6:D434 01 00000000:00000000 00:00000000 00000000\n";
        // ESTABLISHED and LAST-ACK on port 80 are open; LISTEN, TIME-WAIT and port 8080 are not.
        assert_eq!(count_open(tcp, 80), 2);
        assert_eq!(count_open(tcp, 8080), 1);
        assert_eq!(count_open(tcp, 443), 0);
    }

    #[test]
    fn sent_packets_from_tc_stats() {
        let out = "filter protocol ip pref 10 u32 chain 0 fh 800::800 order 2048\n\
                   \taction order 1: mirred (Egress Mirror to device p-count) pipe\n\
                   \tSent 1234 bytes 17 pkt (dropped 0, overlimits 0 requeues 0)\n";
        assert_eq!(parse_sent_packets(out), Some(17));
        assert_eq!(parse_sent_packets("nothing"), None);
    }

    #[test]
    fn hosts_have_distinct_addresses_in_the_subnet() {
        let mut addrs: Vec<_> = Host::ALL.iter().map(|h| h.addr()).collect();
        addrs.dedup();
        assert_eq!(addrs.len(), 4);
        assert!(addrs.iter().all(|a| a.octets()[..3] == [198, 51, 100]));
    }
}
