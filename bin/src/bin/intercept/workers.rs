//! intercept's workers: one per receive queue (or `--workers`), each pinned to a core, reading
//! the replies of its share (the XDP program picks ring `hash(addresses, ports) % workers`, or
//! the AF_XDP sockets of the queues `q % workers == w`) and routing them itself to the tcpcopy
//! connections. The control thread accepts tcpcopy's connections and hands every connection
//! event (open, registration, close) to every worker over its channel, so each worker keeps its
//! own copy of the routing table and writes its batches to the connections' sockets itself
//! (through the connection task's queue only while that holds some, see `server::Direct`): no
//! shared table and no hand-off to another thread on the reply path. The replies of one connection all reach one
//! worker, so they stay in order.

use std::time::Duration;

use anyhow::Context as _;

use tcpcopy_host::{
    metrics::{self, Families, with},
    workers::{self, Ctx, Pool, Ready, SetupFn},
};
use tcpcopy_xsk::{capture::Capture, program::XdpProgram};
use tokio::{sync::mpsc, time::Instant};

use crate::server::{self, ConnEvent, Limits, Policy, Refusals, Router, RouterStats, TableStats};

/// A worker's counters: the router's, and how many tcpcopy connections it knows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub router: RouterStats,
    pub table: TableStats,
    pub connections: usize,
    pub connections_v7: usize,
}

/// The `stats`/`final` line: the XDP counters, then the workers' router counters summed.
pub fn line(program: &XdpProgram, pool: &Pool<Snapshot>, refusals: &Refusals) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let xdp = program
        .counters()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let all = pool.slots.all();
    let mut s = RouterStats::default();
    for w in &all {
        s.add(&w.router);
    }
    // Every worker keeps the same table: the first one's counters are the table's.
    let table = all.first().map(|w| w.table).unwrap_or_default();
    let per_worker: Vec<String> = all.iter().map(|w| w.router.forwarded.to_string()).collect();
    format!(
        "{xdp} forwarded={} parked={} expired={} dropped_slow={} not_tcp={} payloads={} payload_dropped={} routes={} deregistered={} routes_refused={} routes_idle_expired={} peers_not_allowed={} peers_broken={} tcpcopy_connections={} v7_connections={} forwarded_by_worker={}",
        s.forwarded,
        s.parked,
        s.expired,
        s.dropped_slow,
        s.not_tcp,
        s.payloads,
        s.payload_dropped,
        table.routes,
        table.deregistered,
        table.refused,
        table.idle_expired,
        refusals.not_allowed.load(Relaxed),
        refusals.broken.load(Relaxed),
        all.first().map_or(0, |w| w.connections),
        all.first().map_or(0, |w| w.connections_v7),
        per_worker.join(",")
    )
}

/// The metrics of a scrape: the XDP program's counters and each worker's (label `worker`).
pub fn metrics(program: &XdpProgram, slots: &[Snapshot]) -> Families {
    let mut f = Families::default();
    if let Ok(c) = program.counters() {
        tcpcopy::xdp_metrics(&mut f, "intercept", &c);
    }
    for (i, s) in slots.iter().enumerate() {
        let r = &s.router;
        let w = || metrics::worker(i);
        f.counter(
            "intercept_replies_forwarded",
            "Reply headers sent to the tcpcopy that registered their client.",
            None,
            w(),
            r.forwarded,
        );
        f.counter(
            "intercept_replies_parked",
            "Replies that came before their client's registration and waited for it.",
            None,
            w(),
            r.parked,
        );
        f.counter(
            "intercept_replies_expired",
            "Parked replies whose registration did not come within 1 s.",
            None,
            w(),
            r.expired,
        );
        f.counter(
            "intercept_replies_payloads",
            "Replies sent with their payloads (to tcpcopys that run --compare).",
            None,
            w(),
            r.payloads,
        );
        f.counter(
            "intercept_replies_payload_dropped",
            "Replies sent without the payload asked for: not copied whole, or the connection's backlog full.",
            None,
            w(),
            r.payload_dropped,
        );
        for (reason, n) in [("slow_tcpcopy", r.dropped_slow), ("not_tcp", r.not_tcp)] {
            f.counter(
                "intercept_replies_dropped",
                "Replies dropped: the tcpcopy connection could not take them, or not TCP.",
                None,
                with(w(), "reason", reason),
                n,
            );
        }
    }
    // Every worker knows every connection and route: the first one's counts are the process's.
    let first = slots.first().copied().unwrap_or_default();
    let t = first.table;
    for (name, help, n) in [
        (
            "intercept_routes_deregistered",
            "Routes withdrawn by their tcpcopy (protocol version 7).",
            t.deregistered,
        ),
        (
            "intercept_routes_refused",
            "Registrations refused by the per-connection or the total route limit.",
            t.refused,
        ),
        (
            "intercept_routes_idle_expired",
            "Routes removed after --route-idle-timeout without a registration or a reply.",
            t.idle_expired,
        ),
    ] {
        f.counter(name, help, None, Vec::new(), n);
    }
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    {
        f.gauge(
            "intercept_tcpcopy_connections",
            "tcpcopy control connections connected (each tcpcopy instance has -C per worker).",
            None,
            Vec::new(),
            first.connections as f64,
        );
        f.gauge(
            "intercept_routes",
            "Routes (replayed connections registered) now.",
            None,
            Vec::new(),
            t.routes as f64,
        );
        f.gauge(
            "intercept_tcpcopy_connections_v7",
            "tcpcopy control connections that speak protocol version 7.",
            None,
            Vec::new(),
            first.connections_v7 as f64,
        );
    }
    f
}

/// What a worker sets itself up from.
pub struct Plan {
    batch: usize,
    limits: Limits,
    events: mpsc::UnboundedReceiver<ConnEvent>,
    capture: SetupFn<Capture>,
}

/// One plan per worker (its capture: see `capture::per_worker`), and the channels that feed
/// them the connection events.
pub fn plans(
    program: &mut XdpProgram,
    iface: &str,
    workers: u16,
    af_xdp: bool,
    batch: usize,
    limits: Limits,
) -> anyhow::Result<(Vec<Plan>, Vec<mpsc::UnboundedSender<ConnEvent>>)> {
    let mut plans = Vec::new();
    let mut senders = Vec::new();
    for capture in tcpcopy_xsk::capture::per_worker(
        program,
        iface,
        workers,
        af_xdp,
        tcpcopy_xsk::capture::INTERCEPT_FRAMES,
    )? {
        let (tx, events) = mpsc::unbounded_channel();
        senders.push(tx);
        plans.push(Plan {
            batch,
            limits,
            events,
            capture,
        });
    }
    Ok((plans, senders))
}

/// Starts the workers; what each receives through (`ring`, `af_xdp-copy`, `af_xdp-zerocopy`).
pub fn start(plans: Vec<Plan>) -> anyhow::Result<(Pool<Snapshot>, Vec<&'static str>)> {
    workers::start(plans, worker)
}

/// How often a worker publishes its counters.
const PUBLISH: Duration = Duration::from_millis(100);

fn worker(plan: Plan, mut ctx: Ctx<Snapshot>, ready: Ready<&'static str>) -> anyhow::Result<()> {
    let Some((runtime, mut capture, ready)) = workers::setup(ready, plan.capture) else {
        return Ok(());
    };
    ready.ok(capture.describe());
    let mut events = plan.events;
    let mut router = Router::new(plan.batch, plan.limits);
    runtime.block_on(async {
        let mut flush = tokio::time::interval(tcpcopy_xsk::capture::SWEEP);
        let mut publish = tokio::time::interval(PUBLISH);
        loop {
            // Not biased: under load the capture is always ready; registrations and the
            // millisecond sweep and flush must still get their turn.
            tokio::select! {
                _ = ctx.stop.changed() => break,
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    let now = Instant::now();
                    router.on_event(now, ev);
                    while let Ok(ev) = events.try_recv() {
                        router.on_event(now, ev);
                    }
                }
                r = capture.read(1024, |ip| router.on_packet(Instant::now(), ip)) => {
                    r?;
                    // What this read brought goes out now: a reply waits for no timer (under
                    // load the reads are large and so are the batches).
                    router.send_pending();
                }
                _ = flush.tick() => {
                    // The sweep of the ring (see `Capture::read_now`), then the timed flush.
                    capture.read_now(1024, |ip| router.on_packet(Instant::now(), ip));
                    router.flush(Instant::now());
                }
                _ = publish.tick() => ctx.publish(Snapshot {
                    router: router.stats,
                    table: router.table,
                    connections: router.connections(),
                    connections_v7: router.connections_v7(),
                }),
            }
        }
        router.flush(Instant::now());
        ctx.publish(Snapshot {
            router: router.stats,
            table: router.table,
            connections: router.connections(),
            connections_v7: router.connections_v7(),
        });
        anyhow::Ok(())
    })
}

/// The control thread: accepts tcpcopy's connections on `listener` and hands every connection
/// event to every worker, until the process ends.
///
/// When a tcpcopy asks for the replies' payloads (`--compare`), `payloads` is turned on: the
/// kernel programs copy whole frames from then on (for every connection; a tcpcopy that did not
/// ask gets headers as before).
pub fn control(
    listener: std::net::TcpListener,
    workers: Vec<mpsc::UnboundedSender<ConnEvent>>,
    policy: Policy,
    refusals: std::sync::Arc<Refusals>,
    mut payloads: Option<tcpcopy_xsk::program::PayloadSwitch>,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            let Ok(runtime) = tcpcopy_host::daemon::runtime() else {
                log::error!("control thread: no runtime");
                return;
            };
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    log::error!("control thread: cannot use the listening socket");
                    return;
                };
                let (tx, mut rx) = mpsc::channel(65536);
                tokio::spawn(server::accept(
                    listener,
                    tx,
                    std::sync::Arc::new(policy),
                    refusals,
                ));
                while let Some(ev) = rx.recv().await {
                    if let ConnEvent::Upgraded(_, caps) = ev
                        && caps & tcpcopy_proto::v7::CAP_PAYLOAD != 0
                        && let Some(mut switch) = payloads.take()
                    {
                        match switch.turn_on() {
                            Ok(()) => log::info!(
                                "copying the replies' payloads from now on (a tcpcopy runs --compare)"
                            ),
                            Err(e) => log::warn!("cannot copy the replies' payloads: {e}"),
                        }
                    }
                    for w in &workers {
                        let _ = w.send(ev.clone());
                    }
                }
            });
        })
        .context("starting the control thread")?;
    Ok(())
}
