//! Live replay across the testbed: curl on the client talks to the online nginx; tcpcopy on the
//! online host replays to the test nginx; intercept on the assistant reports the replies.
//! Every assertion is on what the real nginx on the test host logged.

use std::{collections::HashSet, time::Duration};

use tcpcopy_testbed::{Host, Leaving, Testbed};
use tcpcopy_tests::{
    codes, counter, curl, curl_each, logged, start_intercept, start_tcpcopy, two_hosts,
    wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_mins(1);

/// In the two-host layout: none of the test host's replies to the replayed clients left it
/// (counted on the bridge's side of its link).
fn none_left(bed: &Testbed) {
    if bed.two_hosts() {
        for what in [Leaving::Replies, Leaving::Replies6] {
            assert_eq!(
                bed.leaving_test(what).unwrap(),
                0,
                "{what:?} left the test host"
            );
        }
    }
}

/// The URIs of access-log lines (`addr port "GET /uri HTTP/1.1" ...`).
fn uris(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .filter_map(|l| l.split('"').nth(1))
        .filter_map(|r| r.split(' ').nth(1))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[test]
fn thousand_one_request_connections_arrive_exactly_once() {
    thousand_one_request_connections(&Testbed::up().expect("testbed"));
}

/// [`thousand_one_request_connections_arrive_exactly_once`] in the two-host layout: intercept `--egress` on the test host, no assistant,
/// no route for the replayed clients but the test host's default route.
#[test]
fn two_hosts_thousand_one_request_connections_arrive_exactly_once() {
    thousand_one_request_connections(&two_hosts());
}

fn thousand_one_request_connections(bed: &Testbed) {
    let mut intercept = start_intercept(bed);
    // On the assistant, replies through AF_XDP; on the test host, tc egress and the ring.
    let via = if bed.two_hosts() {
        "mode=tc-egress"
    } else {
        "capture=af_xdp-copy"
    };
    assert!(
        intercept.lines().iter().any(|l| l.contains(via)),
        "{:?}",
        intercept.lines()
    );
    let mut tcpcopy = start_tcpcopy(bed, &[]);
    let attached = tcpcopy
        .lines()
        .into_iter()
        .find(|l| l.starts_with("attached"))
        .unwrap();
    assert!(
        attached.contains("send=af_xdp-copy"),
        "AF_XDP transmit, copy mode on veth: {attached}"
    );

    let a = curl(bed, Host::Online, "one", 0..500, true);
    let b = curl(bed, Host::Online, "one", 500..1000, true);
    let mut answered = codes(a);
    answered.extend(codes(b));
    assert_eq!(
        answered.iter().filter(|c| *c == "200").count(),
        1000,
        "online answered all"
    );
    assert!(
        wait_until(WAIT, || logged(bed, Host::Test, "one").len() >= 1000),
        "replayed: {}",
        logged(bed, Host::Test, "one").len()
    );
    // Every session over: no copy still on its way that would arrive twice.
    wait_settled(bed, &mut tcpcopy, 1000, WAIT);
    let online = logged(bed, Host::Online, "one");
    let test = logged(bed, Host::Test, "one");
    assert_eq!(test.len(), 1000, "exactly once each");
    assert_eq!(uris(&test), uris(&online), "the same URLs");
    assert!(
        test.iter().all(|l| l.starts_with("192.0.2.")),
        "from the rewritten client addresses"
    );

    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "sessions"), 1000, "{last}");
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    assert_eq!(counter(&last, "ring_full"), 0, "{last}");
    let icpt = intercept.finish(Duration::from_secs(10)).unwrap();
    if bed.two_hosts() {
        assert!(
            counter(&icpt, "copied") >= 2000 && counter(&icpt, "forwarded") >= 2000,
            "replies caught at tc egress, through the ring: {icpt}"
        );
        none_left(bed);
    } else {
        assert!(
            counter(&icpt, "redirected") > 0 && counter(&icpt, "copied") == 0,
            "replies through AF_XDP: {icpt}"
        );
    }
}

#[test]
fn three_copies_from_three_client_sets() {
    three_copies(&Testbed::up().expect("testbed"));
}

/// [`three_copies_from_three_client_sets`] in the two-host layout: intercept `--egress` on the test host, no assistant,
/// no route for the replayed clients but the test host's default route.
#[test]
fn two_hosts_three_copies_from_three_client_sets() {
    three_copies(&two_hosts());
}

fn three_copies(bed: &Testbed) {
    // The fallbacks for drivers without AF_XDP: the raw-socket sender, the ring-buffer replies.
    let intercept = tcpcopy_tests::start_intercept_with(bed, &["--capture", "ring"]);
    let mut tcpcopy = start_tcpcopy(bed, &["-n", "3", "--send", "raw"]);
    assert!(intercept.lines().iter().any(|l| l.contains("capture=ring")));
    assert!(
        tcpcopy
            .lines()
            .iter()
            .any(|l| l.starts_with("attached") && l.contains("send=raw"))
    );
    let codes = curl_each(bed, Host::Online, "three", 1000);
    assert_eq!(codes.iter().filter(|c| *c == "200").count(), 1000);
    assert!(
        wait_until(WAIT, || logged(bed, Host::Test, "three").len() >= 3000),
        "replayed: {}; {:?}; {:?}",
        logged(bed, Host::Test, "three").len(),
        tcpcopy.lines().last(),
        intercept.lines().last()
    );
    wait_settled(bed, &mut tcpcopy, 3000, WAIT);
    let test = logged(bed, Host::Test, "three");
    assert_eq!(test.len(), 3000);
    // Every URL three times, each copy from its own client address/port. (A tuple may come
    // back for a later session once an earlier one is over; two live copies never share one:
    // that would cost sessions, and none is lost.)
    let mut tuples: std::collections::HashMap<&str, HashSet<(&str, &str)>> =
        std::collections::HashMap::new();
    for l in &test {
        let mut f = l.split(' ');
        let tuple = (f.next().unwrap(), f.next().unwrap());
        tuples
            .entry(l.split('"').nth(1).unwrap())
            .or_default()
            .insert(tuple);
    }
    assert!(
        tuples.values().all(|t| t.len() == 3),
        "each request's three copies from three client address/ports"
    );
    let mut per_uri = std::collections::HashMap::new();
    for u in uris(&test) {
        *per_uri.entry(u).or_insert(0) += 1;
    }
    assert!(per_uri.values().all(|n| *n == 3) && per_uri.len() == 1000);
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    none_left(bed);
}

/// Runs `sessions` keep-alive sessions of three requests each (`/{prefix}{s}/0`..`2`) at online,
/// ten at a time, through a tcpcopy started with `-r percent`; returns tcpcopy's last line once
/// the replay settled.
fn sampled_sessions(bed: &Testbed, percent: &str, prefix: &str, sessions: usize) -> String {
    let _intercept = start_intercept(bed);
    let mut tcpcopy = start_tcpcopy(bed, &["-r", percent]);
    let mut children = Vec::new();
    for s in 0..sessions {
        children.push(curl(
            bed,
            Host::Online,
            &format!("{prefix}{s}"),
            0..3,
            false,
        ));
        if children.len() == 10 {
            for c in children.drain(..) {
                assert_eq!(codes(c), vec!["200"; 3]);
            }
        }
    }
    for c in children {
        assert_eq!(codes(c), vec!["200"; 3]);
    }
    wait_settled(bed, &mut tcpcopy, 1, WAIT);
    tcpcopy.finish(Duration::from_secs(10)).unwrap()
}

/// The session (`s` of `/{prefix}{s}/..`) an access-log line's request belongs to.
fn session_of(line: &str, prefix: &str) -> Option<String> {
    let uri = line.split('"').nth(1)?.split(' ').nth(1)?;
    uri.strip_prefix('/')?
        .strip_prefix(prefix)?
        .split('/')
        .next()
        .map(str::to_owned)
}

/// Requests per session in an access log.
fn per_session(lines: &[String], prefix: &str) -> std::collections::HashMap<String, u32> {
    let mut counts = std::collections::HashMap::new();
    for s in lines.iter().filter_map(|l| session_of(l, prefix)) {
        *counts.entry(s).or_insert(0) += 1;
    }
    counts
}

#[test]
fn half_of_the_sessions_whole() {
    let bed = Testbed::up().expect("testbed");
    let last = sampled_sessions(&bed, "50", "half", 200);
    let per_session = per_session(&bed.requests(Host::Test).unwrap(), "half");
    let n = per_session.len();
    assert!(
        (80..=120).contains(&n),
        "40-60% of 200 sessions replayed: {n}; {last}"
    );
    assert!(
        per_session.values().all(|c| *c == 3),
        "whole sessions only: {per_session:?}"
    );
    assert_eq!(counter(&last, "lost"), 0, "{last}");
}

/// `-r 10` decided in the kernel: of 300 keep-alive sessions, only the segments of the sessions
/// the engine's hash selects are copied (the others counted `unselected` by the XDP program and
/// never put in the ring), and exactly those sessions, whole, reach the test server.
#[test]
fn a_tenth_of_the_sessions_copied_and_replayed() {
    let bed = Testbed::up().expect("testbed");
    let last = sampled_sessions(&bed, "10", "tenth", 300);
    // The sessions the engine's hash of each online client (address and port, from the online
    // nginx's log) selects.
    let mut expected = HashSet::new();
    let mut all = HashSet::new();
    for line in bed.requests(Host::Online).unwrap() {
        let Some(s) = session_of(&line, "tenth") else {
            continue;
        };
        let mut words = line.split(' ');
        let client = std::net::SocketAddr::new(
            words.next().unwrap().parse().unwrap(),
            words.next().unwrap().parse().unwrap(),
        );
        if tcpcopy_engine::select::selected(client, 10) {
            expected.insert(s.clone());
        }
        all.insert(s);
    }
    assert_eq!(all.len(), 300);
    assert!((10..=60).contains(&expected.len()), "{}", expected.len());
    let per_session = per_session(&bed.requests(Host::Test).unwrap(), "tenth");
    let replayed: HashSet<String> = per_session.keys().cloned().collect();
    assert_eq!(replayed, expected, "exactly the selected sessions; {last}");
    assert!(
        per_session.values().all(|n| *n == 3),
        "whole: {per_session:?}"
    );
    // The kernel's counters: every client segment to port 80 matched; of the selected
    // sessions' all copied but the pure ACKs the engine has no use for, the rest counted and
    // left alone; the engine saw only what was copied and started only the selected sessions.
    let (matched, copied, unselected, acks) = (
        counter(&last, "matched"),
        counter(&last, "copied"),
        counter(&last, "unselected"),
        counter(&last, "acks_skipped"),
    );
    assert_eq!(counter(&last, "ring_full"), 0, "{last}");
    assert_eq!(copied + acks + unselected, matched, "{last}");
    assert!(acks > 0 && acks < copied, "{last}");
    assert_eq!(counter(&last, "captured"), copied, "{last}");
    assert_eq!(counter(&last, "sessions"), expected.len() as u64, "{last}");
    // Sessions of one kind: the selected share of segments is the selected share of sessions.
    // (copied + acks) / matched against expected / 300, in integers: within 30%.
    let (share, want) = ((copied + acks) * 300, expected.len() as u64 * matched);
    assert!(
        share.abs_diff(want) * 10 < want * 3,
        "{} of {matched} segments copied or skipped for {} of 300 sessions: {last}",
        copied + acks,
        expected.len()
    );
    assert_eq!(counter(&last, "lost"), 0, "{last}");
}

#[test]
fn keep_alive_connections_and_a_one_megabyte_upload() {
    keep_alive_and_upload(&Testbed::up().expect("testbed"));
}

/// [`keep_alive_connections_and_a_one_megabyte_upload`] in the two-host layout: intercept `--egress` on the test host, no assistant,
/// no route for the replayed clients but the test host's default route.
#[test]
fn two_hosts_keep_alive_connections_and_a_one_megabyte_upload() {
    keep_alive_and_upload(&two_hosts());
}

fn keep_alive_and_upload(bed: &Testbed) {
    let _intercept = start_intercept(bed);
    let mut tcpcopy = start_tcpcopy(bed, &[]);
    let children: Vec<_> = (0..20)
        .map(|c| curl(bed, Host::Online, &format!("ka{c}"), 0..100, false))
        .collect();
    let data: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    assert_eq!(tcpcopy_tests::upload(bed, "big", &data).unwrap(), "200");
    for c in children {
        assert_eq!(codes(c).len(), 100);
    }
    let all_ka = || {
        bed.requests(Host::Test)
            .unwrap()
            .iter()
            .filter(|l| l.contains(" /ka"))
            .count()
    };
    assert!(
        wait_until(WAIT, || all_ka() >= 2000
            && !logged(bed, Host::Test, "upload").is_empty()),
        "replayed {} of 2000",
        all_ka()
    );
    assert_eq!(all_ka(), 2000);
    let got = tcpcopy_tests::replayed_upload(bed, "big").expect("the upload was replayed");
    assert!(
        got == data,
        "the 1 MB body arrived intact ({} bytes)",
        got.len()
    );
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    none_left(bed);
}

#[test]
fn connections_opened_before_tcpcopy_started_are_replayed() {
    opened_before_start(&Testbed::up().expect("testbed"));
}

/// [`connections_opened_before_tcpcopy_started_are_replayed`] in the two-host layout: intercept `--egress` on the test host, no assistant,
/// no route for the replayed clients but the test host's default route.
#[test]
fn two_hosts_connections_opened_before_tcpcopy_started_are_replayed() {
    opened_before_start(&two_hosts());
}

fn opened_before_start(bed: &Testbed) {
    let _intercept = start_intercept(bed);
    // One keep-alive connection, a request every 200 ms; tcpcopy starts in the middle of it.
    let mut args: Vec<String> = vec![
        "-s".into(),
        "--rate".into(),
        "5/s".into(),
        "-w".into(),
        "%{http_code}\\n".into(),
    ];
    for i in 0..20 {
        args.extend([
            "-o".into(),
            "/dev/null".into(),
            format!("http://{}/early/{i}", Host::Online.addr()),
        ]);
    }
    let early = bed
        .cmd(Host::Client, "curl")
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // tcpcopy starts once the connection has carried a few requests.
    assert!(wait_until(WAIT, || logged(bed, Host::Online, "early")
        .len()
        >= 5));
    let mut tcpcopy = start_tcpcopy(bed, &[]);
    assert_eq!(codes(early), vec!["200"; 20]);
    assert!(
        wait_until(WAIT, || logged(bed, Host::Test, "early").len() >= 5),
        "replayed: {:?}",
        logged(bed, Host::Test, "early")
    );
    wait_settled(bed, &mut tcpcopy, 1, WAIT);
    let test = uris(&logged(bed, Host::Test, "early"));
    let online = uris(&logged(bed, Host::Online, "early"));
    assert!(
        test.len() < 20,
        "the requests before tcpcopy started are not there: {test:?}"
    );
    assert!(test.iter().all(|u| online.contains(u)));
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "sessions"), 1, "{last}");
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    // The session started with a faked SYN: the first request seen is right after the start.
    let first: usize = test
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().parse::<usize>().unwrap())
        .min()
        .unwrap();
    assert!(
        test.len() == 20 - first,
        "every request from the first captured one on: {test:?}"
    );
}

#[test]
fn intercept_restart_mid_run_needs_no_tcpcopy_restart() {
    intercept_restart(&Testbed::up().expect("testbed"));
}

/// [`intercept_restart_mid_run_needs_no_tcpcopy_restart`] in the two-host layout: intercept `--egress` on the test host, no assistant,
/// no route for the replayed clients but the test host's default route.
#[test]
fn two_hosts_intercept_restart_mid_run_needs_no_tcpcopy_restart() {
    intercept_restart(&two_hosts());
}

fn intercept_restart(bed: &Testbed) {
    let mut intercept = start_intercept(bed);
    let mut tcpcopy = start_tcpcopy(bed, &[]);
    assert_eq!(curl_each(bed, Host::Online, "before", 50), vec!["200"; 50]);
    assert!(wait_until(WAIT, || logged(bed, Host::Test, "before").len() >= 50));
    intercept.signal("KILL").unwrap();
    intercept.wait(Duration::from_secs(5)).unwrap();
    tcpcopy
        .wait_for(
            |l| l.contains("intercept_links=0/2"),
            "links down",
            Duration::from_secs(10),
        )
        .unwrap();
    // A new intercept: tcpcopy reconnects by itself (a stats line after this point shows it).
    let lines_before = tcpcopy.lines().len();
    let _intercept = start_intercept(bed);
    assert!(wait_until(WAIT, || tcpcopy.lines()[lines_before..]
        .iter()
        .any(|l| l.contains("intercept_links=2/2"))));
    assert_eq!(curl_each(bed, Host::Online, "after", 50), vec!["200"; 50]);
    assert!(
        wait_until(WAIT, || logged(bed, Host::Test, "after").len() >= 50),
        "replay resumed: {}",
        logged(bed, Host::Test, "after").len()
    );
    // Every session closes properly once the last FINs are through.
    tcpcopy
        .wait_for(|l| l.contains(" completed=100 "), "all completed", WAIT)
        .unwrap();
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{last}");
}

#[test]
fn capture_filters_select_what_is_replayed() {
    let bed = Testbed::up().expect("testbed");
    let _intercept = tcpcopy_tests::start_intercept_with(&bed, &["-F", "tcp and src port 80"]);
    // Only requests from the client host: replayed.
    let mut tcpcopy = start_tcpcopy(
        &bed,
        &[
            "-F",
            "src host 198.51.100.10 and not src net 203.0.113.0/24",
        ],
    );
    assert_eq!(curl_each(&bed, Host::Online, "chosen", 20), vec!["200"; 20]);
    assert!(wait_until(WAIT, || logged(&bed, Host::Test, "chosen")
        .len()
        >= 20));
    tcpcopy.finish(Duration::from_secs(10)).unwrap();
    // A filter the client does not match: online serves, nothing is captured or replayed.
    let mut tcpcopy = start_tcpcopy(&bed, &["-F", "src net 203.0.113.0/24"]);
    assert_eq!(
        curl_each(&bed, Host::Online, "skipped", 20),
        vec!["200"; 20]
    );
    // The program has seen the 20 connections' segments (at least SYN, ACK, request, FIN each).
    tcpcopy
        .wait_for(
            |l| l.starts_with("stats") && counter(l, "seen") >= 80,
            "the segments seen",
            WAIT,
        )
        .unwrap();
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "matched"), 0, "{last}");
    assert!(logged(&bed, Host::Test, "skipped").is_empty());
}

#[test]
fn both_run_as_daemons_with_pid_files() {
    let bed = Testbed::up().expect("testbed");
    let dir = bed.dir().to_path_buf();
    let icpt_pid = dir.join("intercept.pid");
    let tc_pid = dir.join("tcpcopy.pid");
    let icpt = tcpcopy_testbed::binary("intercept").unwrap();
    let tc = tcpcopy_testbed::binary("tcpcopy").unwrap();
    let out = bed
        .cmd(Host::Assistant, icpt.to_str().unwrap())
        .args([
            "-i",
            tcpcopy_testbed::IFACE,
            "-d",
            "-P",
            icpt_pid.to_str().unwrap(),
            "-l",
            dir.join("intercept.log").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = format!("{}:80", Host::Test.addr());
    let out = bed
        .cmd(Host::Online, tc.to_str().unwrap())
        .args([
            "-i",
            tcpcopy_testbed::IFACE,
            "--target",
            &target,
            "-s",
            "198.51.100.40",
            "-c",
            "192.0.2.x",
            "-d",
            "-P",
            tc_pid.to_str().unwrap(),
        ])
        .arg("-l")
        .arg(dir.join("tcpcopy.log"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("runs in the background"));
    let pid = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().trim().to_owned();
    let (icpt_pid_v, tc_pid_v) = (pid(&icpt_pid), pid(&tc_pid));
    assert!(bed.xdp_attached(Host::Online).unwrap() && bed.xdp_attached(Host::Assistant).unwrap());
    // The daemons replay: the control link comes up on its own.
    assert!(wait_until(WAIT, || {
        let _ = curl_each(&bed, Host::Online, "daemon", 1);
        !logged(&bed, Host::Test, "daemon").is_empty()
    }));
    for p in [&tc_pid_v, &icpt_pid_v] {
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", p])
                .status()
                .unwrap()
                .success()
        );
    }
    assert!(
        wait_until(Duration::from_secs(10), || !tc_pid.exists()
            && !icpt_pid.exists()),
        "pid files removed at exit"
    );
    assert!(wait_until(Duration::from_secs(5), || !bed
        .xdp_attached(Host::Online)
        .unwrap()
        && !bed.xdp_attached(Host::Assistant).unwrap()));
    // A daemon that cannot start reports why, in the foreground.
    let out = bed
        .cmd(Host::Online, tc.to_str().unwrap())
        .args([
            "-i",
            "nosuch0",
            "--target",
            &target,
            "-s",
            "198.51.100.40",
            "-d",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exited during start-up"));
}

#[test]
fn a_mirror_port_is_read_through_af_xdp() {
    let bed = Testbed::up_with(&tcpcopy_testbed::Options {
        mirror: true,
        ..Default::default()
    })
    .expect("testbed");
    let _intercept = start_intercept(&bed);
    let mut cmd = bed.cmd(
        Host::Online,
        tcpcopy_testbed::binary("tcpcopy")
            .unwrap()
            .to_str()
            .unwrap(),
    );
    let target = format!("{}:80", Host::Test.addr());
    cmd.args([
        "-i",
        tcpcopy_testbed::MIRROR_IFACE,
        "--mirror",
        "--target",
        &target,
        "-s",
        "198.51.100.40",
        "-c",
        "192.0.2.x",
        "--stats-interval",
        "0.2",
    ]);
    let mut tcpcopy = tcpcopy_testbed::Spawned::start(cmd).unwrap();
    let attached = tcpcopy.wait_for_line("attached", WAIT).unwrap();
    assert!(attached.contains("capture=af_xdp-copy"), "{attached}");
    tcpcopy
        .wait_for(|l| l.contains("intercept_links=2/2"), "links up", WAIT)
        .unwrap();
    assert_eq!(
        curl_each(&bed, Host::Online, "mirrored", 200),
        vec!["200"; 200]
    );
    assert!(
        wait_until(WAIT, || logged(&bed, Host::Test, "mirrored").len() >= 200),
        "replayed: {}",
        logged(&bed, Host::Test, "mirrored").len()
    );
    wait_settled(&bed, &mut tcpcopy, 200, WAIT);
    assert_eq!(logged(&bed, Host::Test, "mirrored").len(), 200);
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert!(
        counter(&last, "redirected") >= 800,
        "frames went to the AF_XDP sockets: {last}"
    );
    assert_eq!(
        counter(&last, "copied"),
        0,
        "none through the ring buffer: {last}"
    );
    assert_eq!(counter(&last, "lost"), 0, "{last}");
}
