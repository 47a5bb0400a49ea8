//! The test server restarted in the middle of a replay, as every deploy of a test environment
//! does: the test nginx stops gracefully (`nginx -s quit`) while one-request and keep-alive
//! clients talk to online, stays down while online answers a hundred more requests, and starts
//! again. tcpcopy retries the refused SYNs and rebuilds the keep-alive connection the test
//! server closed. Every request online received reaches the test server at most once, and all
//! but at most 1% of them reach it (what is still lost: see the README's Status).

use std::{
    process::{Child, Stdio},
    time::Duration,
};

use tcpcopy_testbed::{Host, Testbed};
use tcpcopy_tests::{
    codes, counter, curl, curl_args, logged, requests, sample_sum, scrape, start_intercept,
    start_tcpcopy, wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_secs(45);
const METRICS: &str = "127.0.0.1:9464";

#[test]
fn a_test_server_restart_mid_replay_loses_almost_nothing() {
    let bed = Testbed::up().expect("testbed");
    let _intercept = start_intercept(&bed);
    let mut tcpcopy = start_tcpcopy(&bed, &["--metrics", METRICS]);

    let one = curl(&bed, Host::Online, "one", 0..800, true);
    let kept = kept_alive(&bed, 400);
    let online =
        || logged(&bed, Host::Online, "one").len() + logged(&bed, Host::Online, "kept").len();
    // The keep-alive client is well under way, far from its end (100 requests a second: 4 s),
    // so the stop catches its replay mid-connection whatever the replay's pace.
    assert!(
        wait_until(WAIT, || online() >= 200
            && logged(&bed, Host::Online, "kept").len() >= 50),
        "load started"
    );
    bed.stop_nginx(Host::Test, WAIT).expect("test nginx stops");
    let at_stop = online();
    // Down while online answers a hundred more requests (or the load ends).
    assert!(wait_until(WAIT, || online() >= (at_stop + 100).min(1200)));
    bed.restart_nginx(Host::Test)
        .expect("test nginx starts again");
    let answered = [codes(one), codes(kept)].concat();
    assert_eq!(answered.iter().filter(|c| *c == "200").count(), 1200);

    for path in ["one", "kept"] {
        let want = logged(&bed, Host::Online, path).len();
        // All of them, or the replay has settled.
        wait_until(WAIT, || logged(&bed, Host::Test, path).len() >= want);
    }
    let settled = wait_settled(&bed, &mut tcpcopy, 801, WAIT);
    let mut missing = Vec::new();
    for path in ["one", "kept"] {
        let got = requests(&logged(&bed, Host::Test, path));
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "no /{path}/ request twice");
        missing.extend(
            requests(&logged(&bed, Host::Online, path))
                .into_iter()
                .filter(|r| !got.contains(r)),
        );
    }
    println!(
        "restart: {} of 1200 requests missing {missing:?}; {settled}",
        missing.len()
    );
    assert!(missing.len() <= 12, "missing {missing:?}; {settled}");
    assert!(counter(&settled, "lost") <= 8, "{settled}");
    assert!(
        counter(&settled, "syn_retries") > 0,
        "SYNs refused while down: {settled}"
    );
    assert!(
        counter(&settled, "rebuilds") > 0,
        "the keep-alive connection rebuilt: {settled}"
    );
    // The same counters in the metrics.
    let text = scrape(&bed, Host::Online, METRICS);
    for name in ["tcpcopy_syn_retries_total", "tcpcopy_rebuilds_total"] {
        assert!(sample_sum(&text, name, &[]) > 0.0, "{name} moved: {text}");
    }
}

/// `curl` from the client asking online for `/kept/0` to `/kept/{n - 1}` on one keep-alive
/// connection, 100 requests a second (its stdout lists the HTTP codes).
fn kept_alive(bed: &Testbed, n: usize) -> Child {
    bed.cmd(Host::Client, "curl")
        .args(curl_args(Host::Online, false, "kept", 0..n, false))
        .args(["--rate", "100/s"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start curl")
}
