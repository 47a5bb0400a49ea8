//! `tcpcopy --compare` on the other paths the test server's answers take: intercept on the test
//! server itself (`--egress`, the two-host layout), and loss and reordering between the test
//! server and intercept (and between online and test) through the testbed's impairment relay.
//! Also the per-session memory cap: a session over it is counted not compared (`over_cap`), and
//! its replay goes on.
//!
//! The test nginx answers `/changed/*` with 500 and `/body/*` with another body; `/static/*`
//! serves the same file on both hosts (the testbed folder's `static/`): a large answer in many
//! segments.

use std::time::Duration;

use tcpcopy_testbed::{Host, Spawned, Testbed};
use tcpcopy_tests::{
    codes, compare_log::differ_lines, counter, curl, logged, next_stats, start_intercept,
    start_tcpcopy, two_hosts, wait_decided, wait_until,
};

const WAIT: Duration = Duration::from_secs(90);

/// How many requests of each kind a run sends.
struct Load {
    /// One-request connections to `/same/` (answered alike).
    same: usize,
    /// One-request connections to `/changed/` (500 on the test server).
    changed: usize,
    /// One-request connections to `/body/` (another body on the test server).
    body: usize,
    /// Requests for a 96 KiB file on one keep-alive connection (answered alike, in about 70
    /// segments each).
    large: usize,
}

impl Load {
    fn total(&self) -> u64 {
        (self.same + self.changed + self.body + self.large) as u64
    }
}

const LARGE: u32 = 96 * 1024;

/// Puts the large file into the testbed folder both nginx serve `/static/` from.
fn large_file(bed: &Testbed) {
    let dir = bed.dir().join("static");
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..LARGE)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz"[(i.wrapping_mul(2_654_435_761) >> 27) as usize % 26])
        .collect();
    std::fs::write(dir.join("large"), data).unwrap();
}

/// Sends `load` from the client to online; asserts online answered every request with 200.
fn send(bed: &Testbed, load: &Load) {
    let same = curl(bed, Host::Online, "same", 0..load.same, true);
    let changed = curl(bed, Host::Online, "changed", 0..load.changed, true);
    let body = curl(bed, Host::Online, "body", 0..load.body, true);
    // `/static/large/{i}` would be a folder: the keep-alive connection asks for the one file.
    let large = bed
        .cmd(Host::Client, "curl")
        .args(["-gs", "--max-time", "60", "-w", "%{http_code}\\n"])
        .args((0..load.large).flat_map(|i| {
            [
                "-o".to_owned(),
                "/dev/null".to_owned(),
                format!("http://{}/static/large?{i}", Host::Online.addr()),
            ]
        }))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start curl");
    let answered = [codes(same), codes(changed), codes(body), codes(large)].concat();
    assert_eq!(
        answered.iter().filter(|c| *c == "200").count() as u64,
        load.total(),
        "online answered all with 200: {answered:?}"
    );
}

/// Runs `load` through tcpcopy `--compare` and intercept (already started on `bed`); asserts
/// the exact verdicts (`/changed/` differ by status 200/500, `/body/` by body length, every other
/// request the same, none not compared) in the stats line, the final line and the log, and that
/// every test-server answer came with its payload. Returns tcpcopy's final line and intercept's.
fn exact_verdicts(bed: &Testbed, mut intercept: Spawned, load: &Load) -> (String, String) {
    large_file(bed);
    let log = bed.dir().join("compare.jsonl");
    let log_arg = log.to_str().unwrap().to_owned();
    let mut tcpcopy = start_tcpcopy(bed, &["--compare", "--compare-log", &log_arg]);
    send(bed, load);
    let line = wait_decided(&mut tcpcopy, load.total(), WAIT);
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    let icpt = intercept.finish(Duration::from_secs(10)).unwrap();
    let same = (load.same + load.large) as u64;
    let differ = (load.changed + load.body) as u64;
    for l in [&line, &last] {
        assert_eq!(counter(l, "same"), same, "{l}; intercept: {icpt}");
        assert_eq!(counter(l, "differ"), differ, "{l}; intercept: {icpt}");
        assert_eq!(counter(l, "not_compared"), 0, "{l}; intercept: {icpt}");
    }
    assert_eq!(counter(&last, "compare_payloads_missing"), 0, "{last}");
    assert_eq!(counter(&icpt, "payload_dropped"), 0, "{icpt}");
    assert!(counter(&icpt, "payloads") >= load.total(), "{icpt}");
    let differ_lines = differ_lines(&log);
    assert_eq!(differ_lines.len() as u64, differ, "{differ_lines:?}");
    let (mut changed, mut body) = (0, 0);
    for d in &differ_lines {
        let request = d["request"].as_str().unwrap();
        if request.starts_with("GET /changed/") {
            assert_eq!(d["difference"]["what"], "status", "{d}");
            assert_eq!(
                (d["online"]["status"].clone(), d["test"]["status"].clone()),
                (200.into(), 500.into()),
                "{d}"
            );
            changed += 1;
        } else if request.starts_with("GET /body/") {
            assert_eq!(d["difference"]["what"], "body_length", "{d}");
            body += 1;
        } else {
            panic!("a request that should be the same differs: {d}");
        }
    }
    assert_eq!((changed, body), (load.changed, load.body));
    (last, icpt)
}

/// Intercept on the test server (`--egress`, its tc egress program copying whole replies): the
/// test server's answers reach tcpcopy with their payloads, and the verdicts are exact.
#[test]
fn egress_mode_compares_every_request_exactly() {
    let bed = two_hosts();
    let intercept = start_intercept(&bed);
    assert!(
        intercept
            .lines()
            .iter()
            .any(|l| l.starts_with("attached") && l.contains("mode=tc-egress")),
        "{:?}",
        intercept.lines()
    );
    let load = Load {
        same: 300,
        changed: 50,
        body: 50,
        large: 30,
    };
    exact_verdicts(&bed, intercept, &load);
}

/// 5% loss and 10% reordering on the test server's link, both ways: tcpcopy's packets to the
/// test server and the test server's answers on their way to intercept (on the assistant).
/// Retransmitted and reordered answers are reassembled by sequence number: the verdicts are as
/// exact as without impairment.
#[test]
fn loss_and_reordering_between_test_and_intercept_keep_the_verdicts_exact() {
    let bed = Testbed::up().expect("testbed");
    let mut relay = bed
        .impair(Host::Test, &["loss=5", "reorder=10", "seed=17"])
        .expect("impairment relay");
    let intercept = start_intercept(&bed);
    let load = Load {
        same: 200,
        changed: 50,
        body: 50,
        large: 20,
    };
    let (last, _) = exact_verdicts(&bed, intercept, &load);
    // The relay did impair both ways; the replay retransmitted.
    let impaired = next_stats(&mut relay);
    for what in ["dropped", "reordered"] {
        for dir in ["in", "out"] {
            assert!(
                counter(&impaired, &format!("{dir}_{what}")) > 0,
                "{dir}_{what}: {impaired}"
            );
        }
    }
    assert!(counter(&last, "retransmits") > 0, "{last}");
}

/// `--compare-session-kib 1`: a keep-alive session of large answers holds more than its cap:
/// the requests it had begun when it crossed the cap are counted not compared (`over_cap`, at
/// least one; the session in `compare_sessions_over_cap`; the rest of it is not looked at), the
/// other sessions are compared, and the replay goes on: every request reaches the test server.
#[test]
fn a_session_over_its_cap_is_counted_not_compared_and_still_replayed() {
    let bed = Testbed::up().expect("testbed");
    large_file(&bed);
    let _intercept = start_intercept(&bed);
    let mut tcpcopy = start_tcpcopy(&bed, &["--compare", "--compare-session-kib", "1"]);
    let load = Load {
        same: 20,
        changed: 0,
        body: 0,
        large: 20,
    };
    send(&bed, &load);
    // Every request reached the test server, the capped session's too.
    assert!(
        wait_until(WAIT, || logged(&bed, Host::Test, "same").len() >= load.same
            && bed
                .requests(Host::Test)
                .unwrap_or_default()
                .iter()
                .filter(|l| l.contains(" /static/large?"))
                .count()
                >= load.large),
        "every request replayed"
    );
    let line = tcpcopy
        .wait_for(
            |l| l.starts_with("stats") && l.contains(" compare ") && counter(l, "same") >= 20,
            "the one-request sessions compared",
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "same"), load.same as u64, "{line}; {last}");
    assert_eq!(counter(&last, "differ"), 0, "{last}");
    assert_eq!(counter(&last, "compare_sessions_over_cap"), 1, "{last}");
    let by = last
        .split_whitespace()
        .find_map(|w| w.strip_prefix("compare_not_compared_by="))
        .unwrap();
    assert!(
        by.starts_with("over_cap:") && !by.contains(','),
        "only over_cap: {last}"
    );
    assert!(counter(&last, "not_compared") >= 1, "{last}");
    assert_eq!(counter(&last, "lost"), 0, "{last}");
}
