//! Userspace side of the kernel programs: load the embedded object, configure the port filter,
//! attach through a bpf link (XDP: driver mode, falling back to generic SKB mode; tc: a tcx link
//! at ingress or egress, first in the interface's chain), read the counters.
//!
//! A program is attached only through a bpf link, never through the legacy netlink calls: the
//! link is owned by this process, so when the process dies, even by SIGKILL, the kernel detaches
//! the program and nothing is left on the interface. Nothing this process did not attach is ever
//! detached or replaced: an XDP attach refused because another program holds the interface is
//! reported as [`XdpError::Attach`], and tcx links coexist with other programs.

use std::{format, string::String, vec::Vec};

use aya::{
    Ebpf, EbpfLoader,
    maps::PerCpuArray,
    programs::{
        LinkOrder, Program, SchedClassifier, TcAttachType, Xdp, XdpMode, links::FdLink,
        tc::TcAttachOptions,
    },
    util::KernelVersion,
};
use log::{info, warn};

use tcpcopy_abi::{
    filter::FilterProgram,
    maps::{self, FILTER_PORTS, STATS},
    stats::Stat,
};

/// How the program runs on the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native XDP in the driver.
    Driver,
    /// Generic XDP in the kernel's receive path (any interface, slower).
    Skb,
}

impl core::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AttachMode::Driver => "driver",
            AttachMode::Skb => "skb",
        })
    }
}

/// Where a tc program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcHook {
    /// Received packets, after GRO (tcpcopy where XDP is taken).
    Ingress,
    /// Packets the host sends, after the neighbour layer (intercept on the test server).
    Egress,
}

impl core::fmt::Display for TcHook {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TcHook::Ingress => "tc-ingress",
            TcHook::Egress => "tc-egress",
        })
    }
}

/// Why the XDP program could not be loaded, attached or read.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The interface named does not exist in this network namespace.
    #[error("interface {0:?} does not exist (see `ip link`)")]
    NoSuchInterface(String),
    /// The kernel cannot attach XDP through a bpf link.
    #[error(
        "kernel {0} cannot attach XDP through a bpf link (needs 5.9 or newer); refusing the netlink attach that would outlive a crash"
    )]
    NoBpfLink(String),
    /// The object could not be loaded (verifier, BTF, maps).
    #[error("loading the XDP object failed: {0}")]
    Load(String),
    /// The kernel refused the attach in both modes.
    #[error("attaching XDP to {iface} was refused in driver and in SKB mode: {reason}")]
    Attach { iface: String, reason: String },
    /// The kernel refused the tcx attach.
    #[error(
        "attaching the tc program to {iface} ({hook}) through a tcx link was refused (needs kernel 6.6 or newer): {reason}"
    )]
    AttachTc {
        iface: String,
        hook: TcHook,
        reason: String,
    },
    /// A map could not be opened or updated.
    #[error("XDP map {map}: {reason}")]
    Map { map: &'static str, reason: String },
}

/// A loaded XDP program, attached once [`XdpProgram::attach`] has succeeded. Dropping it detaches.
pub struct XdpProgram {
    ebpf: Ebpf,
    program: &'static str,
    /// The links that hold the programs attached (XDP, tc ingress or egress): dropped, detached.
    links: Vec<FdLink>,
}

/// The `COPY_PAYLOAD` switch of a program, taken out of it so that another thread may turn it
/// on (intercept's control thread, when a tcpcopy asks for payloads).
pub struct PayloadSwitch(aya::maps::Array<aya::maps::MapData, u32>);

impl PayloadSwitch {
    /// From now on the programs copy whole frames, payload included.
    pub fn turn_on(&mut self) -> Result<(), XdpError> {
        self.0.set(0, 1, 0).map_err(|e| XdpError::Map {
            map: maps::COPY_PAYLOAD,
            reason: format!("{e}"),
        })
    }
}

impl XdpProgram {
    /// Loads `object` (an eBPF ELF image) and its program named `program` (XDP or tc) into the
    /// kernel,
    /// with a frame ring of `ring_bytes` (rounded up to a power of two of at least a page) for
    /// each of `workers` workers (see [`maps::FRAMES`]).
    pub fn load(
        object: &[u8],
        program: &'static str,
        ring_bytes: u32,
        workers: u32,
    ) -> Result<Self, XdpError> {
        let ring_bytes = ring_bytes
            .max(4096)
            .checked_next_power_of_two()
            .unwrap_or(1 << 31);
        let mut loader = EbpfLoader::new();
        for (i, name) in maps::FRAMES.iter().enumerate() {
            let used = u32::try_from(i).unwrap_or(u32::MAX) < workers.max(1);
            loader.map_max_entries(name, if used { ring_bytes } else { 4096 });
        }
        // Only tcpcopy's programs skip pure ACKs: the others' map is as small as it can be (an
        // LRU hash takes at least one entry per CPU).
        if program != maps::TCPCOPY_PROGRAM && program != maps::TCPCOPY_TC_PROGRAM {
            let cpus = aya::util::nr_cpus().map_or(64, |n| u32::try_from(n).unwrap_or(64));
            loader.map_max_entries(maps::ACKED, cpus.max(1));
        }
        let mut ebpf = loader
            .load(object)
            .map_err(|e| XdpError::Load(format!("{e}")))?;
        load_program(&mut ebpf, program)?;
        Ok(Self {
            ebpf,
            program,
            links: Vec::new(),
        })
    }

    /// [`Self::load`], then the port filter, the compiled `-F` expression and the number of
    /// workers set: the program ready to attach.
    pub fn load_configured(
        object: &[u8],
        program: &'static str,
        ring_bytes: u32,
        workers: u32,
        ports: &[u16],
        filter: &FilterProgram,
    ) -> Result<Self, XdpError> {
        let mut p = Self::load(object, program, ring_bytes, workers)?;
        p.set_ports(ports)?;
        p.set_filter(filter)?;
        p.set_workers(workers)?;
        Ok(p)
    }

    /// Selects the TCP ports the program matches (replacing nothing already there);
    /// [`maps::ANY_PORT`] selects every port (each entry set, so the program's test for a port
    /// stays one array lookup).
    pub fn set_ports(&mut self, ports: &[u16]) -> Result<(), XdpError> {
        if ports.contains(&maps::ANY_PORT) {
            self.set_entries(FILTER_PORTS, 0..maps::FILTER_PORTS_MAX, 1u8)
        } else {
            self.set_entries(FILTER_PORTS, ports.iter().map(|p| u32::from(*p)), 1u8)
        }
    }

    /// tcpcopy's `-r`: copies only the sessions among `percent` percent, chosen by the engine's
    /// hash of the client's address and port (see `maps::MODE_PERCENT`).
    pub fn set_percentage(&mut self, percent: u8) -> Result<(), XdpError> {
        self.set_entry(maps::MODE, maps::MODE_PERCENT, u32::from(percent))
    }

    /// tcpcopy: copy a connection's pure ACKs after its first at most once per `gap` (see
    /// `maps::MODE_ACK_GAP`); zero copies every one.
    pub fn set_ack_gap(&mut self, gap: std::time::Duration) -> Result<(), XdpError> {
        let ms = u32::try_from(gap.as_millis()).unwrap_or(u32::MAX);
        self.set_entry(maps::MODE, maps::MODE_ACK_GAP, ms)
    }

    /// Sets how selected frames reach userspace (`maps::MODE_COPY` or `maps::MODE_MIRROR`).
    pub fn set_mode(&mut self, mode: u32) -> Result<(), XdpError> {
        self.set_entry(maps::MODE, maps::MODE_INDEX, mode)
    }

    /// How many workers (ring buffers) the program feeds, by a hash of addresses and ports.
    pub fn set_workers(&mut self, workers: u32) -> Result<(), XdpError> {
        self.set_entry(maps::MODE, maps::MODE_WORKERS, workers)
    }

    /// Installs the compiled `-F` expression (a disabled program removes it).
    pub fn set_filter(&mut self, program: &FilterProgram) -> Result<(), XdpError> {
        self.set_entry(maps::FILTER_EXPR, 0, *program)
    }

    /// Writes entry `index` of the array map `name`.
    fn set_entry<V: aya::Pod>(
        &mut self,
        name: &'static str,
        index: u32,
        value: V,
    ) -> Result<(), XdpError> {
        self.set_entries(name, [index], value)
    }

    /// Sets `value` at each of `indexes` of array map `name` (the map looked up once).
    fn set_entries<V: aya::Pod>(
        &mut self,
        name: &'static str,
        indexes: impl IntoIterator<Item = u32>,
        value: V,
    ) -> Result<(), XdpError> {
        let map_err = |e: aya::maps::MapError| XdpError::Map {
            map: name,
            reason: format!("{e}"),
        };
        let map = self.ebpf.map_mut(name).ok_or_else(|| XdpError::Map {
            map: name,
            reason: "not in the object".into(),
        })?;
        let mut array: aya::maps::Array<_, V> = aya::maps::Array::try_from(map).map_err(map_err)?;
        for index in indexes {
            array.set(index, value, 0).map_err(map_err)?;
        }
        Ok(())
    }

    /// Attaches to `iface` through a bpf link: driver mode first, SKB mode when the driver refuses
    /// (or straight away with `force_skb`). Returns the mode in use.
    pub fn attach(&mut self, iface: &str, force_skb: bool) -> Result<AttachMode, XdpError> {
        let kernel = KernelVersion::current().map_err(|e| XdpError::Load(format!("{e}")))?;
        if kernel < KernelVersion::new(5, 9, 0) {
            return Err(XdpError::NoBpfLink(format!("{kernel:?}")));
        }
        let program = self.program;
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| XdpError::Load(format!("no program {program}")))?
            .try_into()
            .map_err(|e| XdpError::Load(format!("{e}")))?;
        let attempts: &[(XdpMode, AttachMode)] = if force_skb {
            &[(XdpMode::Skb, AttachMode::Skb)]
        } else {
            &[
                (XdpMode::Driver, AttachMode::Driver),
                (XdpMode::Skb, AttachMode::Skb),
            ]
        };
        let mut reasons = Vec::new();
        for &(xdp_mode, mode) in attempts {
            match prog.attach(iface, xdp_mode) {
                Ok(id) => {
                    let link = prog.take_link(id).map_err(|e| XdpError::Attach {
                        iface: iface.into(),
                        reason: format!("{e}"),
                    })?;
                    let link = FdLink::try_from(link).map_err(|e| XdpError::Attach {
                        iface: iface.into(),
                        reason: format!("not a bpf link: {e}"),
                    })?;
                    self.links.push(link);
                    info!("XDP program {program} attached to {iface} in {mode} mode (bpf link)");
                    return Ok(mode);
                }
                Err(aya::programs::ProgramError::UnknownInterface { .. }) => {
                    return Err(XdpError::NoSuchInterface(iface.into()));
                }
                Err(e) => {
                    let e = with_sources(&e);
                    if mode == AttachMode::Driver {
                        warn!("driver-mode XDP refused on {iface} ({e}); falling back to SKB mode");
                    }
                    reasons.push(format!("{mode}: {e}"));
                }
            }
        }
        Err(XdpError::Attach {
            iface: iface.into(),
            reason: reasons.join("; "),
        })
    }

    /// Loads the tc program `name` of the same object (it shares the maps) unless loaded, and
    /// attaches it to `iface` at `hook` through a tcx link, first in the interface's chain: it
    /// sees the packets before the programs already there, and leaves every packet it does not
    /// take to them (`TCX_NEXT`). Nothing already attached is detached or replaced.
    pub fn attach_tc(
        &mut self,
        name: &'static str,
        iface: &str,
        hook: TcHook,
    ) -> Result<(), XdpError> {
        if !std::path::Path::new("/sys/class/net").join(iface).exists() {
            return Err(XdpError::NoSuchInterface(iface.into()));
        }
        let err = |reason: String| XdpError::AttachTc {
            iface: iface.into(),
            hook,
            reason,
        };
        let kernel = KernelVersion::current().map_err(|e| XdpError::Load(format!("{e}")))?;
        if kernel < KernelVersion::new(6, 6, 0) {
            return Err(err(format!("kernel {kernel:?}")));
        }
        load_program(&mut self.ebpf, name)?;
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| XdpError::Load(format!("no program {name}")))?
            .try_into()
            .map_err(|e| XdpError::Load(format!("{e}")))?;
        let attach_type = match hook {
            TcHook::Ingress => TcAttachType::Ingress,
            TcHook::Egress => TcAttachType::Egress,
        };
        let id = prog
            .attach_with_options(
                iface,
                attach_type,
                TcAttachOptions::TcxOrder(LinkOrder::first()),
            )
            .map_err(|e| err(with_sources(&e)))?;
        let link = prog.take_link(id).map_err(|e| err(format!("{e}")))?;
        let link = FdLink::try_from(link).map_err(|e| err(format!("not a bpf link: {e}")))?;
        self.links.push(link);
        info!("tc program {name} attached to {iface} at {hook} (tcx link, first in the chain)");
        Ok(())
    }

    /// Takes the `COPY_PAYLOAD` switch out of the program (once).
    pub fn payload_switch(&mut self) -> Result<PayloadSwitch, XdpError> {
        let name = maps::COPY_PAYLOAD;
        let map = self.ebpf.take_map(name).ok_or(XdpError::Map {
            map: name,
            reason: "not in the object".into(),
        })?;
        aya::maps::Array::try_from(map)
            .map(PayloadSwitch)
            .map_err(|e| XdpError::Map {
                map: name,
                reason: format!("{e}"),
            })
    }

    /// Sums every counter over all CPUs, in [`Stat::ALL`] order.
    pub fn counters(&self) -> Result<Counters, XdpError> {
        let map_err = |e: aya::maps::MapError| XdpError::Map {
            map: STATS,
            reason: format!("{e}"),
        };
        let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(STATS)
                .ok_or_else(|| map_err(aya::maps::MapError::InvalidName { name: STATS.into() }))?,
        )
        .map_err(map_err)?;
        let mut out = Counters::default();
        for stat in Stat::ALL {
            let per_cpu = stats.get(&(stat as u32), 0).map_err(map_err)?;
            out.values[stat as usize] = per_cpu.iter().sum();
        }
        Ok(out)
    }

    /// Runs the loaded program `repeat` times on `frame` through `BPF_PROG_TEST_RUN`, without
    /// attaching it or sending a packet: its verdict and the kernel's mean time per run. Maps and
    /// counters see the runs as they would see real frames.
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<TestRun, XdpError> {
        self.test_run_data(frame, repeat).map(|(run, _)| run)
    }

    /// [`Self::test_run`], with the bytes the kernel hands back: for XDP, the frame as the
    /// program left it, from its metadata area on (what the program wrote with
    /// `bpf_xdp_adjust_meta`, then the frame).
    pub fn test_run_data(&self, frame: &[u8], repeat: u32) -> Result<(TestRun, Vec<u8>), XdpError> {
        use aya::programs::{TestRun as _, TestRunOptions};
        let err = |reason: String| XdpError::Load(format!("{}: {reason}", self.program));
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat: repeat.max(1),
            ..TestRunOptions::default()
        };
        let run_err = |e: aya::programs::ProgramError| err(format!("BPF_PROG_TEST_RUN: {e}"));
        let (run, size) = match self.ebpf.program(self.program) {
            Some(Program::Xdp(xdp)) => {
                let result = xdp.test_run(opts).map_err(run_err)?;
                let run = TestRun {
                    verdict: Verdict::from_action(result.return_value),
                    per_run: result.duration,
                };
                (run, result.data_size_out)
            }
            Some(Program::SchedClassifier(tc)) => {
                let result = tc.test_run(opts).map_err(run_err)?;
                let run = TestRun {
                    verdict: Verdict::from_tc(result.return_value),
                    per_run: result.duration,
                };
                (run, result.data_size_out)
            }
            Some(_) => return Err(err("neither XDP nor tc".into())),
            None => return Err(err("not in the object".into())),
        };
        out.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        Ok((run, out))
    }

    /// The loaded object, for maps a program adds beyond the shared ones.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// An error's message followed by its sources' (aya's syscall errors say which call failed, and
/// their source says why: "Device or resource busy").
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Loads program `name` of `ebpf` (XDP or tc) into the kernel, unless it is loaded already.
fn load_program(ebpf: &mut Ebpf, name: &str) -> Result<(), XdpError> {
    let load_err = |e: aya::programs::ProgramError| XdpError::Load(format!("{name}: {e}"));
    match ebpf.program_mut(name) {
        Some(Program::Xdp(p)) if p.fd().is_err() => p.load().map_err(load_err),
        Some(Program::SchedClassifier(p)) if p.fd().is_err() => p.load().map_err(load_err),
        Some(Program::Xdp(_) | Program::SchedClassifier(_)) => Ok(()),
        Some(_) => Err(XdpError::Load(format!("{name} is neither XDP nor tc"))),
        None => Err(XdpError::Load(format!("no program {name} in the object"))),
    }
}

/// What a program decided for a packet (XDP's actions; tc's verdicts as tcx reads them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Aborted,
    Drop,
    Pass,
    Tx,
    Redirect,
    /// tc: no verdict, the next program in the chain decides (`TCX_NEXT`).
    Next,
    /// A value neither defines.
    Other(u32),
}

impl Verdict {
    /// The verdict of an `xdp_action` value.
    pub fn from_action(action: u32) -> Self {
        match action {
            0 => Self::Aborted,
            1 => Self::Drop,
            2 => Self::Pass,
            3 => Self::Tx,
            4 => Self::Redirect,
            n => Self::Other(n),
        }
    }

    /// The verdict of a tc program's return value, as tcx reads it (`TCX_PASS` 0, `TCX_DROP` 2,
    /// `TCX_REDIRECT` 7, `TCX_NEXT` -1 and anything else).
    pub fn from_tc(value: u32) -> Self {
        match value {
            0 => Self::Pass,
            2 => Self::Drop,
            7 => Self::Redirect,
            _ => Self::Next,
        }
    }
}

/// The outcome of [`XdpProgram::test_run`].
#[derive(Clone, Copy, Debug)]
pub struct TestRun {
    pub verdict: Verdict,
    /// The kernel's mean time per run.
    pub per_run: std::time::Duration,
}

/// A snapshot of the XDP counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    values: [u64; Stat::ALL.len()],
}

impl Counters {
    pub fn get(&self, stat: Stat) -> u64 {
        self.values[stat as usize]
    }
}

impl core::fmt::Display for Counters {
    /// `seen=.. matched=.. matched_bytes=.. malformed=..`, the form tests and people read.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, stat) in Stat::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}={}", stat.name(), self.values[*stat as usize])?;
        }
        Ok(())
    }
}
