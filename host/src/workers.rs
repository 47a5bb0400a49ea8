//! Worker threads for both binaries: one per receive queue (or as many as asked), each pinned to a
//! core and running its own current-thread runtime. The main thread starts them, waits until
//! each has set itself up (AF_XDP sockets and readiness registrations belong to the thread that
//! uses them), prints their published counters now and then, and stops them on SIGINT/SIGTERM.

use std::{
    boxed::Box,
    format,
    string::String,
    sync::{Arc, Mutex, PoisonError, mpsc as std_mpsc},
    thread::JoinHandle,
    time::Duration,
    vec,
    vec::Vec,
};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
};

use tcpcopy_abi::maps::MAX_WORKERS;

use crate::report::{tick, ticker};

/// Workers for interface `iface`: `asked` if given (1 to [`MAX_WORKERS`], the rings the XDP
/// programs feed), else one per receive queue, at most one per core and at most
/// [`MAX_WORKERS`].
pub fn count(asked: Option<u16>, iface: &str) -> anyhow::Result<u16> {
    if let Some(n) = asked {
        anyhow::ensure!(
            n > 0 && u32::from(n) <= MAX_WORKERS,
            "--workers {n}: 1 to {MAX_WORKERS}"
        );
        return Ok(n);
    }
    let queues = crate::iface::rx_queues(iface);
    let cores = std::thread::available_parallelism().map_or(1, core::num::NonZero::get);
    let n = queues
        .min(MAX_WORKERS)
        .min(u32::try_from(cores).unwrap_or(u32::MAX))
        .max(1);
    Ok(u16::try_from(n).unwrap_or(1))
}

/// The workers' latest published counters, one slot each.
pub struct Slots<S>(Mutex<Vec<S>>);

impl<S: Clone> Slots<S> {
    /// Every worker's latest counters.
    pub fn all(&self) -> Vec<S> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What a worker's loop gets from its thread.
pub struct Ctx<S> {
    pub index: usize,
    slots: Arc<Slots<S>>,
    /// Changes to `true` when the worker must stop.
    pub stop: watch::Receiver<bool>,
}

impl<S> Ctx<S> {
    /// Publishes this worker's counters.
    pub fn publish(&self, s: S) {
        let mut slots = self.slots.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(self.index) {
            *slot = s;
        }
    }
}

/// A worker's word to the main thread that it is set up (with what it tells about itself), or
/// why it could not be.
pub struct Ready<R>(usize, std_mpsc::Sender<(usize, anyhow::Result<R>)>);

impl<R> Ready<R> {
    pub fn ok(self, r: R) {
        let _ = self.1.send((self.0, Ok(r)));
    }

    pub fn fail(self, e: &anyhow::Error) {
        let _ = self
            .1
            .send((self.0, Err(anyhow::anyhow!("worker {}: {e:#}", self.0))));
    }
}

/// The running workers.
pub struct Pool<S> {
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
    stop: watch::Sender<bool>,
    pub slots: Arc<Slots<S>>,
    ended: mpsc::UnboundedReceiver<usize>,
    /// Run on SIGHUP (reopening files for logrotate), if set.
    pub on_hangup: Option<Box<dyn Fn() + Send>>,
}

/// SIGHUP's stream, or never.
struct Hangup<'a>(Option<&'a mut tokio::signal::unix::Signal>);

impl Hangup<'_> {
    async fn recv(&mut self) -> Option<()> {
        match self.0.as_mut() {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// Starts one worker per plan, running `body(plan, ctx, ready)` on its own pinned thread, and
/// waits until each has said it is ready; returns the pool and what each said.
pub fn start<P, S, R>(
    plans: Vec<P>,
    body: fn(P, Ctx<S>, Ready<R>) -> anyhow::Result<()>,
) -> anyhow::Result<(Pool<S>, Vec<R>)>
where
    P: Send + 'static,
    S: Default + Clone + Send + 'static,
    R: Send + 'static,
{
    let n = plans.len();
    let slots = Arc::new(Slots(Mutex::new(vec![S::default(); n])));
    let (stop, stop_rx) = watch::channel(false);
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut pool = Pool {
        threads: Vec::new(),
        stop,
        slots,
        ended,
        on_hangup: None,
    };
    for (index, plan) in plans.into_iter().enumerate() {
        let ctx = Ctx {
            index,
            slots: pool.slots.clone(),
            stop: stop_rx.clone(),
        };
        let core = (cores.len() > 1).then(|| cores[index % cores.len()]);
        let ready = Ready(index, ready_tx.clone());
        let ended = ended_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || {
                if let Some(core) = core
                    && !core_affinity::set_for_current(core)
                {
                    log::warn!("worker {index}: could not pin to core {}", core.id);
                }
                let result = body(plan, ctx, ready);
                let _ = ended.send(index);
                result
            })
            .context("starting a worker thread")?;
        pool.threads.push(thread);
    }
    drop(ready_tx);
    let mut said: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for _ in 0..n {
        match ready_rx.recv() {
            Ok((i, Ok(r))) => said[i] = Some(r),
            Ok((_, Err(e))) => {
                let _ = pool.join();
                return Err(e);
            }
            Err(_) => {
                // A worker ended before saying anything: its result says why.
                return Err(pool
                    .join()
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("a worker ended during start-up")));
            }
        }
    }
    Ok((pool, said.into_iter().flatten().collect()))
}

impl<S> Pool<S> {
    /// Runs on the calling thread until SIGINT or SIGTERM, or until every worker has ended
    /// (offline replay); prints `stats <line()>` every `interval`. Then stops and joins the
    /// workers and prints `final <line()>`. The first error a worker ended with is the result.
    pub fn until_done(
        mut self,
        interval: Option<Duration>,
        line: impl Fn(&Self) -> String,
    ) -> anyhow::Result<()> {
        let runtime = crate::daemon::runtime().context("starting the runtime")?;
        let n = self.threads.len();
        runtime.block_on(async {
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            // SIGHUP only where something reopens a file on it; else it ends the process as ever.
            let mut hup = if self.on_hangup.is_some() {
                Some(signal(SignalKind::hangup())?)
            } else {
                None
            };
            let mut hup = Hangup(hup.as_mut());
            let mut ticker = ticker(interval).await;
            let mut ended = 0;
            while ended < n {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    e = self.ended.recv() => match e {
                        Some(_) => ended += 1,
                        None => break,
                    },
                    () = tick(ticker.as_mut()) => crate::logfmt::emit("stats", &line(&self)),
                    _ = hup.recv() => {
                        if let Some(f) = &self.on_hangup {
                            f();
                        }
                    }
                }
            }
            anyhow::Ok(())
        })?;
        let result = self.join();
        crate::logfmt::emit("final", &line(&self));
        result
    }

    /// Tells every worker to stop and waits for them; the first error any ended with.
    /// Whether the workers have been joined (the last line of [`Pool::until_done`] is due).
    pub fn is_joined(&self) -> bool {
        self.threads.is_empty()
    }

    pub fn join(&mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
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

/// A worker body's usual start: its own runtime, entered while `setup` builds its parts (which
/// register with that runtime); the runtime and the parts, or the error (also told to `ready`).
pub fn setup<T, R>(
    ready: Ready<R>,
    setup: impl FnOnce() -> anyhow::Result<T>,
) -> Option<(tokio::runtime::Runtime, T, Ready<R>)> {
    let built = crate::daemon::runtime()
        .context("starting the runtime")
        .and_then(|rt| {
            let parts = {
                let _guard = rt.enter();
                setup()?
            };
            Ok((rt, parts))
        });
    match built {
        Ok((rt, parts)) => Some((rt, parts, ready)),
        Err(e) => {
            ready.fail(&e);
            None
        }
    }
}

/// `Box` of a worker's setup closure, for plans that carry one.
pub type SetupFn<T> = Box<dyn FnOnce() -> anyhow::Result<T> + Send>;
