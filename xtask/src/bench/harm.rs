//! Harm to production: online nginx's saturated keep-alive throughput without tcpcopy, with
//! tcpcopy attached but replaying only 1% of sessions (`-r 1`: the XDP program copies only
//! that 1%, the rest costs it a parse and a hash), and with tcpcopy replaying everything; three times each, alternating, in one
//! run, and the median of each (a noisy neighbour on the machine hits one run, not the figure).
//! Also the online host's extra CPU per request: tcpcopy's own and its XDP program's (the
//! kernel's BPF run-time statistics, switched on for the run and restored after).

use std::fmt::Write as _;

use tcpcopy_testbed::{Testbed, rig::start_tcpcopy};

use super::rig::{Wrk, cpu_seconds, percent};

/// Connections of the saturating load.
const CONNECTIONS: u32 = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum State {
    Detached,
    CaptureOnly,
    Replaying,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Detached => "tcpcopy not running",
            State::CaptureOnly => "tcpcopy attached, replaying 1% (-r 1)",
            State::Replaying => "tcpcopy attached, replaying all",
        }
    }
}

pub struct Sample {
    pub state: State,
    pub rate: f64,
    /// tcpcopy's CPU microseconds per online request.
    pub tcpcopy_us: f64,
    /// The XDP program's nanoseconds per online request (if the kernel's BPF stats worked).
    pub xdp_ns: Option<f64>,
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

/// (run_time_ns, run_cnt) of the newest loaded program named `tcpcopy_capture`.
fn xdp_runtime() -> Option<(u64, u64)> {
    let json = tcpcopy_testbed::output("bpftool", &["-j", "prog", "show"]).ok()?;
    let number = |obj: &str, key: &str| -> Option<u64> {
        let at = obj.find(&format!("\"{key}\":"))? + key.len() + 3;
        let digits: String = obj[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    json.split("},{")
        .filter(|o| o.contains("\"name\":\"tcpcopy_capture\""))
        .filter_map(|o| Some((number(o, "id")?, o)))
        .max_by_key(|(id, _)| *id)
        .and_then(|(_, o)| Some((number(o, "run_time_ns")?, number(o, "run_cnt")?)))
}

pub fn run(bed: &Testbed) -> anyhow::Result<Vec<Sample>> {
    let _stats = BpfStats::on();
    let mut samples = Vec::new();
    for round in 0..3 {
        for state in [State::Detached, State::CaptureOnly, State::Replaying] {
            let mut tcpcopy = match state {
                State::Detached => None,
                State::CaptureOnly => Some(start_tcpcopy(bed, &["-r", "1"])),
                State::Replaying => Some(start_tcpcopy(bed, &[])),
            };
            let t0 = tcpcopy.as_ref().map(|t| cpu_seconds(t.pid()));
            let x0 = tcpcopy.as_ref().and_then(|_| xdp_runtime());
            let path = format!("harm-{round}-{}", state as u8);
            let (rate, took) = Wrk {
                connections: CONNECTIONS,
                threads: 2,
                close: false,
                script: None,
                path: &path,
            }
            .run(bed)?;
            let requests = rate * took.as_secs_f64();
            let tcpcopy_us = match (&tcpcopy, t0) {
                (Some(t), Some(t0)) => (cpu_seconds(t.pid()) - t0) * 1e6 / requests,
                _ => 0.0,
            };
            #[expect(clippy::cast_precision_loss, reason = "nanosecond totals")]
            let xdp_ns = match (x0, xdp_runtime()) {
                (Some((ns0, _)), Some((ns1, _))) if ns1 > ns0 => {
                    Some((ns1 - ns0) as f64 / requests)
                }
                _ => None,
            };
            if let Some(t) = tcpcopy.as_mut() {
                t.finish(std::time::Duration::from_secs(20))?;
            }
            println!("    {:<40} {rate:>8.0} req/s", state.name());
            samples.push(Sample {
                state,
                rate,
                tcpcopy_us,
                xdp_ns,
            });
        }
    }
    Ok(samples)
}

fn median(samples: &[Sample], state: State, f: impl Fn(&Sample) -> f64) -> f64 {
    let mut v: Vec<f64> = samples.iter().filter(|s| s.state == state).map(f).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn table(samples: &[Sample]) -> String {
    let base = median(samples, State::Detached, |s| s.rate);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| online nginx, {CONNECTIONS} keep-alive connections, saturated | req/s (each run) | median | vs not running | tcpcopy CPU per request | XDP program per request |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: |");
    for state in [State::Detached, State::CaptureOnly, State::Replaying] {
        let runs: Vec<String> = samples
            .iter()
            .filter(|s| s.state == state)
            .map(|s| format!("{:.0}", s.rate))
            .collect();
        let rate = median(samples, state, |s| s.rate);
        let (cpu, xdp) = if state == State::Detached {
            ("-".to_owned(), "-".to_owned())
        } else {
            let xdp = if samples
                .iter()
                .any(|s| s.state == state && s.xdp_ns.is_some())
            {
                format!(
                    "{:.0} ns",
                    median(samples, state, |s| s.xdp_ns.unwrap_or(0.0))
                )
            } else {
                "n/a".to_owned()
            };
            (
                format!("{:.1} µs", median(samples, state, |s| s.tcpcopy_us)),
                xdp,
            )
        };
        let _ = writeln!(
            md,
            "| {} | {} | {rate:.0} | {} | {cpu} | {xdp} |",
            state.name(),
            runs.join(", "),
            percent(rate, base)
        );
    }
    md
}
