//! Operating it: `--metrics` (Prometheus text checked by promtool, readiness), `--session-log`
//! (one JSON line per session, reopened on SIGHUP) on a live replay in the testbed.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use tcpcopy_testbed::{Host, Testbed};
use tcpcopy_tests::{
    codes, counter, curl, http_get, logged, sample_sum, scrape, start_intercept_with,
    start_tcpcopy, wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_mins(1);
const TCPCOPY_METRICS: &str = "127.0.0.1:9464";
const INTERCEPT_METRICS: &str = "127.0.0.1:9465";

/// `promtool check metrics` on `text`: passes, or panics with what promtool said.
fn promtool_accepts(text: &str) {
    tcpcopy_testbed::tools::require("promtool").unwrap_or_else(|e| panic!("{e:#}"));
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// tcpcopy's metrics after 1000 one-request sessions: promtool takes them; the figures agree
/// with the replay.
fn check_tcpcopy_metrics(text: &str) {
    promtool_accepts(text);
    let completed = sample_sum(text, "tcpcopy_sessions_total", &["outcome=\"completed\""]);
    assert!(
        (completed - 1000.0).abs() < f64::EPSILON,
        "completed sessions: {completed}\n{text}"
    );
    let all_ended = sample_sum(text, "tcpcopy_sessions_total", &[]);
    assert!(
        (all_ended - 1000.0).abs() < f64::EPSILON,
        "no loss: {all_ended}"
    );
    for (name, at_least) in [
        ("tcpcopy_requests_total", 1000.0),
        ("tcpcopy_response_time_seconds_count", 1000.0),
        ("tcpcopy_sent_packets_total", 3000.0),
        ("tcpcopy_sent_payload_bytes_total", 1000.0),
        ("tcpcopy_captured_packets_total", 4000.0),
        ("tcpcopy_xdp_matched_frames_total", 4000.0),
        ("tcpcopy_xdp_matched_bytes_total", 100_000.0),
        ("tcpcopy_intercept_links_up", 2.0),
    ] {
        let v = sample_sum(text, name, &[]);
        assert!(
            v >= at_least,
            "{name} = {v}, expected >= {at_least}\n{text}"
        );
    }
    assert!(
        text.contains("# TYPE tcpcopy_replay_lag_seconds gauge")
            && text.contains("# TYPE tcpcopy_response_time_seconds histogram")
            && text.contains("tcpcopy_syn_retries_total{worker=\"0\"} 0")
            && text.contains("tcpcopy_rebuilds_total{worker=\"0\"} 0")
            && text.contains("tcpcopy_sessions_half_open_total{worker=\"0\"} 0")
            && text.contains("tcpcopy_sessions_total{worker=\"0\",outcome=\"capture_gap\"} 0"),
        "{text}"
    );
}

/// The session log after 1000 one-request sessions: one JSON line each, completed, with its
/// figures.
fn check_records(records: &[String]) {
    assert_eq!(records.len(), 1000);
    println!("a session record: {}", records[0]);
    for r in records {
        let j: serde_json::Value = serde_json::from_str(r).unwrap_or_else(|e| panic!("{e}: {r}"));
        assert_eq!(j["outcome"], "completed", "{r}");
        assert_eq!(j["requests"], 1, "{r}");
        assert!(j["bytes"].as_u64().unwrap() > 50, "{r}");
        assert!(
            j["replay_client"].as_str().unwrap().starts_with("192.0.2."),
            "{r}"
        );
        assert!(
            j["captured_client"]
                .as_str()
                .unwrap()
                .starts_with("198.51.100.10:"),
            "{r}"
        );
        assert_eq!(j["target"], "198.51.100.30:80", "{r}");
        assert!(
            j["start"].as_str().unwrap() <= j["end"].as_str().unwrap(),
            "{r}"
        );
    }
}

#[test]
fn metrics_and_session_records_of_a_thousand_requests() {
    let bed = Testbed::up().expect("testbed");
    let mut intercept = start_intercept_with(&bed, &["--metrics", INTERCEPT_METRICS]);
    let log = bed.dir().join("sessions.jsonl");
    let log_arg = log.to_str().unwrap();
    let mut tcpcopy = start_tcpcopy(
        &bed,
        &["--metrics", TCPCOPY_METRICS, "--session-log", log_arg],
    );
    // Attached and every intercept link up (start_tcpcopy waited for that): ready.
    let (status, body) = http_get(&bed, Host::Online, TCPCOPY_METRICS, "/ready");
    assert_eq!(status, "200", "{body}");
    assert_eq!(
        http_get(&bed, Host::Online, TCPCOPY_METRICS, "/live").0,
        "200"
    );
    assert_eq!(
        http_get(&bed, Host::Assistant, INTERCEPT_METRICS, "/ready").0,
        "200"
    );
    assert_eq!(
        http_get(&bed, Host::Online, TCPCOPY_METRICS, "/nothing").0,
        "404"
    );

    let a = curl(&bed, Host::Online, "ops", 0..500, true);
    let b = curl(&bed, Host::Online, "ops", 500..1000, true);
    let mut answered = codes(a);
    answered.extend(codes(b));
    assert_eq!(answered.iter().filter(|c| *c == "200").count(), 1000);
    assert!(
        wait_until(WAIT, || logged(&bed, Host::Test, "ops").len() >= 1000),
        "replayed: {}",
        logged(&bed, Host::Test, "ops").len()
    );
    let settled = wait_settled(&bed, &mut tcpcopy, 1000, WAIT);
    assert_eq!(counter(&settled, "completed"), 1000, "{settled}");

    // tcpcopy's metrics: promtool takes them; the figures agree with the replay.
    let text = scrape(&bed, Host::Online, TCPCOPY_METRICS);
    check_tcpcopy_metrics(&text);

    // intercept's metrics.
    let itext = scrape(&bed, Host::Assistant, INTERCEPT_METRICS);
    promtool_accepts(&itext);
    assert!(
        sample_sum(&itext, "intercept_replies_forwarded_total", &[]) >= 2000.0,
        "{itext}"
    );
    assert!(
        (sample_sum(&itext, "intercept_tcpcopy_connections", &[]) - 2.0).abs() < f64::EPSILON,
        "{itext}"
    );
    assert!(
        sample_sum(&itext, "intercept_xdp_redirected_frames_total", &[]) > 0.0,
        "{itext}"
    );

    // The session log: 1000 JSON lines, one per session, each completed with its figures.
    assert!(
        wait_until(WAIT, || lines(&log).len() >= 1000),
        "session log lines: {}",
        lines(&log).len()
    );
    check_records(&lines(&log));

    // logrotate: the file moved away, SIGHUP, and the next sessions go to a new file of the
    // old name; the moved one keeps its 1000 lines.
    let moved = bed.dir().join("sessions.jsonl.1");
    std::fs::rename(&log, &moved).unwrap();
    tcpcopy.signal("HUP").unwrap();
    assert!(
        wait_until(WAIT, || log.exists()),
        "the session log reopened under its name"
    );
    let c = curl(&bed, Host::Online, "rotated", 0..10, true);
    assert_eq!(codes(c).iter().filter(|c| *c == "200").count(), 10);
    assert!(
        wait_until(WAIT, || lines(&log).len() >= 10),
        "records after the reopen: {}",
        lines(&log).len()
    );
    wait_settled(&bed, &mut tcpcopy, 1010, WAIT);
    assert_eq!(lines(&log).len(), 10);
    assert_eq!(lines(&moved).len(), 1000);
    assert!(
        tcpcopy.lines().iter().all(|l| !l.starts_with("final")),
        "still running after SIGHUP"
    );

    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    intercept.finish(Duration::from_secs(10)).unwrap();
}

/// `--log-format json`: every report line on stdout and every log record (`-l`) is a JSON
/// object; the report lines carry their counters as fields.
#[test]
fn json_logs_and_report_lines() {
    let bed = Testbed::up().expect("testbed");
    let log = bed.dir().join("intercept.log");
    let mut cmd = bed.cmd(
        Host::Assistant,
        tcpcopy_testbed::binary("intercept")
            .unwrap()
            .to_str()
            .unwrap(),
    );
    cmd.args(["-i", tcpcopy_testbed::IFACE, "--stats-interval", "1"])
        .args(["--log-format", "json", "-l", log.to_str().unwrap()]);
    let mut intercept = tcpcopy_testbed::Spawned::start(cmd).unwrap();
    let attached = intercept
        .wait_for(|l| l.contains("\"event\":\"attached\""), "attached", WAIT)
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&attached).unwrap();
    assert_eq!(j["fields"]["iface"], "veth0", "{attached}");
    intercept
        .wait_for(|l| l.contains("\"event\":\"stats\""), "a stats line", WAIT)
        .unwrap();
    intercept.signal("TERM").unwrap();
    intercept.wait(WAIT).unwrap();
    let out = intercept.lines();
    let records = lines(&log);
    assert!(out.len() >= 3, "{out:?}");
    assert!(!records.is_empty(), "log records in {}", log.display());
    for l in out.iter().chain(&records) {
        let j: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(j["time"].is_string() && j["message"].is_string(), "{l}");
    }
    assert!(
        records.iter().all(|l| l.contains("\"level\":")),
        "log records with their level: {records:?}"
    );
    let last = out
        .iter()
        .find(|l| l.contains("\"event\":\"final\""))
        .expect("a final line");
    let j: serde_json::Value = serde_json::from_str(last).unwrap();
    assert!(j["fields"]["seen"].is_u64(), "{last}");
}
