//! Strangers on intercept's control port (issue 15's chaos cases): a million made-up
//! registrations from a host outside `--allow` are turned away at the door and cost intercept no
//! memory; from an allowed host they are bounded by the per-connection route limit (counted as
//! refused), intercept's memory stays bounded, and a real replay running beside them is
//! unaffected.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Stdio},
    time::Duration,
};

use tcpcopy_testbed::{Host, Testbed, binary};
use tcpcopy_tests::{
    counter, curl_each, logged, start_intercept_with, start_tcpcopy, wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_mins(1);
const FLOOD: u32 = 1_000_000;
const PER_CONNECTION: u32 = 100_000;

/// `VmRSS` of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// The flood from `host`: its summary line (`sent=N open=BOOL ...`) and the process, which
/// holds its connection (and its routes) until its stdin closes.
fn flood(bed: &Testbed, host: Host) -> (String, Child) {
    let path = binary("control-flood").expect("built");
    let target = format!("{}:36524", Host::Assistant.addr());
    let mut child = bed
        .cmd(host, path.to_str().expect("utf-8"))
        .args([&target, &FLOOD.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start control-flood");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its summary");
    (line, child)
}

#[test]
fn a_million_foreign_registrations_are_refused_or_bounded() {
    let bed = Testbed::up().expect("testbed");
    let online = format!("{}/32", Host::Online.addr());
    let limit = PER_CONNECTION.to_string();
    let mut intercept = start_intercept_with(
        &bed,
        &["--allow", &online, "--max-routes-per-connection", &limit],
    );
    let base = rss_kib(intercept.pid());

    // Outside --allow: closed before it can say anything.
    let (said, mut child) = flood(&bed, Host::Client);
    assert!(said.starts_with("sent=0 open=false"), "{said}");
    drop(child.stdin.take());
    child.wait().expect("flood ends");
    let s = intercept
        .wait_for(
            |l| l.starts_with("stats") && counter(l, "peers_not_allowed") == 1,
            "refused",
            WAIT,
        )
        .unwrap();
    assert_eq!(counter(&s, "routes"), 0, "{s}");
    let after_refused = rss_kib(intercept.pid());
    assert!(
        after_refused < base + 2048,
        "memory flat: {base} KiB -> {after_refused} KiB"
    );

    // From the allowed host, beside a real replay: bounded, counted, the replay unaffected.
    let mut tcpcopy = start_tcpcopy(&bed, &[]);
    let (said, mut child) = flood(&bed, Host::Online);
    assert!(
        said.starts_with(&format!("sent={FLOOD} open=true")),
        "{said}"
    );
    let s = intercept
        .wait_for(
            |l| {
                l.starts_with("stats")
                    && counter(l, "routes_refused") == u64::from(FLOOD - PER_CONNECTION)
            },
            "the flood bounded",
            WAIT,
        )
        .unwrap();
    assert!(counter(&s, "routes") >= u64::from(PER_CONNECTION), "{s}");
    let flooded = rss_kib(intercept.pid());
    assert!(
        flooded < base + 128 * 1024,
        "memory bounded: {base} KiB -> {flooded} KiB with {PER_CONNECTION} routes"
    );
    let codes = curl_each(&bed, Host::Online, "beside", 300);
    assert_eq!(codes.iter().filter(|c| *c == "200").count(), 300);
    assert!(wait_until(WAIT, || logged(&bed, Host::Test, "beside")
        .len()
        >= 300));
    let settled = wait_settled(&bed, &mut tcpcopy, 300, WAIT);
    assert_eq!(counter(&settled, "lost"), 0, "{settled}");
    assert_eq!(logged(&bed, Host::Test, "beside").len(), 300);
    println!(
        "chaos: intercept VmRSS {base} KiB at start, {after_refused} KiB after the refused flood, \
         {flooded} KiB with {PER_CONNECTION} foreign routes; {s}"
    );
    // The stranger leaves: its routes go with its connection.
    drop(child.stdin.take());
    child.wait().expect("flood ends");
    intercept
        .wait_for(
            |l| l.starts_with("stats") && counter(l, "routes") < u64::from(PER_CONNECTION),
            "the stranger's routes gone",
            WAIT,
        )
        .unwrap();
}
