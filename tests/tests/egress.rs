//! The two-host layout's guarantees (`intercept --egress` on the test server: what it catches,
//! what it leaves alone, nothing left behind by a SIGKILL) and capture next to another XDP
//! program (tcpcopy falls back to a tc ingress program and leaves the other program attached).
//! The replay suite itself runs in the two-host layout in `replay.rs` and `ipv6.rs`
//! (`two_hosts_*`).

use std::time::Duration;

use tcpcopy_testbed::{Host, IFACE, Leaving, Testbed};
use tcpcopy_tests::{
    codes, counter, curl, logged, scrape, start_intercept, start_intercept_with, start_tcpcopy,
    two_hosts, upload, wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_mins(1);

/// A client address in the replay clients' network, on the client host: its connections to
/// the test nginx draw replies that the test host routes via its default gateway, as it does
/// for the replayed clients.
const PROBE: &str = "192.0.2.77";

/// intercept's metrics listener on the test host.
const METRICS: &str = "127.0.0.1:9465";

/// One connection attempt from [`PROBE`] to the test nginx: its SYN-ACK is a reply from port
/// 80 to the replay clients' network. curl gives up after a second (no answer comes back).
fn probe(bed: &Testbed) {
    let _ = bed
        .cmd(Host::Client, "curl")
        .args(["-s", "-o", "/dev/null", "--connect-timeout", "1"])
        .args(["--interface", PROBE])
        .arg(format!("http://{}/probe", Host::Test.addr()))
        .status();
}

#[test]
fn egress_catches_only_the_replies_to_replayed_clients_and_sigkill_leaves_nothing() {
    let bed = two_hosts();
    tcpcopy_testbed::run(
        "ip",
        &[
            "-n",
            &bed.ns(Host::Client),
            "addr",
            "add",
            &format!("{PROBE}/32"),
            "dev",
            IFACE,
        ],
    )
    .unwrap();
    // Without intercept, the replies to the probe leave the test host: the counter sees them.
    probe(&bed);
    assert!(
        wait_until(WAIT, || bed.leaving_test(Leaving::Replies).unwrap() >= 1),
        "the counter on the far side of the test host's link sees its replies"
    );
    let mut intercept = start_intercept_with(&bed, &["--metrics", METRICS]);
    let attached = intercept
        .lines()
        .into_iter()
        .find(|l| l.starts_with("attached"))
        .unwrap();
    assert!(
        attached.contains("mode=tc-egress") && attached.contains("capture=ring"),
        "{attached}"
    );
    let before = bed.leaving_test(Leaving::Replies).unwrap();
    let icmp_before = bed.leaving_test(Leaving::Icmp).unwrap();
    // With it: the probe's reply is caught, and none leaves.
    probe(&bed);
    intercept
        .wait_for(
            |l| l.starts_with("stats") && counter(l, "matched") >= 1,
            "the probe's reply caught",
            WAIT,
        )
        .unwrap();
    // --metrics is served in --egress mode too: the caught reply is counted there.
    let text = scrape(&bed, Host::Test, METRICS);
    assert!(
        text.lines()
            .any(|l| l.starts_with("intercept_xdp_matched_frames_total") && !l.ends_with(" 0")),
        "{text}"
    );
    // The test host's other traffic passes: its clients' answers (port 80 to the client host),
    // ICMP to the replay clients' network, the control port.
    assert_eq!(
        codes(curl(&bed, Host::Test, "direct", 0..20, true)),
        vec!["200"; 20]
    );
    // nginx logs a request after its answer has gone out.
    assert!(
        wait_until(WAIT, || logged(&bed, Host::Test, "direct").len() == 20),
        "{:?}",
        logged(&bed, Host::Test, "direct")
    );
    let _ = bed
        .cmd(Host::Test, "ping")
        .args(["-c", "3", "-i", "0.2", "-W", "1", "192.0.2.1"])
        .status();
    assert!(
        wait_until(WAIT, || bed.leaving_test(Leaving::Icmp).unwrap()
            >= icmp_before + 3),
        "ICMP to the replay clients' network leaves"
    );
    assert_eq!(
        bed.leaving_test(Leaving::Replies).unwrap(),
        before,
        "no caught reply left the test host"
    );
    // SIGKILL: the kernel closes intercept's tcx link; nothing catches the replies any more.
    intercept.signal("KILL").unwrap();
    intercept.wait(Duration::from_secs(5)).unwrap();
    assert!(
        wait_until(WAIT, || {
            probe(&bed);
            bed.leaving_test(Leaving::Replies).unwrap() > before
        }),
        "after SIGKILL no program is left on the test host's egress"
    );
}

#[test]
fn tcpcopy_captures_at_tc_ingress_next_to_a_foreign_xdp_program() {
    let bed = two_hosts();
    // Another product's XDP program on online's interface, attached without a link, as a
    // foreign program would be.
    let object = bed.dir().join("xdp-pass.o");
    std::fs::write(&object, tcpcopy::XDP_PASS_OBJECT).unwrap();
    let online = bed.ns(Host::Online);
    tcpcopy_testbed::run(
        "ip",
        &[
            "-n",
            &online,
            "link",
            "set",
            "dev",
            IFACE,
            "xdp",
            "obj",
            object.to_str().unwrap(),
            "sec",
            "xdp",
        ],
    )
    .unwrap();
    let xdp_prog = || bed.xdp_program(Host::Online, IFACE).unwrap();
    let foreign = xdp_prog().expect("the foreign XDP program is attached");
    let _intercept = start_intercept(&bed);
    let mut tcpcopy = start_tcpcopy(&bed, &[]);
    let attached = tcpcopy
        .lines()
        .into_iter()
        .find(|l| l.starts_with("attached"))
        .unwrap();
    assert!(
        attached.contains("mode=tc-ingress"),
        "the attached line says which hook: {attached}"
    );
    // One-request connections, keep-alive ones, and a 1 MB upload (its packets reach tc
    // ingress as GSO packets of up to 64 KiB: copied in segments).
    let a = curl(&bed, Host::Online, "tc", 0..300, true);
    let ka: Vec<_> = (0..5)
        .map(|c| curl(&bed, Host::Online, &format!("tcka{c}"), 0..20, false))
        .collect();
    let data: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    assert_eq!(upload(&bed, "tcbig", &data).unwrap(), "200");
    assert_eq!(codes(a), vec!["200"; 300]);
    for c in ka {
        assert_eq!(codes(c), vec!["200"; 20]);
    }
    wait_settled(&bed, &mut tcpcopy, 306, WAIT);
    assert_eq!(
        logged(&bed, Host::Test, "tc").len(),
        300,
        "every request replayed"
    );
    let ka = bed
        .requests(Host::Test)
        .unwrap()
        .iter()
        .filter(|l| l.contains(" /tcka"))
        .count();
    assert_eq!(ka, 100);
    let got = tcpcopy_tests::replayed_upload(&bed, "tcbig").expect("the upload was replayed");
    assert!(
        got == data,
        "the 1 MB body arrived intact ({} bytes)",
        got.len()
    );
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    assert_eq!(counter(&last, "truncated"), 0, "{last}");
    assert_eq!(
        xdp_prog(),
        Some(foreign),
        "the foreign XDP program is still attached"
    );
}

/// `--hook tc` on an interface without XDP: GSO packets from the client (veth passes them on
/// unsegmented, up to 64 KiB) reach tc ingress whole; those longer than the snap length are
/// copied as several segments (`copied` exceeds `matched`), and a 1 MB upload arrives intact.
#[test]
fn tcpcopy_hook_tc_copies_long_gso_packets_in_segments() {
    let bed = two_hosts();
    let _intercept = start_intercept(&bed);
    let mut tcpcopy = start_tcpcopy(&bed, &["--hook", "tc"]);
    let attached = tcpcopy
        .lines()
        .into_iter()
        .find(|l| l.starts_with("attached"))
        .unwrap();
    assert!(attached.contains("mode=tc-ingress"), "{attached}");
    assert!(
        !bed.xdp_attached(Host::Online).unwrap(),
        "no XDP with --hook tc"
    );
    let data: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()[0])
        .collect();
    assert_eq!(upload(&bed, "gso", &data).unwrap(), "200");
    let settled = wait_settled(&bed, &mut tcpcopy, 1, WAIT);
    let got = tcpcopy_tests::replayed_upload(&bed, "gso").expect("the upload was replayed");
    assert!(
        got == data,
        "the 1 MB body arrived intact ({} bytes)",
        got.len()
    );
    assert!(
        counter(&settled, "copied") > counter(&settled, "matched"),
        "long packets copied in several segments: {settled}"
    );
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "truncated"), 0, "{last}");
    assert_eq!(counter(&last, "lost"), 0, "{last}");
}
