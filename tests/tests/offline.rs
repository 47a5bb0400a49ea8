//! Offline replay: traffic recorded with tcpdump (a real tool) in the testbed, replayed from the
//! file to the test nginx, again, and faster; damaged files replay what precedes the damage.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use tcpcopy_testbed::{Host, IFACE, Testbed};
use tcpcopy_tests::{
    binary_cmd,
    compare_log::{final_summary, log_lines, split_at},
    counter, curl_each, logged, start_intercept, start_intercept_by, wait_closed, wait_until,
};

/// Records `n` one-request connections from client to online (`/{path}/i`) into a pcap file.
fn record(bed: &Testbed, path: &str, n: usize) -> std::path::PathBuf {
    record_on(bed, path, n, IFACE)
}

/// [`record`] on interface `iface` of the online host (`any`: Linux cooked capture).
fn record_on(bed: &Testbed, path: &str, n: usize, iface: &str) -> std::path::PathBuf {
    record_with(bed, path, iface, || {
        assert_eq!(curl_each(bed, Host::Online, path, n), vec!["200"; n]);
    })
}

/// Records port 80 on interface `iface` of the online host with tcpdump into `{name}.pcap`
/// while `traffic` runs (requests from the client to online); the file.
fn record_with(
    bed: &Testbed,
    name: &str,
    iface: &str,
    traffic: impl FnOnce(),
) -> std::path::PathBuf {
    let file = bed.dir().join(format!("{name}.pcap"));
    let mut dump = bed.cmd(Host::Online, "tcpdump");
    dump.args(["-i", iface, "-U", "-Z", "root", "-s", "0", "-w"])
        .arg(&file)
        .args(["tcp", "port", "80", "or", "icmp"]);
    record_by(bed, dump, &file, "listening on", traffic);
    file
}

/// Whether the last packet that can be read of `file` is ICMP (an IPv4 protocol 1).
fn last_is_icmp(file: &std::path::Path) -> bool {
    let Ok(mut reader) = tcpcopy_capfile::CaptureFile::open(file) else {
        return false;
    };
    std::iter::from_fn(|| reader.next_packet())
        .map_while(Result::ok)
        .last()
        .is_some_and(|p| p.ip.first().is_some_and(|b| b >> 4 == 4) && p.ip.get(9) == Some(&1))
}

/// Packets in the capture file being written (what can be read of it so far).
fn packets_in(file: &std::path::Path) -> usize {
    let Ok(mut reader) = tcpcopy_capfile::CaptureFile::open(file) else {
        return 0;
    };
    std::iter::from_fn(|| reader.next_packet())
        .take_while(Result::is_ok)
        .count()
}

/// Pings online from the client until the capture tool has written an echo as the last packet
/// of `file` (it captures ICMP too; replay skips it): everything sent before is in the file, and
/// so is everything sent after.
fn until_recorded(bed: &Testbed, file: &std::path::Path) {
    let before = packets_in(file);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let _ = bed
                .cmd(Host::Client, "ping")
                .args(["-c", "1", "-W", "1", &Host::Online.addr().to_string()])
                .output();
            packets_in(file) > before && last_is_icmp(file)
        }),
        "the capture tool wrote no packet into {}",
        file.display()
    );
}

/// Runs the capture command `dump` (writing `file`, capturing ICMP besides port 80) until it
/// prints `ready` on stderr and has caught its first packet, runs `traffic` (requests from the
/// client to online), waits until their last segments are in the file, and stops it with
/// SIGINT.
fn record_by(
    bed: &Testbed,
    mut dump: Command,
    file: &std::path::Path,
    ready: &str,
    traffic: impl FnOnce(),
) {
    let mut dump = dump
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut err = std::io::BufReader::new(dump.stderr.take().unwrap());
    while !line.contains(ready) {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0,
            "the capture tool ended"
        );
    }
    // It says so a little before the first packet is caught.
    until_recorded(bed, file);
    traffic();
    wait_closed(bed, Host::Online, 80);
    until_recorded(bed, file);
    Command::new("kill")
        .args(["-INT", &dump.id().to_string()])
        .status()
        .unwrap();
    // Drain what it says on the way out, so it never blocks on a full pipe.
    let _ = std::io::Read::read_to_end(&mut err, &mut Vec::new());
    dump.wait().unwrap();
}

/// Replays `file` to the test host and waits for tcpcopy to finish by itself; its final line.
fn replay(bed: &Testbed, file: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    replay_by(bed, None, file, extra)
}

/// [`replay`], as `nobody` with only the capabilities `caps` if given.
fn replay_by(
    bed: &Testbed,
    caps: Option<&[&str]>,
    file: &std::path::Path,
    extra: &[&str],
) -> (bool, String, String) {
    let target = format!("{}:80", Host::Test.addr());
    let out = binary_cmd(bed, Host::Online, "tcpcopy", caps)
        .arg("--pcap")
        .arg(file)
        .args([
            "--target",
            &target,
            "-s",
            "198.51.100.40",
            "-c",
            "192.0.2.x",
            "--stats-interval",
            "0",
        ])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout
        .lines()
        .find(|l| l.starts_with("final"))
        .unwrap_or_default()
        .to_owned();
    (
        out.status.success(),
        last,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_recorded_capture_replays_completely_again_and_faster() {
    let bed = Testbed::up().expect("testbed");
    let _intercept = start_intercept(&bed);
    let file = record(&bed, "rec", 200);

    let (ok, last, err) = replay(&bed, &file, &[]);
    assert!(ok, "{err}");
    assert_eq!(counter(&last, "sessions"), 200, "{last}");
    assert_eq!(counter(&last, "completed"), 200, "{last}");
    let mut online: Vec<String> = logged(&bed, Host::Online, "rec")
        .iter()
        .map(|l| l.split('"').nth(1).unwrap().to_owned())
        .collect();
    let mut test: Vec<String> = logged(&bed, Host::Test, "rec")
        .iter()
        .map(|l| l.split('"').nth(1).unwrap().to_owned())
        .collect();
    online.sort();
    test.sort();
    assert_eq!(test, online, "every recorded request, once");

    // Twice more, at double speed: all 200 each time.
    let (ok, last, err) = replay(&bed, &file, &["-a", "2", "-T", "2"]);
    assert!(ok, "{err}");
    assert_eq!(counter(&last, "completed"), 400, "{last}");
    assert!(last.contains("pass=2/2"), "{last}");
    assert_eq!(logged(&bed, Host::Test, "rec").len(), 600);
}

#[test]
fn unprivileged_offline_replay_through_a_raw_socket_needs_only_cap_net_raw() {
    let bed = Testbed::up().expect("testbed");
    // intercept as nobody too, with the ring buffer: no AF_XDP socket, so no CAP_NET_RAW or
    // CAP_IPC_LOCK (tests/tests/caps.rs has the other sets).
    let intercept = start_intercept_by(
        &bed,
        Some(&["bpf", "net_admin", "perfmon"]),
        &["--capture", "ring"],
    );
    assert!(intercept.lines().iter().any(|l| l.contains("capture=ring")));
    let file = record(&bed, "nobody", 200);
    let (ok, last, err) = replay_by(&bed, Some(&["net_raw"]), &file, &["--send", "raw"]);
    assert!(ok, "{err}");
    assert_eq!(counter(&last, "completed"), 200, "{last}");
    assert_eq!(logged(&bed, Host::Test, "nobody").len(), 200);
}

#[test]
fn a_truncated_capture_replays_what_precedes_the_damage_then_says_where() {
    let bed = Testbed::up().expect("testbed");
    let _intercept = start_intercept(&bed);
    let file = record(&bed, "cut", 40);
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.len() > 2000, "recorded {} bytes", bytes.len());
    let cut = bed.dir().join("cut-half.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 7]).unwrap();
    let (ok, last, err) = replay(&bed, &cut, &[]);
    assert!(!ok, "a damaged file is an error");
    assert!(err.contains("damaged or truncated at byte"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let replayed = logged(&bed, Host::Test, "cut").len();
    assert!(
        (10..40).contains(&replayed),
        "the sessions before the damage were replayed: {replayed}; {last}"
    );

    // Not a capture at all, and a capture without the mapped port.
    std::fs::write(bed.dir().join("junk.pcap"), b"this is not a capture file").unwrap();
    let (ok, _, err) = replay(&bed, &bed.dir().join("junk.pcap"), &[]);
    assert!(
        !ok && err.contains("neither a pcap nor a pcapng file"),
        "{err}"
    );
    let (ok, _, err) = replay(&bed, &file, &["--online-port", "8080"]);
    assert!(
        !ok && err.contains("no TCP session of the mapping"),
        "{err}"
    );
}

#[test]
fn a_linux_cooked_capture_replays() {
    let bed = Testbed::up().expect("testbed");
    let _intercept = start_intercept(&bed);
    // `tcpdump -i any` writes Linux cooked frames (SLL or SLL2), not Ethernet.
    let file = record_on(&bed, "cooked", 30, "any");
    let head = std::fs::read(&file).unwrap();
    let link = u32::from_le_bytes([head[20], head[21], head[22], head[23]]);
    assert!(
        link == 113 || link == 276,
        "a cooked capture: link type {link}"
    );
    let (ok, last, err) = replay(&bed, &file, &["-I", "50"]);
    assert!(ok, "{err}");
    assert_eq!(counter(&last, "completed"), 30, "{last}");
    assert_eq!(logged(&bed, Host::Test, "cooked").len(), 30);
}

#[test]
fn a_pcapng_of_two_interfaces_written_by_tshark_replays() {
    let bed = Testbed::up().expect("testbed");
    let _intercept = start_intercept(&bed);
    // tshark (dumpcap) writes pcapng; two interfaces give two interface description blocks, and
    // the packets of veth0 are those of interface 0.
    let file = bed.dir().join("ng.pcapng");
    let mut dump = bed.cmd(Host::Online, "tshark");
    dump.args(["-i", "lo", "-i", IFACE, "-f", "tcp port 80 or icmp", "-w"])
        .arg(&file);
    record_by(&bed, dump, &file, "Capturing on", || {
        assert_eq!(curl_each(&bed, Host::Online, "ng", 30), vec!["200"; 30]);
    });
    let head = std::fs::read(&file).unwrap();
    assert_eq!(&head[..4], &[0x0a, 0x0d, 0x0d, 0x0a], "a pcapng file");
    let mut reader = tcpcopy_capfile::CaptureFile::open(&file).unwrap();
    let mut packets = 0;
    while let Some(p) = reader.next_packet() {
        p.unwrap();
        packets += 1;
    }
    assert!(
        packets >= 30 * 5,
        "handshake, request, answer, close: {packets}"
    );
    assert_eq!(reader.interfaces(), 2, "interfaces in the file");
    let (ok, last, err) = replay(&bed, &file, &["-I", "50"]);
    assert!(ok, "{err}");
    assert_eq!(counter(&last, "completed"), 30, "{last}");
    assert_eq!(logged(&bed, Host::Test, "ng").len(), 30);
}

/// `--compare` replaying a capture: production's responses are the file's server-to-client
/// packets, its latencies the file's timestamps. Recorded with online's upstream answering
/// `/slow/` after 200 ms, replayed at 4 times the speed to a test host whose upstream answers
/// at once (and `/slow/body/` with another body; `/changed/` with 500), twice (`-T 2`): the
/// online latencies of `/slow/` are above 200 ms (the file's, not the replay's quarter), the test
/// ones below; exactly the `/slow/body/` and `/changed/` requests differ, in each pass.
#[test]
fn a_capture_replayed_with_compare_takes_productions_answers_and_latencies_from_the_file() {
    const DELAY: Duration = Duration::from_millis(200);
    let bed = Testbed::up().expect("testbed");
    let _online_up = bed
        .start_upstream(Host::Online, DELAY, "online")
        .expect("online's slow upstream");
    let _test_up = bed
        .start_upstream(Host::Test, Duration::ZERO, "test")
        .expect("test's upstream");
    let _intercept = start_intercept(&bed);
    let file = record_with(&bed, "cmp", IFACE, || {
        for (path, n) in [
            ("slow/same", 10),
            ("slow/body", 5),
            ("changed", 5),
            ("same", 10),
        ] {
            assert_eq!(
                curl_each(&bed, Host::Online, path, n),
                vec!["200"; n],
                "{path}"
            );
        }
    });
    let log = bed.dir().join("cmp.jsonl");
    let (ok, last, err) = replay(
        &bed,
        &file,
        &[
            "-a",
            "4",
            "-T",
            "2",
            "--compare",
            "--compare-log",
            log.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    // Two passes: each request compared twice.
    assert_eq!(counter(&last, "completed"), 60, "{last}");
    assert_eq!(counter(&last, "same"), 40, "{last}");
    assert_eq!(counter(&last, "differ"), 20, "{last}");
    assert_eq!(counter(&last, "not_compared"), 0, "{last}");
    let lines = log_lines(&log);
    let delay_us = u64::try_from(DELAY.as_micros()).unwrap();
    let mut statuses = 0;
    let mut slow = Vec::new();
    for d in lines.iter().filter(|l| l["kind"] == "differ") {
        let request = d["request"].as_str().unwrap();
        let (online, test) = (
            d["online"]["latency_us"].as_u64().unwrap(),
            d["test"]["latency_us"].as_u64().unwrap(),
        );
        if request.starts_with("GET /changed/") {
            assert_eq!(d["difference"]["what"], "status", "{d}");
            assert_eq!(d["test"]["status"], 500, "{d}");
            statuses += 1;
        } else {
            assert!(request.starts_with("GET /slow/body/"), "{d}");
            assert_eq!(d["difference"]["what"], "body_length", "{d}");
            assert!(online > delay_us && test < delay_us, "{d}");
            slow.push((online, test));
        }
    }
    assert_eq!((statuses, slow.len()), (10, 10), "{lines:?}");
    // The histograms of the final summary: 30 online latencies above the delay (every /slow/,
    // twice), no test latency.
    let fin = final_summary(&log);
    let above = |h: &serde_json::Value| split_at(h, delay_us).1;
    assert_eq!(fin["online"]["count"], 60, "{fin}");
    assert_eq!(fin["test"]["count"], 60, "{fin}");
    assert_eq!(above(&fin["online"]), 30, "{fin}");
    assert_eq!(above(&fin["test"]), 0, "{fin}");
    eprintln!("offline compare: /slow/body/ latencies (online, test) in us: {slow:?}");
}
