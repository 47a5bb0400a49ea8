//! Chaos on the wire (issue 15): loss, reordering and duplication of the replayed traffic, both
//! between online and test (tcpcopy's packets to the test server) and between test and intercept
//! (the test server's replies on their way to the assistant). This kernel has no netem, so the
//! testbed's impairment relay (`impair`, [`Testbed::impair`]) sits on the test host's link and
//! does it, counting each packet it dropped, duplicated or reordered in each direction. Every
//! request online received reaches the test server exactly once, and no session is lost.

use std::time::Duration;

use tcpcopy_testbed::{Host, Testbed};
use tcpcopy_tests::{
    codes, counter, curl, logged, next_stats, requests, start_intercept, start_tcpcopy,
    wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_secs(90);
const ONE: usize = 400;
const KEPT: usize = 200;

/// `ONE` one-request connections and a keep-alive connection of `KEPT` requests from the client
/// to online, replayed through the impairment `options` on the test host's link. Asserts that
/// every request reached the test nginx exactly once and no session was lost; returns tcpcopy's
/// settled stats line and the relay's last counters.
fn replay_through(options: &[&str]) -> (String, String) {
    let bed = Testbed::up().expect("testbed");
    let mut relay = bed.impair(Host::Test, options).expect("impairment relay");
    let _intercept = start_intercept(&bed);
    let mut tcpcopy = start_tcpcopy(&bed, &[]);

    let one = curl(&bed, Host::Online, "one", 0..ONE, true);
    let kept = curl(&bed, Host::Online, "kept", 0..KEPT, false);
    let answered = [codes(one), codes(kept)].concat();
    assert_eq!(
        answered.iter().filter(|c| *c == "200").count(),
        ONE + KEPT,
        "online answers everything"
    );
    for path in ["one", "kept"] {
        let want = logged(&bed, Host::Online, path).len();
        wait_until(WAIT, || logged(&bed, Host::Test, path).len() >= want);
    }
    let settled = wait_settled(&bed, &mut tcpcopy, ONE as u64 + 1, WAIT);
    let impaired = next_stats(&mut relay);
    for path in ["one", "kept"] {
        let online = requests(&logged(&bed, Host::Online, path));
        let test = requests(&logged(&bed, Host::Test, path));
        let missing: Vec<_> = online.iter().filter(|r| !test.contains(r)).collect();
        assert!(
            missing.is_empty(),
            "/{path}/: {} of {} missing {missing:?}; {settled}; {impaired}",
            missing.len(),
            online.len()
        );
        assert_eq!(test, online, "/{path}/: each exactly once");
    }
    assert_eq!(counter(&settled, "lost"), 0, "{settled}; {impaired}");
    println!("impair {options:?}: {impaired}; tcpcopy {settled}");
    (settled, impaired)
}

/// Both directions had `what` (`dropped`, `duplicated`, `reordered`) done to them.
fn both_ways(impaired: &str, what: &str) {
    for dir in ["in", "out"] {
        let n = counter(impaired, &format!("{dir}_{what}"));
        assert!(n > 0, "{dir}_{what}=0: {impaired}");
    }
    assert_eq!(counter(impaired, "in_send_errors"), 0, "{impaired}");
    assert_eq!(counter(impaired, "out_send_errors"), 0, "{impaired}");
}

#[test]
fn one_percent_loss_both_ways_loses_no_request() {
    let (settled, impaired) = replay_through(&["loss=1", "seed=11"]);
    both_ways(&impaired, "dropped");
    assert!(counter(&settled, "retransmits") > 0, "{settled}");
}

#[test]
fn five_percent_loss_both_ways_loses_no_request() {
    let (settled, impaired) = replay_through(&["loss=5", "seed=12"]);
    both_ways(&impaired, "dropped");
    assert!(counter(&settled, "retransmits") > 0, "{settled}");
}

#[test]
fn reordering_both_ways_loses_no_request() {
    let (_, impaired) = replay_through(&["reorder=10", "seed=13"]);
    both_ways(&impaired, "reordered");
}

#[test]
fn duplication_both_ways_loses_no_request() {
    let (_, impaired) = replay_through(&["dup=10", "seed=14"]);
    both_ways(&impaired, "duplicated");
}
