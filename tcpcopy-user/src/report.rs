//! tcpcopy's counters line: the XDP program's counters (or the file's progress), then the
//! workers' counters summed, then how many packets each worker captured.

use tcpcopy_host::workers::Pool;
use tcpcopy_xsk::program::XdpProgram;

use crate::workers::{Snapshot, total};

/// The `stats`/`final` line.
pub fn line(program: Option<&XdpProgram>, pool: &Pool<Snapshot>) -> String {
    let (total, per_worker) = total(&pool.slots.all());
    let head = match (program, &total.progress) {
        (Some(p), _) => p.counters().map(|c| c.to_string()).unwrap_or_default(),
        (None, Some(progress)) => progress.clone(),
        (None, None) => String::new(),
    };
    let per_worker: Vec<String> = per_worker.iter().map(u64::to_string).collect();
    format!("{head} {total} captured_by_worker={}", per_worker.join(","))
}
