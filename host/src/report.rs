//! Timers of the run loops of both binaries: the `stats` ticker and optional deadlines.

use std::time::Duration;

use tokio::time::{Instant, Interval};

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
