//! `tcpcopy --compare` end to end: production's responses caught at tc egress on the online
//! host, the test server's payloads from intercept (protocol version 7, capability 4), every
//! request's answers compared. The test nginx answers `/changed/*` with 500 and `/body/*` with
//! another body; `/build/*` carries an `X-Build` header naming the host (see
//! `tcpcopy_testbed::nginx`). Assertions are on tcpcopy's counters and its `--compare-log`.

use std::time::Duration;

use tcpcopy_testbed::{Host, Spawned, Testbed};
use tcpcopy_tests::{codes, counter, curl, start_intercept, start_tcpcopy};

const WAIT: Duration = Duration::from_mins(1);

/// Waits for a stats line whose comparison has decided `n` requests (or more); that line.
fn wait_decided(tcpcopy: &mut Spawned, n: u64) -> String {
    tcpcopy
        .wait_for(
            |l| {
                l.starts_with("stats")
                    && l.contains(" compare ")
                    && counter(l, "same") + counter(l, "differ") + counter(l, "not_compared") >= n
            },
            "the comparison's verdicts",
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The JSON lines of a compare log.
fn log_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn of_kind<'a>(lines: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

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
    let line = wait_decided(&mut tcpcopy, 1000);
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
        let line = wait_decided(&mut tcpcopy, 50);
        let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(counter(&line, "not_compared"), 0, "{line}");
        let differ = of_kind(&log_lines(&log), "differ")
            .into_iter()
            .cloned()
            .collect::<Vec<_>>();
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
