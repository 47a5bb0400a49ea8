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
//! to stop.

use std::{
    fmt,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError, mpsc as std_mpsc},
    thread::JoinHandle,
};

use anyhow::Context as _;
use tcpcopy_engine::{Engine, Stats};
use tokio::sync::{mpsc, watch};

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

/// The workers' latest counters, one slot each.
#[derive(Debug)]
pub struct Report(Mutex<Vec<Snapshot>>);

impl Report {
    fn new(workers: usize) -> Self {
        Self(Mutex::new(vec![Snapshot::default(); workers]))
    }

    /// The sum over the workers, and each worker's captured packets.
    pub fn total(&self) -> (Snapshot, Vec<u64>) {
        let slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sum = Snapshot::default();
        for s in slots.iter() {
            sum.add(s);
        }
        (sum, slots.iter().map(|s| s.engine.captured).collect())
    }
}

/// What a worker's loop needs from its thread.
pub struct WorkerCtx {
    index: usize,
    report: Arc<Report>,
    pub stop: watch::Receiver<bool>,
}

impl WorkerCtx {
    /// Publishes this worker's counters.
    pub fn publish(&self, snap: Snapshot) {
        let mut slots = self.report.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(self.index) {
            *slot = snap;
        }
    }
}

/// What a worker is given to set itself up on its own thread (AF_XDP sockets and readiness
/// registrations belong to the thread that uses them).
pub struct Plan {
    pub engine: tcpcopy_engine::Config,
    pub send: SendMode,
    pub intercepts: Vec<SocketAddr>,
    pub connections: u16,
    /// Builds this worker's capture source on its thread (its runtime entered).
    pub source: Box<dyn FnOnce() -> anyhow::Result<Source> + Send>,
}

/// The running workers.
pub struct Workers {
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
    stop: watch::Sender<bool>,
    pub report: Arc<Report>,
    /// One message per worker when its loop has ended.
    pub ended: mpsc::UnboundedReceiver<usize>,
    /// How each worker sends (`af_xdp-copy`, `raw`, ...).
    pub send_modes: Vec<&'static str>,
    /// How each worker receives (`ring`, `af_xdp-copy`, `af_xdp-zerocopy`, `file`).
    pub capture_modes: Vec<&'static str>,
}

/// Starts one worker per plan and waits until each is set up (or one failed to).
pub fn start(plans: Vec<Plan>) -> anyhow::Result<Workers> {
    let n = plans.len();
    let report = Arc::new(Report::new(n));
    let (stop, stop_rx) = watch::channel(false);
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut threads = Vec::new();
    for (index, plan) in plans.into_iter().enumerate() {
        let ctx = WorkerCtx {
            index,
            report: report.clone(),
            stop: stop_rx.clone(),
        };
        let core = (cores.len() > 1).then(|| cores[index % cores.len()]);
        let ready = ready_tx.clone();
        let ended = ended_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || {
                if let Some(core) = core
                    && !core_affinity::set_for_current(core)
                {
                    log::warn!("worker {index}: could not pin to core {}", core.id);
                }
                let result = worker(plan, ctx, &ready);
                let _ = ended.send(index);
                result
            })
            .context("starting a worker thread")?;
        threads.push(thread);
    }
    drop(ready_tx);
    let mut send_modes = vec![""; n];
    let mut capture_modes = vec![""; n];
    let mut workers = Workers {
        threads,
        stop,
        report,
        ended,
        send_modes: Vec::new(),
        capture_modes: Vec::new(),
    };
    for _ in 0..n {
        match ready_rx.recv() {
            Ok(Ok(r)) => {
                send_modes[r.index] = r.send;
                capture_modes[r.index] = r.capture;
            }
            Ok(Err(e)) => {
                workers.stop();
                return Err(e);
            }
            Err(_) => {
                // A worker ended before saying it was ready: its result says why.
                return Err(workers
                    .join()
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("a worker ended during start-up")));
            }
        }
    }
    workers.send_modes = send_modes;
    workers.capture_modes = capture_modes;
    Ok(workers)
}

/// A worker's word that it is set up.
struct Started {
    index: usize,
    send: &'static str,
    capture: &'static str,
}

type Ready = std_mpsc::Sender<anyhow::Result<Started>>;

/// A worker thread: sets up its runtime, capture source, sender and engine, says it is ready,
/// and runs the replay loop.
fn worker(plan: Plan, mut ctx: WorkerCtx, ready: &Ready) -> anyhow::Result<()> {
    let index = ctx.index;
    let setup = || -> anyhow::Result<_> {
        let runtime = tcpcopy_common::daemon::runtime().context("starting the runtime")?;
        let guard = runtime.enter();
        let source = (plan.source)()?;
        let targets: Vec<std::net::IpAddr> =
            plan.engine.mappings.iter().map(|m| m.target.ip()).collect();
        let queue = u32::try_from(index).unwrap_or(u32::MAX);
        let sender = Sender::new(plan.send, &targets, queue)
            .context("setting up the sender for replayed packets")?;
        let engine = Engine::new(plan.engine)?;
        drop(guard);
        Ok((runtime, source, sender, engine))
    };
    let (runtime, source, sender, engine) = match setup() {
        Ok(parts) => parts,
        Err(e) => {
            let e = e.context(format!("worker {index}"));
            let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
            return Ok(());
        }
    };
    let capture = match &source {
        Source::Live(c) => match c.xsk.as_ref().map(|x| x.mode) {
            Some(tcpcopy_common::xsk::XskMode::ZeroCopy) => "af_xdp-zerocopy",
            Some(tcpcopy_common::xsk::XskMode::Copy) => "af_xdp-copy",
            None => "ring",
        },
        Source::Offline(_) => "file",
    };
    let _ = ready.send(Ok(Started {
        index,
        send: sender.describe(),
        capture,
    }));
    runtime.block_on(replay::run(
        engine,
        source,
        sender,
        &plan.intercepts,
        plan.connections,
        &mut ctx,
    ))
}

impl Workers {
    /// How many workers there are.
    pub fn report_len(&self) -> usize {
        self.threads.len()
    }

    /// Tells every worker to stop.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for every worker to end; the first error any of them ended with.
    pub fn join(&mut self) -> anyhow::Result<()> {
        self.stop();
        let mut first = Ok(());
        for t in self.threads.drain(..) {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}
