//! The common run loop of both binaries: print the XDP counters now and then, stop on a signal.

use std::{println, time::Duration};

use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, Interval},
};

use crate::xdp::{Counters, XdpError, XdpProgram};

/// An interval for the `stats` lines (none: only the final line), its immediate first tick
/// already taken.
pub async fn ticker(interval: Option<Duration>) -> Option<Interval> {
    let mut ticker = interval.map(tokio::time::interval);
    if let Some(t) = ticker.as_mut() {
        t.tick().await;
    }
    ticker
}

/// The ticker's next tick; never, without a ticker.
pub async fn tick(ticker: Option<&mut Interval>) {
    match ticker {
        Some(t) => drop(t.tick().await),
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`; never, without one.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

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
    let mut ticker = ticker(interval).await;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            () = tick(ticker.as_mut()) => println!("stats {}", program.counters()?),
        }
    }
    let last = program.counters()?;
    println!("final {last}");
    Ok(last)
}
