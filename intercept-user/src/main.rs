//! `intercept`: attaches the reply-catching XDP program to the assistant host's interface and
//! reports what it selects. The control channel to tcpcopy is built on top of this path.

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use tcpcopy_common::{maps::INTERCEPT_PROGRAM, report::report_until_signal, xdp::XdpProgram};

/// The XDP object built by build.rs from intercept-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/intercept-xdp"));

#[derive(Debug, Parser)]
#[command(
    name = "intercept",
    version,
    about = "Catches the test server's replies on the assistant host"
)]
struct Cli {
    /// Interface the test server's replies arrive on.
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    iface: String,

    /// Source port(s) of the replies to catch (the test service's ports); may be repeated.
    #[arg(long = "src-port", value_name = "PORT", default_value = "80")]
    src_ports: Vec<u16>,

    /// Attach XDP in generic (SKB) mode instead of trying driver mode first.
    #[arg(long)]
    skb_mode: bool,

    /// Print the counters every SECS seconds (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    stats_interval: u64,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("intercept: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut program = XdpProgram::load(OBJECT, INTERCEPT_PROGRAM)?;
    program.set_ports(&cli.src_ports)?;
    let mode = program
        .attach(&cli.iface, cli.skb_mode)
        .with_context(|| format!("reply interface {}", cli.iface))?;
    println!(
        "attached iface={} mode={mode} ports={:?}",
        cli.iface, cli.src_ports
    );
    let interval = (cli.stats_interval > 0).then(|| Duration::from_secs(cli.stats_interval));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(report_until_signal(&program, interval))?;
    Ok(())
}
