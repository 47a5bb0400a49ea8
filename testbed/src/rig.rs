//! Driving the testbed: curl from the client, tcpcopy and intercept on their hosts, reading the
//! nginx logs. Used by the end-to-end tests and by `cargo xtask demo`.

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{Host, IFACE, Spawned, Testbed, binary};

/// `curl` from the client to `host`, `n` requests to `/{path}/{i}`, one connection each
/// (`Connection: close`); returns the HTTP status of each, in order.
pub fn curl_each(bed: &Testbed, host: Host, path: &str, n: usize) -> Vec<String> {
    let out = curl(bed, host, path, 0..n, true)
        .wait_with_output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Starts `curl` from the client to `host` for `/{path}/{i}`, `i` in `range`: one connection per
/// request (`close`) or all on one keep-alive connection. Its stdout lists the HTTP codes.
pub fn curl(
    bed: &Testbed,
    host: Host,
    path: &str,
    range: std::ops::Range<usize>,
    close: bool,
) -> Child {
    curl_to(bed, host, false, path, range, close)
}

/// [`curl`] to `host`'s IPv6 address when `v6`.
pub fn curl_to(
    bed: &Testbed,
    host: Host,
    v6: bool,
    path: &str,
    range: std::ops::Range<usize>,
    close: bool,
) -> Child {
    bed.cmd(Host::Client, "curl")
        .args(curl_args(host, v6, path, range, close))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start curl")
}

/// The arguments of [`curl_to`]'s `curl` (for a caller that adds its own, e.g. `--rate`).
pub fn curl_args(
    host: Host,
    v6: bool,
    path: &str,
    range: std::ops::Range<usize>,
    close: bool,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-gs".into(),
        "--max-time".into(),
        "60".into(),
        "-w".into(),
        "%{http_code}\\n".into(),
    ];
    if close {
        args.extend(["-H".into(), "Connection: close".into()]);
    }
    for i in range {
        args.extend(["-o".into(), "/dev/null".into()]);
        args.push(format!("http://{}/{path}/{i}", host.socket(v6, 80)));
    }
    args
}

/// HTTP codes a `curl` child printed.
pub fn codes(child: Child) -> Vec<String> {
    let out = child.wait_with_output().expect("curl output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The value of `name=N` in a counters line (`final seen=1 matched=2 ...`).
pub fn counter(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {line:?}"))
}

/// Waits up to `timeout` for a stats line of tcpcopy (run with `--compare`) whose comparison has
/// decided `n` requests or more (same, differ or not compared); that line.
pub fn wait_decided(tcpcopy: &mut Spawned, n: u64, timeout: Duration) -> String {
    tcpcopy
        .wait_for(
            |l| {
                l.starts_with("stats")
                    && l.contains(" compare ")
                    && counter(l, "same") + counter(l, "differ") + counter(l, "not_compared") >= n
            },
            "the comparison's verdicts",
            timeout,
        )
        .unwrap_or_else(|e| panic!("{e:#}; {:?}", tcpcopy.lines().last()))
}

/// Access-log lines of `host` for requests under `/{path}/`.
pub fn logged(bed: &Testbed, host: Host, path: &str) -> Vec<String> {
    let needle = format!(" /{path}/");
    bed.requests(host)
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.contains(&needle))
        .collect()
}

/// Waits up to `timeout` for `done`; returns whether it came.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    done()
}

/// Waits until `host` has no connection on port `port` that still expects a segment: every
/// segment of those connections (the last ACKs included) has arrived.
pub fn wait_closed(bed: &Testbed, host: Host, port: u16) {
    assert!(
        wait_until(Duration::from_secs(10), || bed
            .open_tcp(host, port)
            .is_ok_and(|n| n == 0)),
        "{} still has open connections on port {port}",
        host.name()
    );
}

/// Waits until every client segment has reached the online host (its port-80 connections are
/// closed), then until tcpcopy (started with a stats interval) says, in a line printed after
/// that, that it has taken in every frame its XDP program handed it (not asked with `--compare`,
/// whose programs hand it production's responses too, which the engine never takes in) and that
/// every session it started, at least `sessions` of them, has ended (completed or lost): nothing
/// more will reach the test server. The stats line that said so.
pub fn wait_settled(
    bed: &Testbed,
    tcpcopy: &mut Spawned,
    sessions: u64,
    timeout: Duration,
) -> String {
    wait_settled_on(bed, 80, tcpcopy, sessions, timeout)
}

/// [`wait_settled`] for clients of online's port `port`.
pub fn wait_settled_on(
    bed: &Testbed,
    port: u16,
    tcpcopy: &mut Spawned,
    sessions: u64,
    timeout: Duration,
) -> String {
    wait_closed(bed, Host::Online, port);
    let from = tcpcopy.lines().len();
    tcpcopy
        .wait_for_after(
            from,
            |l| l.starts_with("stats") && settled(l, sessions),
            "a settled replay",
            timeout,
        )
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Whether a stats line says every started session ended and (unless it is a `--compare` run's)
/// every handed-in frame was taken.
fn settled(line: &str, sessions: u64) -> bool {
    let started = counter(line, "sessions");
    let compare = line.contains(" compare ");
    started >= sessions
        && counter(line, "completed") + counter(line, "lost") == started
        && (compare
            || counter(line, "copied") + counter(line, "redirected") == counter(line, "captured"))
}

/// Starts intercept (catching replies from port 80) and waits until it listens: on the
/// assistant, or in the two-host layout on the test host with `--egress` for the replay
/// clients' networks.
pub fn start_intercept(bed: &Testbed) -> Spawned {
    start_intercept_with(bed, &[])
}

/// [`start_intercept`] with `extra` options.
pub fn start_intercept_with(bed: &Testbed, extra: &[&str]) -> Spawned {
    start_intercept_by(bed, None, extra)
}

/// Runs `program` on `host` as user `nobody` (uid and gid 65534, no supplementary groups) with
/// only the capabilities `caps` (setpriv names: `bpf`, `net_admin`, ...): inheritable, ambient
/// and the whole bounding set, so the program gets exactly these and can gain no other.
pub fn unprivileged(bed: &Testbed, host: Host, caps: &[&str], program: &str) -> Command {
    let set = caps
        .iter()
        .fold(String::from("-all"), |set, c| format!("{set},+{c}"));
    let mut cmd = bed.cmd(host, "setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps={set}"))
        .arg(format!("--ambient-caps={set}"))
        .arg(format!("--bounding-set={set}"))
        .arg(program);
    cmd
}

/// The command that starts `name` (`tcpcopy`, `intercept`) on `host`: as root, or as `nobody`
/// with only the capabilities `caps` ([`unprivileged`]).
pub fn binary_cmd(bed: &Testbed, host: Host, name: &str, caps: Option<&[&str]>) -> Command {
    let path = binary(name).expect("built");
    let path = path.to_str().expect("utf-8");
    match caps {
        None => bed.cmd(host, path),
        Some(caps) => unprivileged(bed, host, caps, path),
    }
}

/// [`start_intercept_with`], as `nobody` with only the capabilities `caps` if given.
pub fn start_intercept_by(bed: &Testbed, caps: Option<&[&str]>, extra: &[&str]) -> Spawned {
    start_intercept_named(bed, "intercept", caps, extra)
}

/// [`start_intercept_by`] of the intercept binary `name` (`intercept`, or another build put
/// next to it).
pub fn start_intercept_named(
    bed: &Testbed,
    name: &str,
    caps: Option<&[&str]>,
    extra: &[&str],
) -> Spawned {
    let mut cmd = binary_cmd(bed, bed.intercept_host(), name, caps);
    cmd.args(["-i", IFACE, "--stats-interval", "1"]);
    if bed.two_hosts() {
        cmd.args([
            "--egress",
            "-c",
            crate::REPLAY_CLIENT_NET,
            "-c",
            crate::REPLAY_CLIENT_NET6,
        ]);
    }
    cmd.args(extra);
    let mut p = Spawned::start(cmd).expect("start intercept");
    p.wait_for_line("attached", Duration::from_secs(20))
        .expect("intercept attaches");
    p
}

/// Starts tcpcopy on the online host replaying port 80 to the test host through intercept (on
/// the assistant, or the test host in the two-host layout), rewriting clients into
/// 192.0.2.0/24 (the test host routes those via the assistant, or via its default gateway),
/// plus `extra` options; waits until every control connection (2 per worker) is up.
pub fn start_tcpcopy(bed: &Testbed, extra: &[&str]) -> Spawned {
    start_tcpcopy_by(bed, None, extra)
}

/// [`start_tcpcopy`], as `nobody` with only the capabilities `caps` if given.
pub fn start_tcpcopy_by(bed: &Testbed, caps: Option<&[&str]>, extra: &[&str]) -> Spawned {
    let mut p = start_tcpcopy_unlinked(bed, caps, extra);
    wait_links_up(&mut p);
    p
}

/// [`start_tcpcopy_by`] without waiting for the intercept links (for tests where intercept
/// refuses them): waits until tcpcopy has attached.
pub fn start_tcpcopy_unlinked(bed: &Testbed, caps: Option<&[&str]>, extra: &[&str]) -> Spawned {
    start_replay(bed, "tcpcopy", caps, extra).expect("start tcpcopy")
}

/// Starts the tcpcopy binary `name` (`tcpcopy`, or another build put next to it) on the online
/// host replaying port 80 to the test host through the testbed's intercept, clients rewritten
/// into 192.0.2.0/24, plus `extra`; waits until it has attached.
pub fn start_replay(
    bed: &Testbed,
    name: &str,
    caps: Option<&[&str]>,
    extra: &[&str],
) -> anyhow::Result<Spawned> {
    let target = format!("{}:80", Host::Test.addr());
    let intercept = bed.intercept_host().addr().to_string();
    let mut args = vec![
        "-i",
        IFACE,
        "--target",
        &target,
        "-s",
        &intercept,
        "-c",
        "192.0.2.x",
    ];
    args.extend(extra);
    start_binary_as(bed, name, caps, &args)
}

/// Starts tcpcopy on the online host with exactly `args` (and `--stats-interval 0.2`), as a user
/// types them; waits until it is attached.
pub fn start_tcpcopy_with(bed: &Testbed, args: &[&str]) -> Spawned {
    start_tcpcopy_as(bed, None, args)
}

/// [`start_tcpcopy_with`], as `nobody` with only the capabilities `caps` if given.
pub fn start_tcpcopy_as(bed: &Testbed, caps: Option<&[&str]>, args: &[&str]) -> Spawned {
    start_binary_as(bed, "tcpcopy", caps, args).expect("start tcpcopy")
}

/// The tcpcopy binary `name` on the online host with `args` (and `--stats-interval 0.2`), as
/// `nobody` with only `caps` if given; waits until it has attached.
fn start_binary_as(
    bed: &Testbed,
    name: &str,
    caps: Option<&[&str]>,
    args: &[&str],
) -> anyhow::Result<Spawned> {
    let mut cmd = binary_cmd(bed, Host::Online, name, caps);
    cmd.args(args).args(["--stats-interval", "0.2"]);
    let mut p = Spawned::start(cmd)?;
    p.wait_for_line("attached", Duration::from_secs(20))?;
    Ok(p)
}

/// Starts tcpcopy on the online host with exactly `args` (and a stats interval); waits until it
/// has attached and every control connection is up.
pub fn start_tcpcopy_args(bed: &Testbed, args: &[&str]) -> Spawned {
    let mut p = start_tcpcopy_with(bed, args);
    wait_links_up(&mut p);
    p
}

/// Waits until every control connection of a tcpcopy (2 per worker) is up.
pub fn wait_links_up(tcpcopy: &mut Spawned) {
    tcpcopy
        .wait_for(
            |l| {
                l.split_whitespace()
                    .find_map(|kv| kv.strip_prefix("intercept_links="))
                    .and_then(|v| v.split_once('/'))
                    .is_some_and(|(up, all)| up == all && all != "0")
            },
            "intercept links up",
            Duration::from_secs(20),
        )
        .expect("tcpcopy connects to intercept");
}

/// POSTs `data` from the client to `http://online/upload/{name}` (nginx keeps the body in a file
/// named in its access log); returns the HTTP status.
pub fn upload(bed: &Testbed, name: &str, data: &[u8]) -> anyhow::Result<String> {
    let body = bed.dir().join(format!("{name}.upload"));
    std::fs::write(&body, data)?;
    let out = bed
        .cmd(Host::Client, "curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .arg(format!("http://{}/upload/{name}", Host::Online.addr()))
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// POSTs each of `bodies` from the client to `http://online/upload/{prefix}{i}`, one connection
/// each, in one curl process; returns the HTTP statuses.
pub fn upload_each(bed: &Testbed, prefix: &str, bodies: &[Vec<u8>]) -> anyhow::Result<Vec<String>> {
    let mut cmd = bed.cmd(Host::Client, "curl");
    for (i, data) in bodies.iter().enumerate() {
        let body = bed.dir().join(format!("{prefix}{i}.upload"));
        std::fs::write(&body, data)?;
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}\\n"])
            .args(["-H", "Connection: close", "--data-binary"])
            .arg(format!("@{}", body.display()))
            .arg(format!("http://{}/upload/{prefix}{i}", Host::Online.addr()));
    }
    let out = cmd.output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The request body the test nginx stored for `/upload/{name}`, if it arrived.
pub fn replayed_upload(bed: &Testbed, name: &str) -> Option<Vec<u8>> {
    let line = logged(bed, Host::Test, "upload")
        .into_iter()
        .find(|l| l.contains(&format!("/upload/{name} ")))?;
    std::fs::read(line.split(' ').next_back()?).ok()
}

/// The requests (method, URI, protocol) of access-log lines, sorted.
pub fn requests(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_replay_is_settled_when_every_frame_is_taken_and_every_session_ended() {
        let line =
            "stats seen=9 matched=8 copied=8 redirected=0 captured=8 sessions=3 completed=2 lost=1";
        assert!(super::settled(line, 3));
        assert!(!super::settled(line, 4), "fewer sessions than asked");
        let open = line.replace("lost=1", "lost=0");
        assert!(!super::settled(&open, 3), "a session still runs");
        let behind = line.replace("captured=8", "captured=7");
        assert!(!super::settled(&behind, 3), "a frame not yet taken");
    }

    #[test]
    fn counter_reads_exact_names() {
        let line = "final seen=10 matched=7 matched_bytes=700 malformed=0";
        assert_eq!(super::counter(line, "matched"), 7);
        assert_eq!(super::counter(line, "matched_bytes"), 700);
    }
}
