//! The capture path on the online host: tcpcopy's XDP program counts exactly the segments to the
//! mapped port while every request is still answered by the online nginx, and a killed tcpcopy
//! leaves no XDP program behind.

use std::time::Duration;

use tcpcopy_testbed::{Host, IFACE, Spawned, Testbed, binary};
use tcpcopy_tests::{counter, curl_each};

const REQUESTS: usize = 100;

fn start_tcpcopy(bed: &Testbed) -> Spawned {
    let mut cmd = bed.cmd(Host::Online, binary("tcpcopy").unwrap().to_str().unwrap());
    let target = format!("{}:80", Host::Test.addr());
    cmd.args(["-i", IFACE, "--target", &target, "--stats-interval", "0"]);
    let mut p = Spawned::start(cmd).expect("start tcpcopy");
    let line = p
        .wait_for_line("attached", Duration::from_secs(20))
        .expect("tcpcopy attaches");
    assert!(line.contains("mode="), "{line}");
    p
}

#[test]
fn counts_exactly_the_segments_to_the_service_port() {
    let bed = Testbed::up().expect("testbed");
    let mut tcpcopy = start_tcpcopy(&bed);
    assert!(
        bed.xdp_attached(Host::Online).unwrap(),
        "XDP is attached on online"
    );
    let in_segs_before = bed.tcp_in_segs(Host::Online).unwrap();

    let codes = curl_each(&bed, Host::Online, "capture", REQUESTS);
    assert_eq!(
        codes.len(),
        REQUESTS,
        "every request got an answer: {codes:?}"
    );
    assert!(
        codes.iter().all(|c| c == "200"),
        "all answered 200: {codes:?}"
    );
    // Let the connections' last segments (FIN/ACK) arrive before counting.
    std::thread::sleep(Duration::from_millis(500));
    let in_segs = bed.tcp_in_segs(Host::Online).unwrap() - in_segs_before;

    tcpcopy.signal("TERM").unwrap();
    let status = tcpcopy.wait(Duration::from_secs(10)).unwrap();
    assert!(
        status.success(),
        "tcpcopy exits cleanly on SIGTERM: {status}"
    );
    let last = tcpcopy
        .lines()
        .into_iter()
        .find(|l| l.starts_with("final"))
        .expect("final counters");

    // Every TCP segment the online stack received was to port 80 (nothing else runs there), and
    // XDP saw each of them before the stack did: the two independent counts must agree.
    let matched = counter(&last, "matched");
    assert_eq!(
        matched, in_segs,
        "XDP matched vs the kernel's Tcp InSegs ({last})"
    );
    assert!(
        matched >= 4 * REQUESTS as u64,
        "at least SYN, ACK, request, FIN per connection: {matched}"
    );
    assert_eq!(counter(&last, "malformed"), 0);

    let logged = bed.requests(Host::Online).unwrap();
    let captured = logged
        .iter()
        .filter(|l| l.contains("GET /capture/"))
        .count();
    assert_eq!(captured, REQUESTS, "online nginx logged every request");
    assert!(
        !bed.xdp_attached(Host::Online).unwrap(),
        "clean exit detaches XDP"
    );
}

#[test]
fn sigkill_leaves_no_xdp_program_attached() {
    let bed = Testbed::up().expect("testbed");
    let tcpcopy = start_tcpcopy(&bed);
    assert!(bed.xdp_attached(Host::Online).unwrap());
    let mut tcpcopy = tcpcopy;
    tcpcopy.signal("KILL").unwrap();
    let _ = tcpcopy.wait(Duration::from_secs(10)).unwrap();
    // The bpf link died with the process; allow the kernel a moment to release it.
    let mut attached = true;
    for _ in 0..50 {
        attached = Host::ALL.iter().any(|h| bed.xdp_attached(*h).unwrap());
        if !attached {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !attached,
        "no XDP program left in the testbed after SIGKILL"
    );
    // Online traffic is unaffected after the crash.
    let codes = curl_each(&bed, Host::Online, "capture", 10);
    assert_eq!(codes, vec!["200"; 10]);
}

#[test]
fn errors_are_clear_not_panics() {
    let bed = Testbed::up().expect("testbed");
    let tcpcopy = binary("tcpcopy").unwrap();
    let out = bed
        .cmd(Host::Online, tcpcopy.to_str().unwrap())
        .args(["-i", "nosuch0", "--target", "198.51.100.30:80"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("interface \"nosuch0\" does not exist"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = bed
        .cmd(Host::Online, tcpcopy.to_str().unwrap())
        .args(["-i", IFACE, "-x", "80:198.51.100.30"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad mapping"), "{err}");
    assert!(!bed.xdp_attached(Host::Online).unwrap());
}

#[test]
fn intercept_counts_replies_by_source_port() {
    let bed = Testbed::up().expect("testbed");
    let mut cmd = bed.cmd(
        Host::Assistant,
        binary("intercept").unwrap().to_str().unwrap(),
    );
    cmd.args(["-i", IFACE, "--src-port", "80", "--stats-interval", "0"]);
    let mut intercept = Spawned::start(cmd).expect("start intercept");
    intercept
        .wait_for_line("attached", Duration::from_secs(20))
        .expect("intercept attaches");
    let before = bed.tcp_in_segs(Host::Assistant).unwrap();

    // Replies from the test nginx (source port 80) to the assistant.
    let url = format!("http://{}/reply", Host::Test.addr());
    let status = bed
        .cmd(Host::Assistant, "curl")
        .args(["-sf", "-o", "/dev/null", &url, "-o", "/dev/null", &url])
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    let in_segs = bed.tcp_in_segs(Host::Assistant).unwrap() - before;

    intercept.signal("TERM").unwrap();
    assert!(intercept.wait(Duration::from_secs(10)).unwrap().success());
    let last = intercept
        .lines()
        .into_iter()
        .find(|l| l.starts_with("final"))
        .expect("final counters");
    assert_eq!(counter(&last, "matched"), in_segs, "{last}");
    assert!(counter(&last, "matched") >= 4);
    assert!(!bed.xdp_attached(Host::Assistant).unwrap());
}
