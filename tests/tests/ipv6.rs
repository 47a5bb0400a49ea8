//! IPv6 end to end, replays across address families, and control-channel version pairings.
//! curl on the client talks to the online nginx over IPv6 or IPv4; tcpcopy replays to the test
//! nginx; intercept on the assistant reports the replies (protocol version 7 carries IPv6).
//! Every assertion is on what the real nginx on the test host logged.

use std::{collections::HashSet, time::Duration};

use tcpcopy_testbed::{Host, IFACE, REPLAY_CLIENTS6, Spawned, Testbed};
use tcpcopy_tests::{
    codes, counter, curl_to, logged, start_intercept_with, start_tcpcopy_args, two_hosts,
    wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_mins(1);

/// `n` one-request connections from the client to online over IPv6 (`v6`) or IPv4, under
/// `/{path}/`, two curl processes at once; every one answered 200 by online.
fn load(bed: &Testbed, v6: bool, path: &str, n: usize) {
    let a = curl_to(bed, Host::Online, v6, path, 0..n / 2, true);
    let b = curl_to(bed, Host::Online, v6, path, n / 2..n, true);
    let mut answered = codes(a);
    answered.extend(codes(b));
    assert_eq!(
        answered.iter().filter(|c| *c == "200").count(),
        n,
        "online answered all of /{path}/"
    );
}

/// Waits until the test nginx has logged `n` requests under `/{path}/` and tcpcopy has settled
/// (`sessions` sessions, all ended); returns the test nginx's lines.
fn replayed(
    bed: &Testbed,
    tcpcopy: &mut Spawned,
    path: &str,
    n: usize,
    sessions: u64,
) -> Vec<String> {
    assert!(
        wait_until(WAIT, || logged(bed, Host::Test, path).len() >= n),
        "replayed /{path}/: {} of {n}; {:?}",
        logged(bed, Host::Test, path).len(),
        tcpcopy.lines().last()
    );
    wait_settled(bed, tcpcopy, sessions, WAIT);
    let test = logged(bed, Host::Test, path);
    assert_eq!(test.len(), n, "exactly once each");
    test
}

/// tcpcopy replaying online's port 80 to the test host's address of family `to_v6`, with
/// intercept reached over `control_v6`, plus `extra`.
fn tcpcopy(bed: &Testbed, to_v6: bool, control_v6: bool, extra: &[&str]) -> Spawned {
    let map = format!("80-{}", Host::Test.socket(to_v6, 80));
    let intercept = bed.intercept_host().ip(control_v6).to_string();
    let clients = if to_v6 { REPLAY_CLIENTS6 } else { "192.0.2.x" };
    let mut args = vec!["-i", IFACE, "-x", &map, "-s", &intercept, "-c", clients];
    args.extend_from_slice(extra);
    start_tcpcopy_args(bed, &args)
}

fn attached(p: &mut Spawned) -> String {
    p.lines()
        .into_iter()
        .find(|l| l.starts_with("attached"))
        .expect("an attached line")
}

#[test]
fn ipv6_clients_replayed_over_ipv6_with_af_xdp_and_with_the_fallbacks() {
    ipv6_clients(&Testbed::up().expect("testbed"));
}

/// [`ipv6_clients_replayed_over_ipv6_with_af_xdp_and_with_the_fallbacks`] in the two-host
/// layout: intercept `--egress` on the test host (tc egress, replies through the ring either
/// way), none of the replies leaving it.
#[test]
fn two_hosts_ipv6_clients_replayed_over_ipv6() {
    let bed = two_hosts();
    ipv6_clients(&bed);
    assert_eq!(
        bed.leaving_test(tcpcopy_testbed::Leaving::Replies6)
            .unwrap(),
        0,
        "no reply left the test host"
    );
}

fn ipv6_clients(bed: &Testbed) {
    for (round, (send, capture)) in [("xdp", "auto"), ("raw", "ring")].into_iter().enumerate() {
        let path = format!("six{round}");
        let mut intercept = start_intercept_with(bed, &["--capture", capture]);
        let mut tcpcopy = tcpcopy(bed, true, true, &["--send", send]);
        let line = attached(&mut tcpcopy);
        let want = if round == 0 {
            "send=af_xdp-copy"
        } else {
            "send=raw"
        };
        assert!(line.contains(want), "{line}");
        let stats = tcpcopy
            .wait_for(|l| l.starts_with("stats"), "stats", WAIT)
            .unwrap();
        assert_eq!(
            counter(&stats, "v7_links"),
            2,
            "IPv6 registrations need version 7: {stats}"
        );
        load(bed, true, &path, 1000);
        let test = replayed(bed, &mut tcpcopy, &path, 1000, 1000);
        assert!(
            test.iter().all(|l| l.starts_with("2001:db8:2::")),
            "from the rewritten IPv6 client addresses: {:?}",
            &test[..1]
        );
        let online: HashSet<_> = logged(bed, Host::Online, &path)
            .iter()
            .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
            .collect();
        let got: HashSet<_> = test
            .iter()
            .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
            .collect();
        assert_eq!(got, online, "the same requests");
        let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(counter(&last, "lost"), 0, "{last}");
        assert_eq!(counter(&last, "unregistrable"), 0, "{last}");
        let icpt = intercept.finish(Duration::from_secs(10)).unwrap();
        if capture == "ring" {
            assert!(
                counter(&icpt, "copied") > 0,
                "replies through the ring: {icpt}"
            );
        } else {
            assert!(
                counter(&icpt, "redirected") > 0,
                "replies through AF_XDP: {icpt}"
            );
        }
        assert!(
            counter(&icpt, "forwarded") >= 2000,
            "SYN-ACKs and answers: {icpt}"
        );
        assert_eq!(
            counter(&icpt, "deregistered"),
            1000,
            "every route withdrawn: {icpt}"
        );
    }
}

#[test]
fn three_copies_over_ipv6() {
    three_copies6(&Testbed::up().expect("testbed"));
}

/// [`three_copies_over_ipv6`] in the two-host layout (intercept `--egress` on the test host).
#[test]
fn two_hosts_three_copies_over_ipv6() {
    let bed = two_hosts();
    three_copies6(&bed);
    assert_eq!(
        bed.leaving_test(tcpcopy_testbed::Leaving::Replies6)
            .unwrap(),
        0,
        "no reply left the test host"
    );
}

fn three_copies6(bed: &Testbed) {
    let _intercept = start_intercept_with(bed, &[]);
    let mut tcpcopy = tcpcopy(bed, true, false, &["-n", "3"]);
    load(bed, true, "six3", 300);
    let test = replayed(bed, &mut tcpcopy, "six3", 900, 900);
    let mut copies: std::collections::HashMap<&str, HashSet<(&str, &str)>> =
        std::collections::HashMap::new();
    for l in &test {
        let mut f = l.split(' ');
        let tuple = (f.next().unwrap(), f.next().unwrap());
        copies
            .entry(l.split('"').nth(1).unwrap())
            .or_default()
            .insert(tuple);
    }
    assert_eq!(copies.len(), 300);
    assert!(
        copies.values().all(|t| t.len() == 3),
        "each request's three copies from three IPv6 client address/ports"
    );
}

#[test]
fn ipv4_replayed_to_ipv6_and_ipv6_replayed_to_ipv4() {
    let bed = Testbed::up().expect("testbed");
    let mut intercept = start_intercept_with(&bed, &[]);
    // An IPv4 service replayed to an IPv6 test server: an IPv6 migration tested with real traffic.
    let mut t = tcpcopy(&bed, true, false, &[]);
    load(&bed, false, "four2six", 300);
    let test = replayed(&bed, &mut t, "four2six", 300, 300);
    assert!(
        test.iter().all(|l| l.starts_with("2001:db8:2::")),
        "{:?}",
        &test[..1]
    );
    let last = t.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    // And back: IPv6 clients replayed to the IPv4 address.
    let mut t = tcpcopy(&bed, false, true, &[]);
    load(&bed, true, "six2four", 300);
    let test = replayed(&bed, &mut t, "six2four", 300, 300);
    assert!(
        test.iter().all(|l| l.starts_with("192.0.2.")),
        "{:?}",
        &test[..1]
    );
    let last = t.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    let icpt = intercept.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&icpt, "not_tcp"), 0, "{icpt}");
}

/// Either end speaking only protocol version 6, as the original does: the other settles on 6
/// and IPv4 replay works; IPv6 registrations are counted as unregistrable, not sent.
#[test]
fn version_7_with_a_version_6_peer_on_either_side() {
    let bed = Testbed::up().expect("testbed");
    for (round, (tcpcopy_protocol, intercept_protocol)) in
        [("7", "6"), ("6", "7")].into_iter().enumerate()
    {
        let path = format!("mixed{round}");
        let mut intercept = start_intercept_with(&bed, &["--protocol", intercept_protocol]);
        let mut t = tcpcopy(&bed, false, false, &["--protocol", tcpcopy_protocol]);
        let stats = t
            .wait_for(|l| l.starts_with("stats"), "stats", WAIT)
            .unwrap();
        assert_eq!(
            counter(&stats, "v7_links"),
            0,
            "settled on version 6: {stats}"
        );
        load(&bed, false, &path, 300);
        replayed(&bed, &mut t, &path, 300, 300);
        let last = t.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(counter(&last, "lost"), 0, "{last}");
        let icpt = intercept.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(
            counter(&icpt, "deregistered"),
            0,
            "version 6 withdraws nothing: {icpt}"
        );
    }
}
