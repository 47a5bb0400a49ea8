//! `tcpcopy`: attaches the capture XDP program to the online host's interface and reports what it
//! selects. Replay to the test server is built on top of this capture path.

mod cli;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tcpcopy_common::{maps::TCPCOPY_PROGRAM, report::report_until_signal, xdp::XdpProgram};

/// The XDP object built by build.rs from tcpcopy-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcpcopy-xdp"));

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = cli::Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcpcopy: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    let mappings = cli.mappings()?;
    let interval = cli.stats_interval()?;
    let mut ports: Vec<u16> = mappings.iter().map(|m| m.online_port).collect();
    ports.sort_unstable();
    ports.dedup();

    let mut program = XdpProgram::load(OBJECT, TCPCOPY_PROGRAM)?;
    program.set_ports(&ports)?;
    let mode = program
        .attach(&cli.iface, cli.skb_mode)
        .with_context(|| format!("capture interface {}", cli.iface))?;
    for m in &mappings {
        log::info!("copying requests to port {} -> {}", m.online_port, m.target);
    }
    println!("attached iface={} mode={mode} ports={ports:?}", cli.iface);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(report_until_signal(&program, interval))?;
    Ok(())
}
