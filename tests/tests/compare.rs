//! `tcpcopy --compare` end to end: production's responses caught at tc egress on the online
//! host, the test server's payloads from intercept (protocol version 7, capability 4), every
//! request's answers compared. The test nginx answers `/changed/*` with 500 and `/body/*` with
//! another body; `/build/*` carries an `X-Build` header naming the host (see
//! `tcpcopy_testbed::nginx`). Assertions are on tcpcopy's counters and its `--compare-log`.

use std::time::Duration;

use tcpcopy_testbed::{Host, REDIS_PORT, Testbed, upstream};
use tcpcopy_tests::{
    codes,
    compare_log::{buckets, differ_lines, final_summary, log_lines, of_kind, split_at},
    counter, curl, scrape, start_intercept, start_intercept_with, start_tcpcopy, wait_decided,
    wait_settled_on,
};

const WAIT: Duration = Duration::from_mins(1);

#[test]
fn a_thousand_requests_two_hundred_differ_with_their_status_pairs_and_request_lines() {
    let bed = Testbed::up().expect("testbed");
    let mut intercept = start_intercept(&bed);
    let log = bed.dir().join("compare.jsonl");
    let log_arg = log.to_str().unwrap().to_owned();
    let mut tcpcopy = start_tcpcopy(&bed, &["--compare", "--compare-log", &log_arg]);
    assert!(
        tcpcopy
            .lines()
            .iter()
            .any(|l| l.starts_with("attached") && l.contains("compare=tc-egress")),
        "the egress program attached: {:?}",
        tcpcopy.lines()
    );
    // 1000 one-request connections: 800 answered alike, 100 with 500 on the test server, 100
    // with another body.
    let same = curl(&bed, Host::Online, "same", 0..800, true);
    let changed = curl(&bed, Host::Online, "changed", 0..100, true);
    let body = curl(&bed, Host::Online, "body", 0..100, true);
    let mut answered = codes(same);
    answered.extend(codes(changed));
    answered.extend(codes(body));
    assert_eq!(
        answered.iter().filter(|c| *c == "200").count(),
        1000,
        "online answered all with 200"
    );
    let line = wait_decided(&mut tcpcopy, 1000, WAIT);
    assert_eq!(counter(&line, "same"), 800, "{line}");
    assert_eq!(counter(&line, "differ"), 200, "{line}");
    assert_eq!(counter(&line, "not_compared"), 0, "{line}");

    // The log: 200 differ lines, each with its request line and what differs.
    let lines = log_lines(&log);
    let differ = of_kind(&lines, "differ");
    assert_eq!(differ.len(), 200, "{differ:?}");
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
            assert_eq!(d["difference"]["online"], 200, "{d}");
            assert_eq!(d["difference"]["test"], 500, "{d}");
            assert_eq!(
                (d["online"]["status"].clone(), d["test"]["status"].clone()),
                (200.into(), 500.into())
            );
            changed_seen.insert(i.parse::<u32>().unwrap());
        } else if let Some(i) = uri.strip_prefix("/body/") {
            assert_eq!(d["difference"]["what"], "body_length", "{d}");
            assert_eq!(d["online"]["status"], 200, "{d}");
            assert_eq!(d["test"]["status"], 200, "{d}");
            body_seen.insert(i.parse::<u32>().unwrap());
        } else {
            panic!("a request that should be the same differs: {d}");
        }
        // Both latencies measured.
        assert!(
            d["online"]["latency_us"].is_u64() && d["test"]["latency_us"].is_u64(),
            "{d}"
        );
    }
    assert_eq!(changed_seen.len(), 100, "each /changed/ request once");
    assert_eq!(body_seen.len(), 100, "each /body/ request once");
    // Summaries at the stats interval, with both histograms.
    let summaries = of_kind(&lines, "summary");
    assert!(!summaries.is_empty(), "summary lines at the stats interval");

    // Ending tcpcopy writes the final summary: the totals.
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "same"), 800, "{last}");
    assert_eq!(counter(&last, "differ"), 200, "{last}");
    let lines = log_lines(&log);
    let fin = lines.last().expect("a final line");
    assert_eq!(fin["kind"], "summary");
    assert_eq!(fin["final"], true);
    assert_eq!(
        (fin["same"].as_u64(), fin["differ"].as_u64()),
        (Some(800), Some(200))
    );
    assert_eq!(fin["online"]["count"].as_u64(), Some(1000), "{fin}");
    assert_eq!(fin["test"]["count"].as_u64(), Some(1000), "{fin}");
    let icpt = intercept.finish(Duration::from_secs(10)).unwrap();
    assert!(counter(&icpt, "payloads") >= 1000, "{icpt}");
    assert_eq!(counter(&icpt, "payload_dropped"), 0, "{icpt}");

    report_reads(&log, &bed.dir().join("compare.html"));
}

/// `tcpcopy report` reads the log tcpcopy wrote: the same totals, nothing unreadable, the
/// differing requests named in the page.
fn report_reads(log: &std::path::Path, page: &std::path::Path) {
    let out = std::process::Command::new(tcpcopy_testbed::binary("tcpcopy").unwrap())
        .arg("report")
        .arg(log)
        .arg("-o")
        .arg(page)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("same=800 differ=200 not_compared=0") && said.contains("0 unreadable"),
        "{said}"
    );
    let html = std::fs::read_to_string(page).unwrap();
    assert!(
        html.contains("GET /changed/") && html.contains("<svg"),
        "the page names them"
    );
}

/// A header made to differ (`X-Build`) is reported; `--compare-ignore-header X-Build` silences
/// it. Keep-alive: 50 requests on one connection each time.
#[test]
fn a_differing_header_is_reported_and_silenced_by_the_ignore_list() {
    let bed = Testbed::up().expect("testbed");
    let _intercept = start_intercept(&bed);
    for ignore in [false, true] {
        let log = bed.dir().join(format!("compare-{ignore}.jsonl"));
        let log_arg = log.to_str().unwrap().to_owned();
        let mut args = vec!["--compare", "--compare-log", &log_arg];
        if ignore {
            args.extend(["--compare-ignore-header", "X-Build"]);
        }
        let mut tcpcopy = start_tcpcopy(&bed, &args);
        let answered = codes(curl(&bed, Host::Online, "build", 0..50, false));
        assert_eq!(answered.iter().filter(|c| *c == "200").count(), 50);
        let line = wait_decided(&mut tcpcopy, 50, WAIT);
        let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(counter(&line, "not_compared"), 0, "{line}");
        let differ = differ_lines(&log);
        if ignore {
            assert_eq!(counter(&last, "same"), 50, "{last}");
            assert!(differ.is_empty(), "{differ:?}");
        } else {
            assert_eq!(counter(&last, "differ"), 50, "{last}");
            assert_eq!(differ.len(), 50);
            for d in &differ {
                assert_eq!(d["difference"]["what"], "header", "{d}");
                assert_eq!(d["difference"]["name"], "x-build", "{d}");
            }
        }
    }
}

/// Where tcpcopy serves its metrics (on the online host's loopback).
const METRICS: &str = "127.0.0.1:9464";

/// The cumulative count of the Prometheus histogram `name` at bucket bound `le` (seconds),
/// summed over the workers.
fn cumulative(metrics: &str, name: &str, le: f64) -> u64 {
    let prefix = format!("{name}_bucket{{");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let bound = l.split("le=\"").nth(1)?.split('"').next()?;
            let bound: f64 = bound.parse().ok()?;
            let value = l.rsplit(' ').next()?.parse::<u64>().ok()?;
            ((bound - le).abs() < 1e-9 || (bound.is_infinite() && le.is_infinite()))
                .then_some(value)
        })
        .sum()
}

/// The delay of the test host's slow upstream behind `/slow/`: above the replay's response wait
/// without `--compare` (500 ms; past it a held answer was cut off and counted `incomplete`, 23 of
/// 40 with a 500 ms delay), within the 10 s `--compare` waits by default. A bucket bound of the
/// latency histograms.
const DELAY: Duration = Duration::from_secs(1);
/// Requests on `/slow/same/` and on `/slow/body/`, one connection each.
const SLOW_SAME: usize = 30;
const SLOW_BODY: usize = 10;

/// `/slow/` is answered at once by online's upstream and after 1 s by the test host's (nginx
/// proxying to them): every test latency is above the delay, every online one below, in the
/// summary's histograms (all requests), in the Prometheus histograms (`--metrics`) and in the
/// `differ` lines of those whose body differs.
#[test]
fn a_path_slow_on_the_test_server_only_shows_in_the_test_latencies() {
    let bed = Testbed::up().expect("testbed");
    let _online_up = bed
        .start_upstream(Host::Online, Duration::ZERO, "online")
        .expect("online's upstream");
    let _test_up = bed
        .start_upstream(Host::Test, DELAY, "test")
        .expect("the slow upstream");
    let _intercept = start_intercept(&bed);
    let log = bed.dir().join("compare.jsonl");
    let log_arg = log.to_str().unwrap().to_owned();
    let mut tcpcopy = start_tcpcopy(
        &bed,
        &["--compare", "--compare-log", &log_arg, "--metrics", METRICS],
    );
    // One connection each: answered alike, and with another body by the test host.
    let all = (SLOW_SAME + SLOW_BODY) as u64;
    let same = curl(&bed, Host::Online, "slow/same", 0..SLOW_SAME, true);
    let body = curl(&bed, Host::Online, "slow/body", 0..SLOW_BODY, true);
    let mut answered = codes(same);
    answered.extend(codes(body));
    assert_eq!(answered.len() as u64, all);
    assert!(answered.iter().all(|c| c == "200"), "online answered all");
    let line = wait_decided(&mut tcpcopy, all, WAIT);
    // Prometheus: the same split in the two latency histograms.
    let metrics = scrape(&bed, Host::Online, METRICS);
    let delay_secs = DELAY.as_secs_f64();
    for (name, at_most, all) in [
        ("tcpcopy_compare_test_latency_seconds", 0, all),
        ("tcpcopy_compare_online_latency_seconds", all, all),
    ] {
        assert_eq!(
            (
                cumulative(&metrics, name, delay_secs),
                cumulative(&metrics, name, f64::INFINITY)
            ),
            (at_most, all),
            "{name} at or below {DELAY:?}, in all; {line}: {metrics}"
        );
    }
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&line, "not_compared"), 0, "{line}");
    assert_eq!(counter(&last, "same"), SLOW_SAME as u64, "{last}");
    assert_eq!(counter(&last, "differ"), SLOW_BODY as u64, "{last}");
    let delay_us = u64::try_from(DELAY.as_micros()).unwrap();
    let fin = final_summary(&log);
    assert_eq!(
        split_at(&fin["test"], delay_us),
        (0, all),
        "every test latency above {DELAY:?}: {fin}"
    );
    assert_eq!(
        split_at(&fin["online"], delay_us),
        (all, 0),
        "every online latency at most {DELAY:?}: {fin}"
    );
    let differ = differ_lines(&log);
    assert_eq!(differ.len() as u64, SLOW_BODY as u64);
    let mut test_us = Vec::new();
    let mut online_us = Vec::new();
    for d in &differ {
        assert!(
            d["request"]
                .as_str()
                .unwrap()
                .starts_with("GET /slow/body/"),
            "{d}"
        );
        assert_eq!(d["difference"]["what"], "body_length", "{d}");
        let (o, t) = (
            d["online"]["latency_us"].as_u64().unwrap(),
            d["test"]["latency_us"].as_u64().unwrap(),
        );
        assert!(t > delay_us && o < delay_us, "{d}");
        test_us.push(t);
        online_us.push(o);
    }
    test_us.sort_unstable();
    online_us.sort_unstable();
    eprintln!(
        "slow path: test latencies {:?}..{:?} us, online {:?}..{:?} us; test histogram {:?}, online {:?}",
        test_us.first(),
        test_us.last(),
        online_us.first(),
        online_us.last(),
        buckets(&fin["test"]),
        buckets(&fin["online"]),
    );
}

/// Statuses and connection counts of a curl run (`-w '%{http_code} %{num_connects}'`).
fn curl_keep_alive(bed: &Testbed, uris: &[String]) -> Vec<(String, u32)> {
    let mut cmd = bed.cmd(Host::Client, "curl");
    cmd.args(["-gs", "--max-time", "60"]);
    for uri in uris {
        cmd.args(["-w", "%{http_code} %{num_connects}\\n", "-o", "/dev/null"])
            .arg(format!("http://{}{uri}", Host::Online.addr()));
    }
    let out = cmd.output().expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (code, connects) = l.split_once(' ').expect("code and connects");
            (code.to_owned(), connects.parse().expect("a number"))
        })
        .collect()
}

/// Keep-alive (24 requests one after another on one connection, curl), pipelined (18 requests
/// in one write on one connection, the testbed's raw client) and chunked answers (`/chunked/`:
/// an upstream on both hosts whose body of unknown length nginx sends chunked, the test one with
/// one byte changed in the middle of `/chunked/body/` bodies): exactly the requests to
/// `/changed/`, `/body/` and `/chunked/body/` differ, each with what differs.
#[test]
fn keep_alive_pipelined_and_chunked_answers_are_compared_exactly() {
    let bed = Testbed::up().expect("testbed");
    let _online_up = bed
        .start_upstream(Host::Online, Duration::ZERO, "online")
        .expect("online's upstream");
    let _test_up = bed
        .start_upstream(Host::Test, Duration::ZERO, "test")
        .expect("test's upstream");
    let _intercept = start_intercept(&bed);
    let log = bed.dir().join("compare.jsonl");
    let log_arg = log.to_str().unwrap().to_owned();
    let mut tcpcopy = start_tcpcopy(&bed, &["--compare", "--compare-log", &log_arg]);
    // (path, count) interleaved: k-th of each in turn.
    let mix = |tag: &str, parts: &[(&str, usize)]| -> Vec<String> {
        let most = parts.iter().map(|p| p.1).max().unwrap_or(0);
        (0..most)
            .flat_map(|i| {
                parts
                    .iter()
                    .filter(move |p| i < p.1)
                    .map(move |(path, _)| format!("/{path}/{tag}{i}"))
            })
            .collect()
    };
    let kept = mix(
        "k",
        &[
            ("same", 10),
            ("changed", 3),
            ("body", 3),
            ("chunked/same", 6),
            ("chunked/body", 2),
        ],
    );
    let piped = mix(
        "p",
        &[
            ("same", 8),
            ("changed", 2),
            ("body", 2),
            ("chunked/same", 4),
            ("chunked/body", 2),
        ],
    );
    let answered = curl_keep_alive(&bed, &kept);
    assert_eq!(answered.len(), 24, "{answered:?}");
    assert!(answered.iter().all(|(c, _)| c == "200"), "{answered:?}");
    assert_eq!(
        answered.iter().map(|(_, n)| n).sum::<u32>(),
        1,
        "one connection for all: {answered:?}"
    );
    let pipeline = tcpcopy_testbed::binary("http-pipeline").unwrap();
    let out = bed
        .cmd(Host::Client, pipeline.to_str().unwrap())
        .arg(format!("{}:80", Host::Online.addr()))
        .args(&piped)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said} {out:?}");
    let answers: Vec<&str> = said.lines().collect();
    assert_eq!(answers.len(), 18, "{said}");
    for (uri, a) in piped.iter().zip(&answers) {
        assert!(a.starts_with("200 "), "{uri}: {a}");
        assert_eq!(
            a.contains(" chunked "),
            uri.starts_with("/chunked/"),
            "{uri} answered {a}"
        );
    }
    let line = wait_decided(&mut tcpcopy, 42, WAIT);
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&line, "not_compared"), 0, "{line}");
    assert_eq!(counter(&last, "not_compared"), 0, "{last}");
    assert_eq!(counter(&last, "same"), 28, "{last}");
    assert_eq!(counter(&last, "differ"), 14, "{last}");
    check_differ_lines(&log, &kept, &piped);
}

/// Commands a redis server has processed, by name (`INFO commandstats`), asked over its
/// loopback address on its own host (so tcpcopy, which captures on the host's interface, does
/// not see the question).
fn redis_calls(bed: &Testbed, host: Host) -> std::collections::BTreeMap<String, u64> {
    let out = bed
        .cmd(host, "redis-cli")
        .args(["-h", "127.0.0.1", "-p", &REDIS_PORT.to_string()])
        .args(["INFO", "commandstats"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Calls of `name` in `after` minus those in `before`.
fn calls_since(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    name: &str,
) -> u64 {
    after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)
}

/// A non-HTTP protocol: redis on the online and the test host, driven by redis-benchmark, first
/// one command per round trip (SET; then GET and both PINGs), then pipelined (`-P 10`: ten
/// commands per write, SET then GET). The responses are compared as bytes, one exchange per
/// round trip: every exchange is the same (SET answers `+OK`, GET the value the replayed SETs
/// stored, PING `+PONG`; each run's `CONFIG GET save` and `appendonly`, pipelined by
/// redis-benchmark, one exchange), and their number is what the servers' command counters say.
#[test]
fn redis_answers_compared_as_bytes_are_all_the_same_plain_and_pipelined() {
    let bed = Testbed::up().expect("testbed");
    let _online_redis = bed.start_redis(Host::Online).expect("online redis");
    let _test_redis = bed.start_redis(Host::Test).expect("test redis");
    let filter = format!("tcp and (src port 80 or src port {REDIS_PORT})");
    let _intercept = start_intercept_with(&bed, &["-F", &filter]);
    let log = bed.dir().join("compare.jsonl");
    let log_arg = log.to_str().unwrap().to_owned();
    let map = format!("{REDIS_PORT}-{}:{REDIS_PORT}", Host::Test.addr());
    let mut tcpcopy = start_tcpcopy(&bed, &["-x", &map, "--compare", "--compare-log", &log_arg]);
    let runs: [(&str, u64); 4] = [("set", 1), ("get,ping", 1), ("set", 10), ("get", 10)];
    let mut exchanges = 0;
    let mut sessions = 0;
    let mut before = redis_calls(&bed, Host::Online);
    for (tests, pipeline) in runs {
        // Each run after the replay of the one before has ended: the GETs read what the
        // replayed SETs stored.
        let out = bed
            .cmd(Host::Client, "redis-benchmark")
            .args(["-h", &Host::Online.addr().to_string()])
            .args(["-p", &REDIS_PORT.to_string()])
            .args(["-n", "1000", "-c", "5", "-P", &pipeline.to_string()])
            .args(["-t", tests, "-q"])
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-benchmark: {out:?}");
        // Five connections per benchmark (`ping` is two: inline and multibulk), one more for
        // the settings.
        let benchmarks: u64 = tests
            .split(',')
            .map(|t| if t == "ping" { 2 } else { 1 })
            .sum();
        sessions += 5 * benchmarks + 1;
        let settled = wait_settled_on(&bed, REDIS_PORT, &mut tcpcopy, sessions, WAIT);
        assert_eq!(counter(&settled, "sessions"), sessions, "{settled}");
        assert_eq!(counter(&settled, "lost"), 0, "{settled}");
        let after = redis_calls(&bed, Host::Online);
        let commands: u64 = ["set", "get", "ping"]
            .iter()
            .map(|c| calls_since(&before, &after, c))
            .sum();
        let config = calls_since(&before, &after, "config|get");
        assert_eq!(
            config, 2,
            "redis-benchmark asks for two settings: {after:?}"
        );
        assert_eq!(commands % pipeline, 0, "whole pipelines: {after:?}");
        assert!(commands >= 1000, "{tests}: {after:?}");
        exchanges += commands / pipeline + 1;
        before = after;
    }
    let line = wait_decided(&mut tcpcopy, exchanges, WAIT);
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    // The test server processed every command production did.
    let (online, test) = (
        redis_calls(&bed, Host::Online),
        redis_calls(&bed, Host::Test),
    );
    for c in ["set", "get", "ping", "config|get"] {
        assert_eq!(online.get(c), test.get(c), "{c}: {online:?} {test:?}");
    }
    assert_eq!(counter(&last, "same"), exchanges, "{last} (then: {line})");
    assert_eq!(counter(&last, "differ"), 0, "{last}");
    assert_eq!(counter(&last, "not_compared"), 0, "{last}");
    assert!(of_kind(&log_lines(&log), "differ").is_empty());
    let fin = final_summary(&log);
    assert_eq!(fin["test"]["count"].as_u64(), Some(exchanges), "{fin}");
    eprintln!("redis: {exchanges} exchanges compared; {last}");
}

/// The `differ` lines of the keep-alive, pipelined and chunked test: one for each request to
/// `/changed/`, `/body/` and `/chunked/body/` among `kept` and `piped`, each saying what differs.
fn check_differ_lines(log: &std::path::Path, kept: &[String], piped: &[String]) {
    let differ = differ_lines(log);
    let mut uris: Vec<String> = differ
        .iter()
        .map(|d| {
            let request = d["request"].as_str().unwrap();
            let uri = request.split(' ').nth(1).unwrap().to_owned();
            let what = &d["difference"]["what"];
            if uri.starts_with("/changed/") {
                assert_eq!(what, "status", "{d}");
            } else if uri.starts_with("/body/") {
                assert_eq!(what, "body_length", "{d}");
            } else if uri.starts_with("/chunked/body/") {
                // Same length, one byte changed (`sane` for `same`): the third byte of the
                // upstream's differing line, reported as the start of the 1 KiB block holding it.
                assert_eq!(what, "body", "{d}");
                let line_len = format!("same {uri}\n").len() as u64;
                let (piece, line) = upstream::DIFFERING_LINE;
                let byte = (piece * upstream::LINES_PER_PIECE + line) as u64 * line_len + 2;
                assert_eq!(d["difference"]["at"]["offset"], byte / 1024 * 1024, "{d}");
                assert_eq!(d["online"]["length"], d["test"]["length"], "{d}");
                let lines = (upstream::PIECES * upstream::LINES_PER_PIECE) as u64;
                assert_eq!(d["online"]["length"], lines * line_len, "{d}");
            } else {
                panic!("a request that should be the same differs: {d}");
            }
            uri
        })
        .collect();
    uris.sort();
    let mut expected: Vec<String> = kept
        .iter()
        .chain(piped)
        .filter(|u| {
            u.starts_with("/changed/") || u.starts_with("/body/") || u.starts_with("/chunked/body/")
        })
        .cloned()
        .collect();
    expected.sort();
    assert_eq!(uris, expected);
}
