//! Harm to production: online nginx's saturated keep-alive throughput without tcpcopy, with
//! tcpcopy attached but replaying only 1% of sessions (`-r 1`: the XDP program copies only
//! that 1%, the rest costs it a parse and a hash), with tcpcopy replaying everything, and with
//! only an empty XDP program attached (what the interface's XDP path costs by itself);
//! [`ROUNDS`] rounds of the four, alternating (each round starting one state further, so no
//! state always runs first or last), in one run. The figure is the median of each state over
//! the rounds, with the spread (lowest and highest round) and the same round's ratio to the
//! detached rate: a noisy neighbour on the machine hits some rounds, not the figure.
//!
//! Also the online host's extra CPU per request, in two parts measured apart:
//! - the XDP program's run time per request (the kernel's BPF run-time statistics,
//!   `kernel.bpf_stats_enabled` switched on for the run and restored after), and the packets
//!   it ran on per request;
//! - tcpcopy's own CPU per request beyond what it uses idle: its threads' on-CPU time
//!   (`/proc/PID/task/*/schedstat`, nanoseconds) during wrk's run, less its idle rate (measured
//!   for [`IDLE`] just before, with no traffic) times the run's length. Its fixed costs (the
//!   ring sweep every millisecond, the stats lines) are no cost per request, and without this
//!   subtraction they were spread over however few requests the loaded machine served.

use std::{fmt::Write as _, time::Duration};

use tcpcopy_testbed::{Host, Testbed, rig::start_tcpcopy};

use super::rig::{Wrk, cpu_ns, percent};

/// Connections of the saturating load.
const CONNECTIONS: u32 = 32;

/// The online load of a set of rounds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// [`CONNECTIONS`] keep-alive connections: `-r 1` replays a whole connection or none, so
    /// each round replays 0, 1/32, 2/32, .. of the requests (the table says which share).
    KeepAlive,
    /// One request per connection (`Connection: close`): `-r 1` replays about 1% of them, the
    /// production mix `-r` is made for.
    OneRequest,
}

const LOADS: [Load; 2] = [Load::KeepAlive, Load::OneRequest];

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::KeepAlive => "keep-alive connections",
            Load::OneRequest => "connections at a time, one request each",
        }
    }
}
/// Alternating rounds of the four states.
const ROUNDS: usize = 7;
/// How long tcpcopy's idle CPU is measured before each loaded run.
const IDLE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum State {
    Detached,
    /// An XDP program that passes every frame attached to online's interface, no tcpcopy: what
    /// the interface's XDP path costs by itself (on veth, as in the testbed, frames take
    /// another receive path once any XDP program is attached).
    EmptyProgram,
    CaptureOnly,
    Replaying,
}

const STATES: [State; 4] = [
    State::Detached,
    State::EmptyProgram,
    State::CaptureOnly,
    State::Replaying,
];

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Detached => "tcpcopy not running",
            State::EmptyProgram => "an empty XDP program attached, no tcpcopy",
            State::CaptureOnly => "tcpcopy attached, replaying 1% (-r 1)",
            State::Replaying => "tcpcopy attached, replaying all",
        }
    }
}

pub struct Sample {
    pub load: Load,
    pub round: usize,
    pub state: State,
    pub rate: f64,
    /// tcpcopy's CPU microseconds per online request beyond its idle use.
    pub tcpcopy_us: f64,
    /// The XDP program's nanoseconds per online request, and its runs (packets) per request
    /// (if the kernel's BPF stats worked).
    pub xdp_ns: Option<f64>,
    pub xdp_runs: Option<f64>,
    /// The share of the program's selected frames it copied (tcpcopy's `copied` over
    /// `copied + unselected`): what `-r` replayed of this round's traffic.
    pub replayed: Option<f64>,
}

/// `kernel.bpf_stats_enabled` on for the benchmark, back to what it was after.
struct BpfStats(Option<String>);

impl BpfStats {
    fn on() -> Self {
        let path = "/proc/sys/kernel/bpf_stats_enabled";
        let old = std::fs::read_to_string(path).ok();
        if old.is_some() && std::fs::write(path, "1").is_err() {
            return Self(None);
        }
        Self(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", old.trim());
        }
    }
}

/// The first number after `"key":` in a JSON text.
fn number(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The id of the XDP program attached to the online host's interface (tcpcopy's, this run's:
/// not another tcpcopy's loaded elsewhere on the machine).
fn attached_xdp(bed: &Testbed) -> Option<u64> {
    let id = bed
        .xdp_program(Host::Online, tcpcopy_testbed::IFACE)
        .ok()??;
    Some(u64::from(id))
}

/// (run_time_ns, run_cnt) of the BPF program `id`.
fn runtime(id: u64) -> Option<(u64, u64)> {
    let json =
        tcpcopy_testbed::output("bpftool", &["-j", "prog", "show", "id", &id.to_string()]).ok()?;
    // bpftool leaves both out of a program that has not run yet.
    number(&json, "id")?;
    Some((
        number(&json, "run_time_ns").unwrap_or(0),
        number(&json, "run_cnt").unwrap_or(0),
    ))
}

/// The object of the XDP program that passes every frame (`ebpf/src/bin/xdp-pass.rs`), where
/// the release build of `tcpcopy` left it for its library to embed: the out directory of that
/// build's build script, as cargo reports it (`--message-format=json`; the same build as the
/// benchmark's, done already, so cargo only reports).
fn pass_object() -> Option<std::path::PathBuf> {
    let messages = tcpcopy_testbed::output(
        "cargo",
        &["build", "--release", "--workspace", "--message-format=json"],
    )
    .ok()?;
    messages
        .lines()
        .filter(|l| l.contains(r#""reason":"build-script-executed""#) && l.contains("#tcpcopy@"))
        .find_map(|l| {
            let key = r#""out_dir":""#;
            let dir = &l[l.find(key)? + key.len()..];
            Some(std::path::Path::new(&dir[..dir.find('"')?]).join("xdp-pass"))
        })
        .filter(|p| p.exists())
}

/// The empty XDP program on online's interface, detached when dropped.
struct EmptyProgram(String);

impl EmptyProgram {
    fn attach(bed: &Testbed, object: &std::path::Path) -> anyhow::Result<Self> {
        let ns = bed.ns(Host::Online);
        let object = object.to_str().unwrap_or_default();
        tcpcopy_testbed::run(
            "ip",
            &[
                "-n",
                &ns,
                "link",
                "set",
                "dev",
                tcpcopy_testbed::IFACE,
                "xdp",
                "obj",
                object,
                "sec",
                "xdp",
            ],
        )?;
        Ok(Self(ns))
    }
}

impl Drop for EmptyProgram {
    fn drop(&mut self) {
        let _ = tcpcopy_testbed::run(
            "ip",
            &[
                "-n",
                &self.0,
                "link",
                "set",
                "dev",
                tcpcopy_testbed::IFACE,
                "xdp",
                "off",
            ],
        );
    }
}

/// The rounds' samples, and the load average (1, 5, 15 minutes) before and after them.
pub struct Harm {
    pub samples: Vec<Sample>,
    pub load: [String; 2],
}

/// `/proc/loadavg`'s three load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(bed: &Testbed) -> anyhow::Result<Harm> {
    let before = load_average();
    let _stats = BpfStats::on();
    let pass = pass_object();
    if pass.is_none() {
        println!(
            "    (no xdp-pass object in the release build's out directory: the empty-program rounds left out)"
        );
    }
    let mut samples = Vec::new();
    for load in LOADS {
        rounds(bed, load, pass.as_deref(), &mut samples)?;
    }
    Ok(Harm {
        samples,
        load: [before, load_average()],
    })
}

/// The rounds of one load, each state in turn, into `samples`.
fn rounds(
    bed: &Testbed,
    load: Load,
    pass: Option<&std::path::Path>,
    samples: &mut Vec<Sample>,
) -> anyhow::Result<()> {
    println!("  {}:", load.name());
    for round in 0..ROUNDS {
        for k in 0..STATES.len() {
            let state = STATES[(round + k) % STATES.len()];
            let empty = match state {
                State::EmptyProgram => match pass {
                    Some(object) => Some(EmptyProgram::attach(bed, object)?),
                    None => continue,
                },
                _ => None,
            };
            let mut tcpcopy = match state {
                State::Detached | State::EmptyProgram => None,
                State::CaptureOnly => Some(start_tcpcopy(bed, &["-r", "1"])),
                State::Replaying => Some(start_tcpcopy(bed, &[])),
            };
            // tcpcopy's idle use, just before the load.
            #[expect(clippy::cast_precision_loss, reason = "nanosecond totals")]
            let idle_rate = tcpcopy.as_ref().map(|t| {
                let (c0, t0) = (cpu_ns(t.pid()), std::time::Instant::now());
                std::thread::sleep(IDLE);
                cpu_ns(t.pid()).saturating_sub(c0) as f64 / t0.elapsed().as_secs_f64()
            });
            let c0 = tcpcopy.as_ref().map(|t| cpu_ns(t.pid()));
            let program = (state != State::Detached)
                .then(|| attached_xdp(bed))
                .flatten();
            let x0 = program.and_then(runtime);
            let path = format!("harm-{}-{round}-{}", load as u8, state as u8);
            let (rate, took) = Wrk {
                connections: CONNECTIONS,
                threads: 2,
                close: load == Load::OneRequest,
                script: None,
                path: &path,
            }
            .run(bed)?;
            let requests = rate * took.as_secs_f64();
            #[expect(clippy::cast_precision_loss, reason = "nanosecond totals")]
            let tcpcopy_us = match (&tcpcopy, c0, idle_rate) {
                (Some(t), Some(c0), Some(idle)) => {
                    let used =
                        cpu_ns(t.pid()).saturating_sub(c0) as f64 - idle * took.as_secs_f64();
                    used / 1e3 / requests
                }
                _ => 0.0,
            };
            #[expect(clippy::cast_precision_loss, reason = "nanosecond totals")]
            let (xdp_ns, xdp_runs) = match (x0, program.and_then(runtime)) {
                (Some((ns0, n0)), Some((ns1, n1))) if ns1 > ns0 => (
                    Some((ns1 - ns0) as f64 / requests),
                    Some((n1 - n0) as f64 / requests),
                ),
                _ => (None, None),
            };
            if xdp_ns.is_none() && state != State::Detached {
                println!("    (the XDP program's run time not read: program id {program:?})");
            }
            let mut replayed = None;
            let copied = match tcpcopy.as_mut() {
                Some(t) => {
                    let last = t.finish(Duration::from_secs(20))?;
                    let count = |key: &str| {
                        last.split_whitespace()
                            .find_map(|kv| kv.strip_prefix(key)?.parse::<u64>().ok())
                            .unwrap_or(0)
                    };
                    let (copied, unselected) = (count("copied="), count("unselected="));
                    #[expect(clippy::cast_precision_loss, reason = "frame counts")]
                    if copied + unselected > 0 {
                        replayed = Some(copied as f64 / (copied + unselected) as f64);
                    }
                    format!(
                        ", frames copied {copied} and left unselected {unselected} by the program, tcpcopy {tcpcopy_us:.2} µs (idle {:.2}% of a core) and the program {:.0} ns a request",
                        idle_rate.unwrap_or(0.0) / 1e7,
                        xdp_ns.unwrap_or(0.0)
                    )
                }
                None => xdp_ns.map_or_else(String::new, |ns| {
                    format!(", the program {ns:.0} ns a request")
                }),
            };
            drop(empty);
            println!(
                "    round {round} {:<40} {rate:>8.0} req/s{copied}",
                state.name()
            );
            samples.push(Sample {
                load,
                round,
                state,
                rate,
                tcpcopy_us,
                xdp_ns,
                xdp_runs,
                replayed,
            });
        }
    }
    Ok(())
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

fn median(samples: &[&Sample], state: State, f: impl Fn(&Sample) -> f64) -> f64 {
    median_of(
        samples
            .iter()
            .filter(|s| s.state == state)
            .map(|s| f(s))
            .collect(),
    )
}

/// Each round's rate of `state` over the same round's detached rate.
fn paired(samples: &[&Sample], state: State, which: impl Fn(&Sample) -> bool) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.state == state && which(s))
        .filter_map(|s| {
            let base = samples
                .iter()
                .find(|b| b.round == s.round && b.state == State::Detached)?;
            (base.rate > 0.0).then(|| s.rate / base.rate)
        })
        .collect()
}

pub fn table(harm: &Harm) -> String {
    let mut md = String::new();
    for load in LOADS {
        let samples: Vec<&Sample> = harm.samples.iter().filter(|s| s.load == load).collect();
        if !samples.is_empty() {
            load_table(&mut md, load, &samples);
        }
    }
    let _ = writeln!(
        md,
        "Load average (1, 5, 15 min) before the rounds: {}; after: {}.",
        harm.load[0], harm.load[1]
    );
    md
}

/// The table of one load's rounds, and what `-r 1` cost in the rounds where it replayed
/// nothing (the price of being attached).
fn load_table(md: &mut String, load: Load, samples: &[&Sample]) {
    let base = median(samples, State::Detached, |s| s.rate);
    let rounds = samples.iter().map(|s| s.round + 1).max().unwrap_or(0);
    let _ = writeln!(
        md,
        "| online nginx, {CONNECTIONS} {}, saturated, {rounds} alternating rounds | req/s (each round) | median (lowest-highest) | median vs not running | same round vs not running: median (lowest-highest) | tcpcopy CPU per request beyond idle | XDP program per request (packets) | frames replayed (each round) |",
        load.name()
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for state in STATES {
        let of: Vec<&Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.state == state)
            .collect();
        if of.is_empty() {
            // A state not measured (no empty program object): no row.
            continue;
        }
        let rates: Vec<f64> = of.iter().map(|s| s.rate).collect();
        let runs: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        let (lo, hi) = spread(&rates);
        let rate = median(samples, state, |s| s.rate);
        let (pairs, cpu, xdp) = if state == State::Detached {
            ("-".to_owned(), "-".to_owned(), "-".to_owned())
        } else {
            let p = paired(samples, state, |_| true);
            let (plo, phi) = spread(&p);
            let pairs = format!(
                "{:.1}% ({:.1}-{:.1}%)",
                100.0 * median_of(p),
                100.0 * plo,
                100.0 * phi
            );
            let xdp = if of.iter().any(|s| s.xdp_ns.is_some()) {
                format!(
                    "{:.0} ns ({:.2})",
                    median(samples, state, |s| s.xdp_ns.unwrap_or(0.0)),
                    median(samples, state, |s| s.xdp_runs.unwrap_or(0.0))
                )
            } else {
                "n/a".to_owned()
            };
            let cpu = if state == State::EmptyProgram {
                "-".to_owned()
            } else {
                format!("{:.2} µs", median(samples, state, |s| s.tcpcopy_us))
            };
            (pairs, cpu, xdp)
        };
        let replayed: Vec<String> = of
            .iter()
            .filter_map(|s| s.replayed.map(|r| format!("{:.1}%", 100.0 * r)))
            .collect();
        let replayed = if replayed.is_empty() {
            "-".to_owned()
        } else {
            replayed.join(", ")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {rate:.0} ({lo:.0}-{hi:.0}) | {} | {pairs} | {cpu} | {xdp} | {replayed} |",
            state.name(),
            runs.join(", "),
            percent(rate, base)
        );
    }
    // -r 1 in the rounds where no frame was copied: what being attached costs by itself.
    let idle: Vec<&Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.state == State::CaptureOnly && s.replayed == Some(0.0))
        .collect();
    if idle.is_empty() {
        let _ = writeln!(md, "\n`-r 1` replayed something in every round.\n");
    } else {
        let p = paired(samples, State::CaptureOnly, |s| s.replayed == Some(0.0));
        let (plo, phi) = spread(&p);
        let cost = |f: fn(&Sample) -> f64| median_of(idle.iter().map(|s| f(s)).collect());
        let _ = writeln!(
            md,
            "\n`-r 1` in the {} rounds where it replayed nothing: {:.1}% of the same round's rate without tcpcopy (median; {:.1}-{:.1}%), tcpcopy {:.2} µs and the XDP program {:.0} ns a request beyond idle.\n",
            idle.len(),
            100.0 * median_of(p),
            100.0 * plo,
            100.0 * phi,
            cost(|s| s.tcpcopy_us),
            cost(|s| s.xdp_ns.unwrap_or(0.0)),
        );
    }
    if samples
        .iter()
        .any(|s| s.state == State::EmptyProgram && s.xdp_ns.is_some())
    {
        let _ = writeln!(
            md,
            "The empty program's own run time, {:.0} ns a request, is what the kernel's run-time statistics (two clock reads a run) and the program's dispatch cost by themselves: tcpcopy's program beyond it, `-r 1`: {:.0} ns a request.\n",
            median(samples, State::EmptyProgram, |s| s.xdp_ns.unwrap_or(0.0)),
            median(samples, State::CaptureOnly, |s| s.xdp_ns.unwrap_or(0.0))
                - median(samples, State::EmptyProgram, |s| s.xdp_ns.unwrap_or(0.0)),
        );
    }
}

/// The lowest and highest of `v`.
fn spread(v: &[f64]) -> (f64, f64) {
    (
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(0.0, f64::max),
    )
}
