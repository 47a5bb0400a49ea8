//! The main thread while the workers replay: a `stats ...` line every interval (the XDP
//! program's counters, then the workers' counters summed), `final ...` at the end, which comes
//! with SIGINT or SIGTERM, or when the workers are done (offline replay).

use std::time::Duration;

use anyhow::Context as _;
use tcpcopy_common::{
    report::{tick, ticker},
    xdp::XdpProgram,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::workers::Workers;

fn line(program: Option<&XdpProgram>, workers: &Workers) -> String {
    let (total, per_worker) = workers.report.total();
    let head = match (program, &total.progress) {
        (Some(p), _) => p.counters().map(|c| c.to_string()).unwrap_or_default(),
        (None, Some(progress)) => progress.clone(),
        (None, None) => String::new(),
    };
    let per_worker: Vec<String> = per_worker.iter().map(u64::to_string).collect();
    format!("{head} {total} captured_by_worker={}", per_worker.join(","))
}

/// Runs until a signal or until every worker has ended; then stops and joins the workers and
/// prints the final line. The first error a worker ended with is the result.
pub fn until_done(
    mut workers: Workers,
    program: Option<&XdpProgram>,
    interval: Option<Duration>,
) -> anyhow::Result<()> {
    let runtime = tcpcopy_common::daemon::runtime().context("starting the runtime")?;
    let n = workers.report_len();
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut ticker = ticker(interval).await;
        let mut ended = 0;
        while ended < n {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                e = workers.ended.recv() => match e {
                    Some(_) => ended += 1,
                    None => break,
                },
                () = tick(ticker.as_mut()) => println!("stats {}", line(program, &workers)),
            }
        }
        anyhow::Ok(())
    })?;
    let result = workers.join();
    println!("final {}", line(program, &workers));
    result
}
