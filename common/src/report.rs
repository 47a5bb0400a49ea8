//! The common run loop of both binaries: print the XDP counters now and then, stop on a signal.

use std::{println, time::Duration};

use tokio::signal::unix::{SignalKind, signal};

use crate::xdp::{Counters, XdpError, XdpProgram};

/// Prints `stats <counters>` every `interval` (if any) until SIGINT or SIGTERM, then prints and
/// returns the final counters as `final <counters>`.
pub async fn report_until_signal(
    program: &XdpProgram,
    interval: Option<Duration>,
) -> Result<Counters, XdpError> {
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| XdpError::Load(std::format!("signal handler: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| XdpError::Load(std::format!("signal handler: {e}")))?;
    let mut ticker = interval.map(tokio::time::interval);
    if let Some(t) = ticker.as_mut() {
        t.tick().await; // the first tick is immediate
    }
    loop {
        let tick = async {
            match ticker.as_mut() {
                Some(t) => drop(t.tick().await),
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            () = tick => println!("stats {}", program.counters()?),
        }
    }
    let last = program.counters()?;
    println!("final {last}");
    Ok(last)
}
