//! Worker threads: one per receive queue (or `--workers`), each pinned to a core and running its
//! own replay loop with its own engine, frame ring, AF_XDP transmit queue and intercept
//! connections. Nothing is shared on the packet path:
//!
//! - the XDP program puts each selected frame into ring `hash(addresses, ports) % workers`, so
//!   one worker sees all of a connection, whatever queue or CPU its packets arrive on (NIC
//!   hashing, irqbalance moving interrupts, or a single-queue veth); with `--mirror` frames go to
//!   the AF_XDP socket of their queue and worker `w` owns the queues `q % workers == w` (the NIC
//!   keeps a connection on one queue); with `--mirror --compare` (both directions, which RSS may
//!   put on different queues) a frame of a connection another worker owns goes to that worker's
//!   ring instead;
//! - each worker hands out client ports from its own share (`tcpcopy_engine::WorkerShare`), so
//!   workers never pick the same 4-tuple;
//! - each worker has its own connections to every intercept and registers its sessions there;
//!   intercept routes every reply to the connection that registered its client, so replies reach
//!   the owning worker directly, with no hop through another thread.
//!
//! The main thread only attaches the program, prints the summed counters and tells the workers
//! to stop (`tcpcopy_host::workers`, shared with intercept).

use anyhow::Context as _;
use tcpcopy_engine::Engine;
use tcpcopy_host::workers;

use crate::{
    replay::{self, Source},
    report::{Snapshot, WorkerCtx},
    send::{SendMode, Sender},
};

/// What a worker is given to set itself up on its own thread.
pub struct Plan {
    pub engine: tcpcopy_engine::Config,
    pub send: SendMode,
    pub control: crate::link::Control,
    /// `--session-log`, shared by the workers.
    pub records: Option<std::sync::Arc<crate::sessions::SessionLog>>,
    /// `--compare`, shared by the workers.
    pub compare: Option<std::sync::Arc<crate::compare::Settings>>,
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
        let sender = Sender::new(plan.send, &targets, queue, plan.engine.mtu)
            .context("setting up the sender for replayed packets")?;
        let mut config = plan.engine;
        let largest = sender.max_packet();
        if config.mtu > largest {
            if queue == 0 {
                log::info!(
                    "replayed packets of at most {largest} bytes, what an AF_XDP frame holds (the path takes {}; --send raw sends packets of the whole MTU)",
                    config.mtu
                );
            }
            config.mtu = largest;
        }
        let engine = Engine::new(config)?;
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
        &plan.control,
        plan.records,
        plan.compare,
        &mut ctx,
    ))
}
