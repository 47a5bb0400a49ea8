//! The original tcpcopy 1.3.0 and intercept 1.0 command lines: every option the originals had
//! either works or is refused with one line saying why; the command lines of the original README
//! (no `-i`, `-L`, `-m`) replay to the test nginx.

use std::time::Duration;

use tcpcopy_testbed::{Host, IFACE, Testbed, binary};
use tcpcopy_tests::{
    counter, curl_each, logged, start_intercept_with, start_tcpcopy_with, wait_links_up,
    wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_mins(1);
const REQUESTS: usize = 150;

/// `program` on `host` with `args` must fail at once: exit status non-zero, exactly one line on
/// stderr containing `why`, no panic, no XDP program left on the host.
fn refused_in_one_line(bed: &Testbed, host: Host, program: &str, args: &[&str], why: &str) {
    let out = bed
        .cmd(host, binary(program).unwrap().to_str().unwrap())
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{program} {args:?} must fail");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{program} {args:?}: {err}"
    );
    assert!(
        err.starts_with(&format!("{program}: error: ")) && err.contains(why),
        "{program} {args:?}: {err}"
    );
    assert!(!bed.xdp_attached(host).unwrap(), "{program} {args:?}");
}

#[test]
fn options_that_no_longer_apply_are_refused_in_one_line() {
    let bed = Testbed::up().expect("testbed");
    let base = ["-x", "80-198.51.100.30:80", "-s", "198.51.100.40"];
    let with_i = |extra: &[&'static str]| -> Vec<&'static str> {
        [&["-i", IFACE][..], &base[..], extra].concat()
    };
    for (args, why) in [
        (
            with_i(&["-H", "10.0.0.1"]),
            "-H (a source address for 127.0.0.1 clients) is not supported: -c ADDR",
        ),
        (with_i(&["-o", "eth1"]), "-o (the sending interface"),
        (
            with_i(&["-S", "65535"]),
            "-S (pcap snaplen) no longer applies",
        ),
        (
            with_i(&["-U", "16"]),
            "-U (session pool size) no longer applies",
        ),
        (
            with_i(&["-R", "10"]),
            "-R (a fixed RTT for pacing) no longer applies",
        ),
        (
            [&base[..], &["-i", "veth0,lo"]].concat(),
            "one interface per tcpcopy here",
        ),
        (
            [&base[..], &["-i", "any"]].concat(),
            "one interface per tcpcopy here",
        ),
        (
            vec![
                "-i",
                IFACE,
                "-s",
                "198.51.100.40",
                "-x",
                "80@00:13:21:B2:5E:42-198.51.100.30:80@00:0F:1F:03:F2:E6",
            ],
            "@MAC parts (the original's pcap-send build) are not needed",
        ),
        // No -i: the online host has no default route.
        (
            base.to_vec(),
            "no -i given, no online address in -x and no default route",
        ),
        (
            vec![
                "-x",
                "203.0.113.1:80-198.51.100.30:80",
                "-s",
                "198.51.100.40",
            ],
            "online address 203.0.113.1 is on no interface of this host",
        ),
    ] {
        refused_in_one_line(&bed, Host::Online, "tcpcopy", &args, why);
    }
    // The online addresses on two interfaces: tcpcopy names them and asks for -i.
    let online = bed.ns(Host::Online);
    for step in [
        vec![
            "link", "add", "tcx0", "type", "veth", "peer", "name", "tcx1",
        ],
        vec!["addr", "add", "203.0.113.1/24", "dev", "tcx0"],
        vec!["link", "set", "tcx1", "up"],
        vec!["link", "set", "tcx0", "up"],
    ] {
        let ok = bed.cmd(Host::Online, "ip").args(&step).status().unwrap();
        assert!(ok.success(), "ip {step:?} in {online}");
    }
    refused_in_one_line(
        &bed,
        Host::Online,
        "tcpcopy",
        &[
            "-x",
            "198.51.100.20:80-198.51.100.30:80,203.0.113.1:80-198.51.100.30:80",
            "-s",
            "198.51.100.40",
        ],
        "several interfaces (198.51.100.20 on veth0, 203.0.113.1 on tcx0); tcpcopy captures on one: give -i IFACE",
    );
    for (args, why) in [
        (
            ["-i", IFACE, "-t", "30"],
            "-t (router entry timeout) no longer applies",
        ),
        (
            ["-i", IFACE, "-D", "172.17.0.2-10.0.0.2"],
            "-D (rewriting a container address",
        ),
        (
            ["-i", IFACE, "-q", "1000"],
            "-q (netfilter queue length) no longer applies",
        ),
    ] {
        refused_in_one_line(&bed, Host::Assistant, "intercept", &args, why);
    }
}

/// Curls `REQUESTS` one-request connections to `/{path}/i`, waits until tcpcopy has replayed and
/// settled them, and checks the test nginx logged each once, all from one rewritten address: the
/// one `-c 192.0.2.x` gives the client 198.51.100.10 (the 46th, see the engine's
/// `a_client_address_keeps_one_rewrite_address_across_connections_and_runs`), in every run.
fn replays_all(bed: &Testbed, tcpcopy: &mut tcpcopy_testbed::Spawned, path: &str) {
    let codes = curl_each(bed, Host::Online, path, REQUESTS);
    assert_eq!(codes.iter().filter(|c| *c == "200").count(), REQUESTS);
    assert!(
        wait_until(WAIT, || logged(bed, Host::Test, path).len() >= REQUESTS),
        "{path}: replayed {}; {:?}",
        logged(bed, Host::Test, path).len(),
        tcpcopy.lines().last()
    );
    wait_settled(bed, tcpcopy, REQUESTS as u64, WAIT);
    let test = logged(bed, Host::Test, path);
    assert_eq!(test.len(), REQUESTS, "{path}: exactly once each");
    assert!(
        test.iter().all(|l| l.starts_with("192.0.2.46 ")),
        "{path}: one rewrite address for the one client: {:?}",
        &test[..3]
    );
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{path}: {last}");
}

/// Whether tcpcopy's `attached` line names `iface`.
fn attached_on(tcpcopy: &tcpcopy_testbed::Spawned, iface: &str) -> bool {
    tcpcopy
        .lines()
        .iter()
        .any(|l| l.starts_with("attached") && l.contains(&format!("iface={iface} ")))
}

#[test]
fn the_originals_command_lines_replay() {
    let bed = Testbed::up().expect("testbed");
    let s = Host::Assistant.addr().to_string();
    // -L: started while no intercept runs, tcpcopy stays up and retries; once intercept is
    // there, the replay runs.
    let mut tcpcopy = start_tcpcopy_with(
        &bed,
        &[
            "-i",
            IFACE,
            "-x",
            "80-198.51.100.30:80",
            "-s",
            &s,
            "-c",
            "192.0.2.x",
            "-L",
        ],
    );
    tcpcopy
        .wait_for(
            |l| l.contains("intercept_links=0/2"),
            "links down",
            Duration::from_secs(20),
        )
        .unwrap();
    // The original README's intercept line (without -d): `intercept -i eth0 -F 'tcp and src port 8080'`.
    let _intercept = start_intercept_with(&bed, &["-F", "tcp and src port 80"]);
    wait_links_up(&mut tcpcopy);
    replays_all(&bed, &mut tcpcopy, "lonely");

    // The original README's tcpcopy line, no -i: the default route's interface.
    let gw = Host::Client.addr().to_string();
    let ok = bed
        .cmd(Host::Online, "ip")
        .args(["route", "add", "default", "via", &gw])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut tcpcopy = start_tcpcopy_with(
        &bed,
        &["-x", "80-198.51.100.30:80", "-s", &s, "-c", "192.0.2.x"],
    );
    assert!(attached_on(&tcpcopy, IFACE), "{:?}", tcpcopy.lines());
    wait_links_up(&mut tcpcopy);
    replays_all(&bed, &mut tcpcopy, "readme");

    // The online address in -x, no -i: the interface that carries it; -m in MB.
    let mut tcpcopy = start_tcpcopy_with(
        &bed,
        &[
            "-x",
            "198.51.100.20:80-198.51.100.30:80",
            "-s",
            &s,
            "-c",
            "192.0.2.x",
            "-m",
            "512",
        ],
    );
    assert!(attached_on(&tcpcopy, IFACE), "{:?}", tcpcopy.lines());
    wait_links_up(&mut tcpcopy);
    replays_all(&bed, &mut tcpcopy, "online-ip");
}
