//! `tcpcopy --mirror --compare` end to end: the online host's `mirror0` is a mirror port that
//! carries both directions (tc mirred copies of what the client sends and of what online sends
//! to the client, `Options::mirror`), so production's responses come from the mirror port too:
//! tcpcopy's mirror XDP program takes the requests and the responses to the worker that owns
//! their connection, through the AF_XDP socket of the frame's queue (stamped with the kernel's
//! time in the frame's metadata) or that worker's ring; no tc egress program. The test server's
//! answers come from intercept as in `compare.rs`. Assertions are on tcpcopy's counters and its
//! `--compare-log`.

use std::time::Duration;

use tcpcopy_testbed::{Host, MIRROR_IFACE, Options, Spawned, Testbed};
use tcpcopy_tests::{
    codes,
    compare_log::{final_summary, log_lines, of_kind, split_at},
    counter, curl, curl_to, sample_sum, scrape, start_intercept, start_tcpcopy_args, wait_decided,
};

const WAIT: Duration = Duration::from_mins(1);

/// Where tcpcopy serves its metrics (on the online host's loopback).
const METRICS: &str = "127.0.0.1:9464";

/// tcpcopy on the online host reading `mirror0` with `--mirror --compare`, its compare log at
/// `log`, plus `extra`; once attached and linked to intercept.
fn start_mirror_compare(bed: &Testbed, log: &std::path::Path, extra: &[&str]) -> Spawned {
    let target = format!("{}:80", Host::Test.addr());
    let intercept = bed.intercept_host().addr().to_string();
    let mut args = vec![
        "-i",
        MIRROR_IFACE,
        "--mirror",
        "--compare",
        "--compare-log",
        log.to_str().unwrap(),
        "--target",
        &target,
        "-s",
        &intercept,
        "-c",
        "192.0.2.x",
    ];
    args.extend(extra);
    let tcpcopy = start_tcpcopy_args(bed, &args);
    let attached = tcpcopy
        .lines()
        .into_iter()
        .find(|l| l.starts_with("attached"))
        .unwrap();
    assert!(
        attached.contains("compare=mirror") && attached.contains("capture=af_xdp-copy"),
        "responses from the mirror port, no tc egress program: {attached}"
    );
    tcpcopy
}

#[test]
fn a_mirror_port_gives_the_responses_exact_same_and_differ() {
    let bed = Testbed::up_with(&Options {
        mirror: true,
        ..Default::default()
    })
    .expect("testbed");
    let _intercept = start_intercept(&bed);
    let log = bed.dir().join("compare.jsonl");
    let mut tcpcopy = start_mirror_compare(&bed, &log, &["--metrics", METRICS]);
    // 520 one-request connections: 400 answered alike, 50 with 500 on the test server, 50 with
    // another body, and 20 alike over IPv6 (mirrored too).
    let same = curl(&bed, Host::Online, "same", 0..400, true);
    let changed = curl(&bed, Host::Online, "changed", 0..50, true);
    let body = curl(&bed, Host::Online, "body", 0..50, true);
    let six = curl_to(&bed, Host::Online, true, "same", 400..420, true);
    let mut answered = codes(same);
    answered.extend(codes(changed));
    answered.extend(codes(body));
    answered.extend(codes(six));
    assert_eq!(
        answered.iter().filter(|c| *c == "200").count(),
        520,
        "online answered all with 200"
    );
    let line = wait_decided(&mut tcpcopy, 520, WAIT);
    // Every frame reached the AF_XDP socket (the kernel dropped none before it).
    assert_eq!(counter(&line, "capture_dropped"), 0, "{line}");
    assert_eq!(counter(&line, "same"), 420, "{line}");
    assert_eq!(counter(&line, "differ"), 100, "{line}");
    assert_eq!(counter(&line, "not_compared"), 0, "{line}");

    let lines = log_lines(&log);
    let differ = of_kind(&lines, "differ");
    assert_eq!(differ.len(), 100, "{differ:?}");
    let mut changed_seen = std::collections::BTreeSet::new();
    let mut body_seen = std::collections::BTreeSet::new();
    for d in &differ {
        let request = d["request"].as_str().unwrap();
        let uri = request.split(' ').nth(1).unwrap();
        assert!(
            request.starts_with("GET ") && request.ends_with(" HTTP/1.1"),
            "{d}"
        );
        assert!(
            d["client"].as_str().unwrap().starts_with("198.51.100.10:"),
            "{d}"
        );
        assert_eq!(d["server"], "198.51.100.20:80", "{d}");
        if let Some(i) = uri.strip_prefix("/changed/") {
            assert_eq!(d["difference"]["what"], "status", "{d}");
            assert_eq!(
                (d["online"]["status"].clone(), d["test"]["status"].clone()),
                (200.into(), 500.into()),
                "{d}"
            );
            changed_seen.insert(i.parse::<u32>().unwrap());
        } else if let Some(i) = uri.strip_prefix("/body/") {
            assert_eq!(d["difference"]["what"], "body_length", "{d}");
            assert_eq!(
                (d["online"]["status"].clone(), d["test"]["status"].clone()),
                (200.into(), 200.into()),
                "{d}"
            );
            body_seen.insert(i.parse::<u32>().unwrap());
        } else {
            panic!("a request that should be the same differs: {d}");
        }
        assert!(
            d["online"]["latency_us"].is_u64() && d["test"]["latency_us"].is_u64(),
            "{d}"
        );
    }
    assert_eq!(changed_seen.len(), 50, "each /changed/ request once");
    assert_eq!(body_seen.len(), 50, "each /body/ request once");

    // The metric of frames timed when read: there, and none.
    let text = scrape(&bed, Host::Online, METRICS);
    assert!(
        text.lines()
            .any(|l| l.starts_with("tcpcopy_compare_unstamped_frames_total{")),
        "{text}"
    );
    let unstamped = sample_sum(&text, "tcpcopy_compare_unstamped_frames_total", &[]);
    assert!(unstamped < 0.5, "{unstamped} frames timed when read");
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (counter(&last, "same"), counter(&last, "differ")),
        (420, 100),
        "{last}"
    );
    // One queue, one worker: every frame (requests and responses) through the AF_XDP socket,
    // each with the kernel's time from its metadata.
    assert!(counter(&last, "redirected") >= 2000, "{last}");
    assert_eq!(counter(&last, "copied"), 0, "{last}");
    assert_eq!(counter(&last, "compare_unstamped"), 0, "{last}");
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    // Production's latencies for every request, from the kernel's times of the mirrored frames:
    // nginx answers a static page at once, so each well under a second.
    let fin = final_summary(&log);
    assert_eq!(
        (fin["same"].as_u64(), fin["differ"].as_u64()),
        (Some(420), Some(100))
    );
    assert_eq!(fin["online"]["count"].as_u64(), Some(520), "{fin}");
    assert_eq!(fin["test"]["count"].as_u64(), Some(520), "{fin}");
    assert_eq!(split_at(&fin["online"], 1_000_000), (520, 0), "{fin}");
}

/// Production made slow (its upstream answers after 300 ms), the test server not: every online
/// latency is above the delay and below a second, every test latency below the delay, so the
/// requests' and the responses' times are the kernel's, on one clock. Two queues and two
/// workers: the connections worker 0 owns come through the AF_XDP socket of queue 0 (where the
/// veth puts every frame), worker 1's through its ring, both directions alike.
#[test]
fn a_slow_production_is_timed_from_the_mirror_port_by_both_workers() {
    const DELAY: Duration = Duration::from_millis(300);
    const N: usize = 24;
    let bed = Testbed::up_with(&Options {
        mirror: true,
        queues: 2,
        ..Default::default()
    })
    .expect("testbed");
    let _online_up = bed
        .start_upstream(Host::Online, DELAY, "online")
        .expect("the slow upstream");
    let _test_up = bed
        .start_upstream(Host::Test, Duration::ZERO, "online")
        .expect("the test host's upstream");
    let _intercept = start_intercept(&bed);
    let log = bed.dir().join("compare.jsonl");
    let mut tcpcopy = start_mirror_compare(&bed, &log, &[]);
    let attached = tcpcopy
        .lines()
        .into_iter()
        .find(|l| l.starts_with("attached"))
        .unwrap();
    assert!(attached.contains("workers=2"), "{attached}");
    let answered = codes(curl(&bed, Host::Online, "slow/same", 0..N, true));
    assert_eq!(answered, vec!["200"; N], "online answered all");
    let line = wait_decided(&mut tcpcopy, N as u64, WAIT);
    assert_eq!(counter(&line, "same"), N as u64, "{line}");
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "same"), N as u64, "{last}");
    assert_eq!(counter(&last, "not_compared"), 0, "{last}");
    assert!(
        counter(&last, "redirected") > 0 && counter(&last, "copied") > 0,
        "both ways to the workers: {last}"
    );
    assert_eq!(counter(&last, "compare_unstamped"), 0, "{last}");
    let per_worker: Vec<u64> = last
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("captured_by_worker="))
        .expect("captured_by_worker")
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        per_worker.len() == 2 && per_worker.iter().all(|n| *n > 0),
        "both workers replayed some: {last}"
    );
    let fin = final_summary(&log);
    let n = N as u64;
    assert_eq!(fin["online"]["count"].as_u64(), Some(n), "{fin}");
    assert_eq!(
        split_at(&fin["online"], 200_000),
        (0, n),
        "every online latency above the delay: {fin}"
    );
    assert_eq!(
        split_at(&fin["online"], 1_000_000),
        (n, 0),
        "and below a second: {fin}"
    );
    assert_eq!(
        split_at(&fin["test"], 200_000),
        (n, 0),
        "every test latency below the delay: {fin}"
    );
}
