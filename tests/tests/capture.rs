//! The capture path on the online host: tcpcopy's XDP program counts exactly the segments to the
//! mapped port while every request is still answered by the online nginx, and a killed tcpcopy
//! leaves no XDP program behind.

use std::time::Duration;

use tcpcopy_testbed::{Host, IFACE, Spawned, Testbed, binary};
use tcpcopy_tests::{counter, curl_each, wait_closed, wait_until};

const REQUESTS: usize = 100;

fn start_tcpcopy(bed: &Testbed) -> Spawned {
    let mut cmd = bed.cmd(Host::Online, binary("tcpcopy").unwrap().to_str().unwrap());
    let target = format!("{}:80", Host::Test.addr());
    // No intercept runs here, and its address answers nothing (not even a RST that the online
    // kernel would count): the test is about the capture path only.
    cmd.args([
        "-i",
        IFACE,
        "--target",
        &target,
        "-s",
        "198.51.100.99",
        "--stats-interval",
        "0",
    ]);
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
    // Count once every connection's last segment (the final ACK) has arrived.
    wait_closed(&bed, Host::Online, 80);
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
    // The bpf link died with the process; the kernel releases it shortly after.
    assert!(
        wait_until(Duration::from_secs(5), || !Host::ALL
            .iter()
            .any(|h| bed.xdp_attached(*h).unwrap())),
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
        .args([
            "-i",
            "nosuch0",
            "--target",
            "198.51.100.30:80",
            "-s",
            "198.51.100.40",
        ])
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
        .args(["-i", IFACE, "-x", "80:198.51.100.30", "-s", "198.51.100.40"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad mapping"), "{err}");
    assert!(!bed.xdp_attached(Host::Online).unwrap());
}

#[test]
fn intercept_catches_and_drops_replies_by_source_port() {
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

    // The assistant's own request to the test nginx: its replies (source port 80) are caught by
    // XDP and dropped, so the assistant's stack never sees them and the request cannot complete.
    let url = format!("http://{}/reply", Host::Test.addr());
    let out = bed
        .cmd(Host::Assistant, "curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "2", &url])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "no reply reached the assistant's stack"
    );
    let in_segs = bed.tcp_in_segs(Host::Assistant).unwrap() - before;

    // Other traffic passes while intercept runs.
    let ping = bed
        .cmd(Host::Assistant, "ping")
        .args(["-c", "1", "-W", "2", &Host::Test.addr().to_string()])
        .output()
        .unwrap();
    assert!(ping.status.success());

    let last = intercept.finish(Duration::from_secs(10)).unwrap();
    assert!(counter(&last, "matched") >= 1, "{last}");
    assert_eq!(
        counter(&last, "redirected"),
        counter(&last, "matched"),
        "every reply into AF_XDP: {last}"
    );
    assert_eq!(in_segs, 0, "consumed in XDP: {last}");
    assert!(!bed.xdp_attached(Host::Assistant).unwrap());
}

/// A tcpcopy run that must fail at once with `message` on stderr, attach nothing and not panic.
fn refused(bed: &Testbed, args: &[&str], message: &str) {
    let tcpcopy = binary("tcpcopy").unwrap();
    let out = bed
        .cmd(Host::Online, tcpcopy.to_str().unwrap())
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} must fail");
    assert!(err.contains(message), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!bed.xdp_attached(Host::Online).unwrap());
}

#[test]
fn misconfigurations_are_refused_with_clear_messages() {
    let bed = Testbed::up().expect("testbed");
    let i = ["-i", IFACE];
    let s = ["-s", "198.51.100.40"];
    refused(
        &bed,
        &[&i[..], &s[..], &["-x", "80-198.51.100.20:80"]].concat(),
        "would loop into the online service",
    );
    refused(
        &bed,
        &[
            &i[..],
            &s[..],
            &["--target", "198.51.100.30:80", "-c", "10.1.x"],
        ]
        .concat(),
        "-c \"10.1.x\"",
    );
    refused(
        &bed,
        &[&i[..], &["--target", "198.51.100.30:80"]].concat(),
        "no intercept",
    );
    refused(
        &bed,
        &[&i[..], &s[..], &["--target", "198.51.100.30:80", "-n", "0"]].concat(),
        "-n must be at least 1",
    );
    // Not root and no capability: named at start-up instead of an opaque permission error
    // (tests/tests/caps.rs tries each capability in turn).
    let tcpcopy = binary("tcpcopy").unwrap();
    let out = bed
        .cmd(Host::Online, "setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            tcpcopy.to_str().unwrap(),
            "-i",
            IFACE,
            "--target",
            "198.51.100.30:80",
            "-s",
            "198.51.100.40",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.starts_with("tcpcopy: error: missing capabilities CAP_BPF") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!bed.xdp_attached(Host::Online).unwrap());
}

#[test]
fn unreachable_intercept_is_reported_and_retried() {
    let bed = Testbed::up().expect("testbed");
    let mut cmd = bed.cmd(Host::Online, binary("tcpcopy").unwrap().to_str().unwrap());
    cmd.args([
        "-i",
        IFACE,
        "--target",
        "198.51.100.30:80",
        "-s",
        "198.51.100.40",
        "--stats-interval",
        "0.2",
    ]);
    cmd.stderr(std::process::Stdio::piped());
    let mut p = Spawned::start(cmd).expect("start tcpcopy");
    p.wait_for(
        |l| l.contains("intercept_links=0/2"),
        "links down",
        Duration::from_secs(20),
    )
    .unwrap();
    p.signal("TERM").unwrap();
    p.wait(Duration::from_secs(10)).unwrap();
}

#[test]
fn intercept_warns_about_ip_forward() {
    let bed = Testbed::up().expect("testbed");
    let ok = bed
        .cmd(Host::Assistant, "sysctl")
        .args(["-qw", "net.ipv4.ip_forward=1"])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut cmd = bed.cmd(
        Host::Assistant,
        binary("intercept").unwrap().to_str().unwrap(),
    );
    cmd.args(["-i", IFACE, "--stats-interval", "0"]);
    cmd.stderr(std::process::Stdio::piped());
    let mut child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut err = Vec::new();
    while let Ok(line) = said.recv_timeout(Duration::from_secs(20)) {
        let warned = line.contains("ip_forward=1");
        err.push(line);
        if warned {
            break;
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    assert!(err.iter().any(|l| l.contains("ip_forward=1")), "{err:?}");
}

#[test]
fn unsupported_filters_name_the_supported_forms() {
    let bed = Testbed::up().expect("testbed");
    refused(
        &bed,
        &[
            "-i",
            IFACE,
            "-s",
            "198.51.100.40",
            "--target",
            "198.51.100.30:80",
            "-F",
            "udp port 53",
        ],
        "supported: tcp, [src|dst] port N",
    );
    let out = bed
        .cmd(
            Host::Assistant,
            binary("intercept").unwrap().to_str().unwrap(),
        )
        .args(["-i", IFACE, "-F", "tcp and src portrange 1-2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("`portrange` is not supported"),
        "{err}"
    );
}

#[test]
fn intercept_takes_the_default_routes_interface_or_says_why_not() {
    let bed = Testbed::up().expect("testbed");
    let icpt = binary("intercept").unwrap();
    let out = bed
        .cmd(Host::Assistant, icpt.to_str().unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no default route"),
        "{err}"
    );
    // With a default route, `intercept` alone attaches to that route's interface.
    let gw = Host::Test.addr().to_string();
    assert!(
        bed.cmd(Host::Assistant, "ip")
            .args(["route", "add", "default", "via", &gw])
            .status()
            .unwrap()
            .success()
    );
    let mut cmd = bed.cmd(Host::Assistant, icpt.to_str().unwrap());
    cmd.args(["--stats-interval", "0"]);
    let mut p = Spawned::start(cmd).unwrap();
    let attached = p
        .wait_for_line("attached", Duration::from_secs(20))
        .unwrap();
    assert!(attached.contains(&format!("iface={IFACE}")), "{attached}");
    p.finish(Duration::from_secs(10)).unwrap();
}
