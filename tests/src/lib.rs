//! Helpers shared by the end-to-end tests (tests/*.rs); the testbed itself is `tcpcopy-testbed`.

use tcpcopy_testbed::{Host, Testbed};

/// `curl` from the client to `host`, `n` requests to `/{path}/{i}`, one connection each
/// (`Connection: close`); returns the HTTP status of each, in order.
pub fn curl_each(bed: &Testbed, host: Host, path: &str, n: usize) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    for i in 0..n {
        args.extend(["-o".into(), "/dev/null".into()]);
        args.push(format!("http://{}/{path}/{i}", host.addr()));
    }
    let out = bed
        .cmd(Host::Client, "curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-H",
            "Connection: close",
            "-w",
            "%{http_code}\\n",
        ])
        .args(&args)
        .output()
        .expect("run curl");
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

#[cfg(test)]
mod tests {
    #[test]
    fn counter_reads_exact_names() {
        let line = "final seen=10 matched=7 matched_bytes=700 malformed=0";
        assert_eq!(super::counter(line, "matched"), 7);
        assert_eq!(super::counter(line, "matched_bytes"), 700);
    }
}
