//! What each worker publishes ([`Snapshot`]) and tcpcopy's counters line: the XDP program's
//! counters (or the file's progress), then the workers' counters summed, then how many packets
//! each worker captured.

use std::fmt;

use tcpcopy_engine::Stats;
use tcpcopy_host::workers::{self, Pool};
use tcpcopy_xsk::program::XdpProgram;

/// What one worker last published.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub engine: Stats,
    pub send_errors: u64,
    pub links_up: usize,
    pub links: usize,
    /// Links up that speak protocol version 7.
    pub links_v7: usize,
    /// Connections the intercepts refused before they carried anything.
    pub link_refusals: u64,
    pub registrations: u64,
    pub unsent_registrations: u64,
    pub unregistrable: u64,
    /// Offline replay: how far into the file.
    pub progress: Option<String>,
}

impl Snapshot {
    fn add(&mut self, o: &Snapshot) {
        self.engine += &o.engine;
        self.send_errors += o.send_errors;
        self.links_up += o.links_up;
        self.links += o.links;
        self.links_v7 += o.links_v7;
        self.link_refusals += o.link_refusals;
        self.registrations += o.registrations;
        self.unsent_registrations += o.unsent_registrations;
        self.unregistrable += o.unregistrable;
        if o.progress.is_some() {
            self.progress.clone_from(&o.progress);
        }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} send_errors={} intercept_links={}/{} v7_links={} link_refusals={} registrations={} unsent_registrations={} unregistrable={}",
            self.engine,
            self.send_errors,
            self.links_up,
            self.links,
            self.links_v7,
            self.link_refusals,
            self.registrations,
            self.unsent_registrations,
            self.unregistrable
        )
    }
}

/// The sum of the workers' counters, and each worker's captured packets.
pub fn total(slots: &[Snapshot]) -> (Snapshot, Vec<u64>) {
    let mut sum = Snapshot::default();
    for s in slots {
        sum.add(s);
    }
    (sum, slots.iter().map(|s| s.engine.captured).collect())
}

/// A replay worker's handle on its thread (publishes [`Snapshot`]s).
pub type WorkerCtx = workers::Ctx<Snapshot>;

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
