//! Several workers: the testbed's veths get two queues, so tcpcopy and intercept run one worker
//! per queue (tcpcopy's each with its own frame ring, AF_XDP transmit queue, engine and intercept
//! connections; intercept's each with its own AF_XDP socket and copy of the routing table).
//! Connections spread over both; every request still arrives exactly once per copy, each copy
//! from its own client address/port, and no session is lost to a tuple two workers picked.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use tcpcopy_testbed::{Host, Options, Testbed};
use tcpcopy_tests::{
    codes, counter, curl, logged, start_intercept_with, start_tcpcopy, wait_until,
};

const WAIT: Duration = Duration::from_mins(1);

/// The two per-worker figures of `key=a,b` in a counters line.
fn each_worker(line: &str, key: &str) -> Vec<u64> {
    let v: Vec<u64> = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(v.len(), 2, "two workers: {line}");
    v
}

#[test]
fn two_queues_two_workers_replay_every_copy_once_from_distinct_tuples() {
    let bed = Testbed::up_with(&Options {
        queues: 2,
        ..Default::default()
    })
    .expect("testbed");
    // intercept through its ring buffers, which the XDP program picks by a hash of the
    // connection (its AF_XDP sockets get what each queue receives, and a veth, unlike a NIC's
    // RSS, puts every connection on queue 0).
    let mut intercept = start_intercept_with(&bed, &["--capture", "ring"]);
    let attached = intercept
        .lines()
        .into_iter()
        .find(|l| l.starts_with("attached"))
        .unwrap();
    assert!(attached.contains("workers=2"), "{attached}");
    assert!(attached.contains("capture=ring"), "{attached}");
    let mut tcpcopy = start_tcpcopy(&bed, &["-n", "2"]);
    let attached = tcpcopy
        .lines()
        .into_iter()
        .find(|l| l.starts_with("attached"))
        .unwrap();
    assert!(attached.contains("workers=2"), "{attached}");
    assert!(
        attached.contains("send=af_xdp-copy"),
        "each worker transmits on its own queue: {attached}"
    );

    let a = curl(&bed, Host::Online, "mq", 0..300, true);
    let b = curl(&bed, Host::Online, "mq", 300..600, true);
    let mut answered = codes(a);
    answered.extend(codes(b));
    assert_eq!(answered.iter().filter(|c| *c == "200").count(), 600);
    assert!(
        wait_until(WAIT, || logged(&bed, Host::Test, "mq").len() >= 1200),
        "replayed: {}",
        logged(&bed, Host::Test, "mq").len()
    );
    // Every session closes once its last answer and FIN are through (a moment after the log).
    tcpcopy
        .wait_for(
            |l| l.split_whitespace().any(|kv| kv == "completed=1200"),
            "all sessions completed",
            WAIT,
        )
        .unwrap();
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    let lines = logged(&bed, Host::Test, "mq");
    assert_eq!(lines.len(), 1200, "two copies of each request, no more");
    // Each request twice, from two different client address/ports (two copies); a tuple may
    // come back later for another session once the first is over, never two at once: that
    // would have cost sessions, and every one completed.
    let mut copies: HashMap<&str, HashSet<(&str, &str)>> = HashMap::new();
    for l in &lines {
        let mut f = l.split(' ');
        let tuple = (f.next().unwrap(), f.next().unwrap());
        let uri = l.split('"').nth(1).unwrap();
        copies.entry(uri).or_default().insert(tuple);
    }
    assert_eq!(copies.len(), 600, "every request");
    assert!(
        copies.values().all(|t| t.len() == 2),
        "each request's two copies from two tuples"
    );
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    let per_worker = each_worker(&last, "captured_by_worker");
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "connections spread over both queues: {per_worker:?}"
    );
    assert_eq!(per_worker.iter().sum::<u64>(), counter(&last, "captured"));
    assert_eq!(counter(&last, "completed"), 1200, "{last}");

    // intercept's two workers both routed replies, and every reply went to tcpcopy.
    let last = intercept.finish(Duration::from_secs(10)).unwrap();
    let per_worker = each_worker(&last, "forwarded_by_worker");
    assert!(per_worker.iter().all(|n| *n > 0), "{per_worker:?}");
    assert_eq!(counter(&last, "dropped_slow"), 0, "{last}");
    assert!(counter(&last, "forwarded") >= 1200 * 3, "{last}");
}
