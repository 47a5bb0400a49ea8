//! Worker threads: one per receive queue (or `--workers`), each pinned to a core and running its
//! own replay loop with its own engine, frame ring, AF_XDP transmit queue and intercept
//! connections. Nothing is shared on the packet path:
//!
//! - the XDP program puts each selected frame into ring `hash(addresses, ports) % workers`, so
//!   one worker sees all of a connection, whatever queue or CPU its packets arrive on (NIC
//!   hashing, irqbalance moving interrupts, or a single-queue veth); with `--mirror` frames go to
//!   the AF_XDP socket of their queue and worker `w` owns the queues `q % workers == w` (the NIC
//!   keeps a connection on one queue);
//! - each worker hands out client ports from its own share (`tcpcopy_engine::WorkerShare`), so
//!   workers never pick the same 4-tuple;
//! - each worker has its own connections to every intercept and registers its sessions there;
//!   intercept routes every reply to the connection that registered its client, so replies reach
//!   the owning worker directly, with no hop through another thread.
//!
//! The main thread only attaches the program, prints the summed counters and tells the workers
//! to stop (`tcpcopy_host::workers`, shared with intercept).

use std::{fmt, net::SocketAddr};

use anyhow::Context as _;
use tcpcopy_engine::{Engine, Stats};
use tcpcopy_host::workers;

use crate::{
    replay::{self, Source},
    send::{SendMode, Sender},
};

/// What one worker last published.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub engine: Stats,
    pub send_errors: u64,
    pub links_up: usize,
    pub links: usize,
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
            "{} send_errors={} intercept_links={}/{} registrations={} unsent_registrations={} unregistrable={}",
            self.engine,
            self.send_errors,
            self.links_up,
            self.links,
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

pub type WorkerCtx = workers::Ctx<Snapshot>;

/// What a worker is given to set itself up on its own thread.
pub struct Plan {
    pub engine: tcpcopy_engine::Config,
    pub send: SendMode,
    pub intercepts: Vec<SocketAddr>,
    pub connections: u16,
    /// Builds this worker's capture source on its thread (its runtime entered).
    pub source: workers::SetupFn<Source>,
}

/// What a worker says once set up: how it sends (`af_xdp-copy`, `raw`, ...) and receives
/// (`ring`, `af_xdp-copy`, `af_xdp-zerocopy`, `file`).
pub struct Started {
    pub send: &'static str,
    pub capture: &'static str,
}

/// Starts one worker per plan; returns once each is set up.
pub fn start(plans: Vec<Plan>) -> anyhow::Result<(workers::Pool<Snapshot>, Vec<Started>)> {
    workers::start(plans, worker)
}

/// A worker thread: sets up its runtime, capture source, sender and engine, says it is ready,
/// and runs the replay loop.
fn worker(plan: Plan, mut ctx: WorkerCtx, ready: workers::Ready<Started>) -> anyhow::Result<()> {
    let queue = u32::try_from(ctx.index).unwrap_or(u32::MAX);
    let Some((runtime, (source, sender, engine), ready)) = workers::setup(ready, || {
        let source = (plan.source)()?;
        let targets: Vec<std::net::IpAddr> =
            plan.engine.mappings.iter().map(|m| m.target.ip()).collect();
        let sender = Sender::new(plan.send, &targets, queue)
            .context("setting up the sender for replayed packets")?;
        let engine = Engine::new(plan.engine)?;
        Ok((source, sender, engine))
    }) else {
        return Ok(());
    };
    let capture = match &source {
        Source::Live(c) => c.describe(),
        Source::Offline(_) => "file",
    };
    ready.ok(Started {
        send: sender.describe(),
        capture,
    });
    runtime.block_on(replay::run(
        engine,
        source,
        sender,
        &plan.intercepts,
        plan.connections,
        &mut ctx,
    ))
}
