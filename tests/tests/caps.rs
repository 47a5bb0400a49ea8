//! Capabilities instead of root: tcpcopy and intercept run as user `nobody` with only the
//! capabilities the README names (util-linux `setpriv` inside the host's namespace), and a
//! start without one of them is refused in one line naming it, before anything is attached.

use std::{os::unix::fs::PermissionsExt as _, path::Path, time::Duration};

use tcpcopy_testbed::{Host, Testbed};
use tcpcopy_tests::{
    binary_cmd, codes, counter, curl, logged, start_intercept_by, start_tcpcopy_by, wait_settled,
    wait_until,
};

const WAIT: Duration = Duration::from_mins(1);

/// intercept catching replies through AF_XDP (`--capture auto`, the default).
const INTERCEPT: &[&str] = &["bpf", "net_admin", "perfmon", "net_raw", "ipc_lock"];
/// intercept with `--capture ring` (no AF_XDP socket).
const INTERCEPT_RING: &[&str] = &["bpf", "net_admin", "perfmon"];
/// tcpcopy capturing live and sending through AF_XDP (`--send auto`, the default).
const TCPCOPY: &[&str] = &["bpf", "net_admin", "perfmon", "net_raw", "ipc_lock"];
/// tcpcopy capturing live and sending through a raw socket (`--send raw`).
const TCPCOPY_RAW: &[&str] = &["bpf", "net_admin", "perfmon", "net_raw"];
/// tcpcopy replaying a file through a raw socket (no XDP program, no AF_XDP).
const OFFLINE_RAW: &[&str] = &["net_raw"];

/// The capability's number (capabilities(7)), for reading a process's `CapEff`.
fn bit(cap: &str) -> u32 {
    match cap {
        "net_bind_service" => 10,
        "net_admin" => 12,
        "net_raw" => 13,
        "ipc_lock" => 14,
        "perfmon" => 38,
        "bpf" => 39,
        other => panic!("no bit for {other}"),
    }
}

/// The uid and effective capability set of process `pid` (its /proc status).
fn uid_and_caps(pid: u32) -> (String, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let caps = u64::from_str_radix(&field("CapEff:"), 16).unwrap();
    (field("Uid:"), caps)
}

fn mask(caps: &[&str]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1 << bit(c))
}

/// A folder user `nobody` can write to (the pid and log files), inside the testbed's own.
fn nobody_dir(bed: &Testbed) -> std::path::PathBuf {
    let dir = bed.dir().join("nobody");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn unprivileged_with_only_the_named_capabilities_replays_everything() {
    let bed = Testbed::up().expect("testbed");
    let dir = nobody_dir(&bed);
    let (i_pid, i_log) = (dir.join("intercept.pid"), dir.join("intercept.log"));
    let (t_pid, t_log) = (dir.join("tcpcopy.pid"), dir.join("tcpcopy.log"));
    let mut intercept = start_intercept_by(
        &bed,
        Some(INTERCEPT),
        &["-P", path(&i_pid), "-l", path(&i_log)],
    );
    assert!(
        intercept
            .lines()
            .iter()
            .any(|l| l.contains("capture=af_xdp-copy")),
        "{:?}",
        intercept.lines()
    );
    let mut tcpcopy = start_tcpcopy_by(
        &bed,
        Some(TCPCOPY),
        &["-P", path(&t_pid), "-l", path(&t_log)],
    );
    assert!(
        tcpcopy
            .lines()
            .iter()
            .any(|l| l.starts_with("attached") && l.contains("send=af_xdp-copy")),
        "AF_XDP transmit: {:?}",
        tcpcopy.lines()
    );
    // Really nobody, with exactly these capabilities.
    for (p, set) in [(&intercept, INTERCEPT), (&tcpcopy, TCPCOPY)] {
        assert_eq!(uid_and_caps(p.pid()), ("65534".to_owned(), mask(set)));
    }
    for (pid_file, p) in [(&i_pid, &intercept), (&t_pid, &tcpcopy)] {
        let written = std::fs::read_to_string(pid_file).unwrap();
        assert_eq!(written.trim(), p.pid().to_string());
    }

    let a = curl(&bed, Host::Online, "caps", 0..500, true);
    let b = curl(&bed, Host::Online, "caps", 500..1000, true);
    let mut answered = codes(a);
    answered.extend(codes(b));
    assert_eq!(answered.iter().filter(|c| *c == "200").count(), 1000);
    assert!(
        wait_until(WAIT, || logged(&bed, Host::Test, "caps").len() >= 1000),
        "replayed: {}",
        logged(&bed, Host::Test, "caps").len()
    );
    wait_settled(&bed, &mut tcpcopy, 1000, WAIT);
    let test = logged(&bed, Host::Test, "caps");
    assert_eq!(test.len(), 1000, "exactly once each");
    assert!(test.iter().all(|l| l.starts_with("192.0.2.")));

    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "sessions"), 1000, "{last}");
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    let icpt = intercept.finish(Duration::from_secs(10)).unwrap();
    assert!(
        counter(&icpt, "redirected") > 0,
        "replies through AF_XDP: {icpt}"
    );
    assert!(
        !i_pid.exists() && !t_pid.exists(),
        "pid files removed at exit"
    );
    for log in [&i_log, &t_log] {
        assert!(
            std::fs::read_to_string(log).unwrap().contains("attached"),
            "{} written",
            log.display()
        );
    }
    assert!(!bed.xdp_attached(Host::Online).unwrap());
    assert!(!bed.xdp_attached(Host::Assistant).unwrap());
}

/// Starts `name` on `host` as nobody with `caps` and `args`; must fail at once in one line
/// naming exactly `missing` and leave nothing attached.
fn refused(bed: &Testbed, host: Host, name: &str, caps: &[&str], args: &[&str], missing: &str) {
    let out = binary_cmd(bed, host, name, Some(caps))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let what = format!("{name} {args:?} with {caps:?}");
    assert!(!out.status.success(), "{what} must fail: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
    let named = format!(
        "{name}: error: missing capability CAP_{} (",
        missing.to_uppercase()
    );
    assert!(err.starts_with(&named), "{what}: {err}");
    assert!(err.contains("setcap "), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(!bed.xdp_attached(host).unwrap(), "{what}: left attached");
}

/// Every capability of `set` left out in turn.
fn each_missing(bed: &Testbed, host: Host, name: &str, set: &[&str], args: &[&str]) {
    for missing in set {
        let fewer: Vec<&str> = set.iter().copied().filter(|c| c != missing).collect();
        refused(bed, host, name, &fewer, args, missing);
    }
}

#[test]
fn a_missing_capability_is_named_and_nothing_is_attached() {
    let bed = Testbed::up().expect("testbed");
    let target = format!("{}:80", Host::Test.addr());
    let intercept_addr = Host::Assistant.addr().to_string();
    let live = [
        "-i",
        "veth0",
        "--target",
        target.as_str(),
        "-s",
        intercept_addr.as_str(),
    ];
    each_missing(
        &bed,
        Host::Assistant,
        "intercept",
        INTERCEPT,
        &["-i", "veth0"],
    );
    each_missing(
        &bed,
        Host::Assistant,
        "intercept",
        INTERCEPT_RING,
        &["-i", "veth0", "--capture", "ring"],
    );
    each_missing(&bed, Host::Online, "tcpcopy", TCPCOPY, &live);
    each_missing(
        &bed,
        Host::Online,
        "tcpcopy",
        TCPCOPY_RAW,
        &[&live[..], &["--send", "raw"]].concat(),
    );
    // Offline replay loads nothing: only the raw socket's capability (the check comes before the
    // file is read, so any file will do).
    let file = bed.dir().join("empty.pcap");
    std::fs::write(&file, b"").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    each_missing(
        &bed,
        Host::Online,
        "tcpcopy",
        OFFLINE_RAW,
        &[
            "-i",
            path(&file),
            "--target",
            &target,
            "-s",
            &intercept_addr,
            "--send",
            "raw",
        ],
    );
    // A control port below 1024 needs one more.
    each_missing(
        &bed,
        Host::Assistant,
        "intercept",
        &[INTERCEPT_RING, &["net_bind_service"]].concat(),
        &["-i", "veth0", "--capture", "ring", "-p", "900"],
    );

    // The smaller sets suffice for their modes: each starts and attaches.
    let intercept = start_intercept_by(&bed, Some(INTERCEPT_RING), &["--capture", "ring"]);
    assert!(intercept.lines().iter().any(|l| l.contains("capture=ring")));
    let mut tcpcopy = start_tcpcopy_by(&bed, Some(TCPCOPY_RAW), &["--send", "raw"]);
    assert!(
        tcpcopy
            .lines()
            .iter()
            .any(|l| l.starts_with("attached") && l.contains("send=raw"))
    );
    tcpcopy.finish(Duration::from_secs(10)).unwrap();
}

/// File capabilities instead of ambient ones (`setcap` on a copy of intercept), in the
/// background (-d, which starts the same file again): nobody with no capability of its own gets
/// exactly the file's; the parent waits until it is attached, the pid file and the log are
/// written where nobody may write, and SIGTERM detaches and removes the pid file.
#[test]
fn file_capabilities_in_the_background() {
    let bed = Testbed::up().expect("testbed");
    let exe = bed.dir().join("intercept");
    std::fs::copy(tcpcopy_testbed::binary("intercept").unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file_caps = format!("cap_{}+ep", INTERCEPT.join(",cap_"));
    tcpcopy_testbed::run("setcap", &[&file_caps, path(&exe)]).unwrap();
    let dir = nobody_dir(&bed);
    let (pid_file, log) = (dir.join("d.pid"), dir.join("d.log"));
    let out = bed
        .cmd(Host::Assistant, "setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["-i", "veth0", "-d", "-P", path(&pid_file), "-l", path(&log)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pid {pid}")));
    assert_eq!(uid_and_caps(pid), ("65534".to_owned(), mask(INTERCEPT)));
    assert!(bed.xdp_attached(Host::Assistant).unwrap());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("capture=af_xdp-copy")
    );
    tcpcopy_testbed::run("kill", &["-TERM", &pid.to_string()]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !pid_file.exists()
            && !bed.xdp_attached(Host::Assistant).unwrap()),
        "the daemon detached and removed its pid file"
    );
}
