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
    let mut ticker = tokio::time::interval(interval.unwrap_or(Duration::from_secs(3600)));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = ticker.tick() => {
                if interval.is_some() {
                    println!("stats {}", program.counters()?);
                }
            }
        }
    }
    let last = program.counters()?;
    println!("final {last}");
    Ok(last)
}
