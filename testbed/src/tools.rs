//! Every external program the tests, the testbed, the demo and the benchmarks start, and where it
//! comes from: the one list `cargo xtask setup` installs from and the README prints.
//!
//! A program started through [`Testbed::cmd`](crate::Testbed::cmd), [`in_ns`](crate::in_ns) or
//! [`run`](crate::run) is checked against this list first: one that is missing fails at once,
//! naming itself and the command that installs it. A unit test reads the sources of `tests/`,
//! `testbed/` and `xtask/` for the programs they start and fails on any that is not listed here.

use std::path::{Path, PathBuf};

/// Where a program comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A Debian package, installed by `cargo xtask setup` with apt-get.
    Debian(&'static str),
    /// A crate installed by `cargo xtask setup` with `cargo install`.
    Cargo(&'static str),
    /// The machine's Rust toolchain under rustup (shipped; setup adds the nightly's `rust-src`).
    Rustup,
}

/// One program and what it is used for.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub program: &'static str,
    pub source: Source,
    pub used_for: &'static str,
}

const fn deb(program: &'static str, package: &'static str, used_for: &'static str) -> Tool {
    Tool {
        program,
        source: Source::Debian(package),
        used_for,
    }
}

/// The list. Add a program here before a test, the testbed, the demo or a benchmark starts it.
pub const TOOLS: &[Tool] = &[
    deb("ip", "iproute2", "namespaces, veth links, routes (testbed)"),
    deb("tc", "iproute2", "the bridge's mirror port (testbed)"),
    deb("sysctl", "procps", "per-namespace settings (testbed)"),
    deb(
        "ethtool",
        "ethtool",
        "offloads off for the impairment relay (chaos tests)",
    ),
    deb("kill", "procps", "signals to started processes (tests)"),
    deb(
        "cat",
        "coreutils",
        "reading a namespace's /proc files (testbed)",
    ),
    deb("chmod", "coreutils", "setup's policy-rc.d"),
    deb(
        "setpriv",
        "util-linux",
        "running a binary as nobody with chosen capabilities (tests)",
    ),
    deb(
        "setcap",
        "libcap2-bin",
        "file capabilities on a copy of a binary (tests)",
    ),
    deb("nginx", "nginx", "online and test servers (testbed)"),
    deb("curl", "curl", "client requests (tests, demo)"),
    deb("wrk", "wrk", "load (benchmarks)"),
    deb(
        "h2load",
        "nghttp2-client",
        "HTTP/2 load, many streams a connection (tests)",
    ),
    deb(
        "redis-server",
        "redis-server",
        "a non-HTTP online and test service (compare tests)",
    ),
    deb(
        "redis-benchmark",
        "redis-tools",
        "redis load, plain and pipelined (compare tests)",
    ),
    deb(
        "redis-cli",
        "redis-tools",
        "command counts read on the redis servers (compare tests)",
    ),
    deb("tcpdump", "tcpdump", "pcap recordings (offline tests)"),
    deb("tshark", "tshark", "pcapng recordings (offline tests)"),
    deb("bpftool", "bpftool", "XDP program run times (benchmarks)"),
    deb("ping", "iputils-ping", "ICMP through intercept (tests)"),
    deb(
        "chromium",
        "chromium",
        "opening the `tcpcopy report` page in a real browser (tests)",
    ),
    deb(
        "promtool",
        "prometheus",
        "checking the scraped metrics (tests)",
    ),
    deb(
        "systemd-analyze",
        "systemd",
        "checking the systemd units (tests)",
    ),
    deb(
        "podman",
        "podman",
        "building the container image (`cargo xtask image`)",
    ),
    deb("apt-get", "apt", "setup's package installs"),
    deb("dpkg-query", "dpkg", "setup's package checks"),
    Tool {
        program: "bpf-linker",
        source: Source::Cargo("bpf-linker"),
        used_for: "linking the XDP programs (build)",
    },
    Tool {
        program: "cargo-fuzz",
        source: Source::Cargo("cargo-fuzz"),
        used_for: "the fuzz smoke run (`cargo fuzz`)",
    },
    Tool {
        program: "cargo",
        source: Source::Rustup,
        used_for: "builds, tests, benchmarks",
    },
    Tool {
        program: "rustup",
        source: Source::Rustup,
        used_for: "setup's toolchain checks",
    },
    Tool {
        program: "rustc",
        source: Source::Rustup,
        used_for: "setup's sysroot lookup",
    },
];

/// The listed entry for `program`.
pub fn tool(program: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.program == program)
}

/// The Debian packages on the list, each once, in list order.
pub fn debian_packages() -> Vec<&'static str> {
    let mut packages: Vec<&str> = Vec::new();
    for t in TOOLS {
        if let Source::Debian(p) = t.source
            && !packages.contains(&p)
        {
            packages.push(p);
        }
    }
    packages
}

/// The command that installs `tool`.
pub fn install_command(tool: &Tool) -> String {
    match tool.source {
        Source::Debian(p) => {
            format!("`cargo xtask setup` (or: apt-get install -y --no-install-recommends {p})")
        }
        Source::Cargo(c) => format!("`cargo xtask setup` (or: cargo install {c} --locked)"),
        Source::Rustup => "rustup (the machine's Rust toolchain)".to_owned(),
    }
}

/// Where `program` is found on `PATH` (and the sbin folders root's PATH may lack).
pub fn locate(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Fails with a message naming `program` and the command that installs it, when it is missing
/// or not on the list.
pub fn require(program: &str) -> anyhow::Result<()> {
    require_with(program, locate)
}

fn require_with(program: &str, locate: impl Fn(&str) -> Option<PathBuf>) -> anyhow::Result<()> {
    // A path (a binary this workspace built) is not an external program.
    if program.contains('/') {
        return Ok(());
    }
    let Some(tool) = tool(program) else {
        anyhow::bail!(
            "`{program}` is not on the list of programs the tests may start (testbed/src/tools.rs): add it there with the package that provides it, so `cargo xtask setup` installs it"
        );
    };
    if locate(program).is_none() {
        anyhow::bail!(
            "`{program}` is not installed ({}); install it with {}",
            tool.used_for,
            install_command(tool)
        );
    }
    Ok(())
}

/// [`require`] for helpers that return a `Command`: a missing program fails the test at once.
pub(crate) fn require_or_panic(program: &str) {
    if let Err(e) = require(program) {
        panic!("{e:#}");
    }
}

/// The list as the README's Markdown table.
pub fn markdown_table() -> String {
    use std::fmt::Write as _;
    let mut out = String::from("| program | installed from | used for |\n|---|---|---|\n");
    for t in TOOLS {
        let source = match t.source {
            Source::Debian(p) => format!("Debian package `{p}`"),
            Source::Cargo(c) => format!("crate `{c}` (cargo install)"),
            Source::Rustup => "the Rust toolchain (rustup)".to_owned(),
        };
        let _ = writeln!(out, "| `{}` | {source} | {} |", t.program, t.used_for);
    }
    out
}

/// The programs a Rust source text starts: `Command::new` with a literal name, the testbed's helpers
/// (`.cmd(host, "x")`, `in_ns(ns, "x")`, `run("x", ..)`, `output("x", ..)`, xtask's
/// `stdout("x", ..)` / `run_env("x", ..)`), `ip netns exec NS x`, and cargo subcommands
/// (`"fuzz"` after `cargo` names `cargo-fuzz`).
pub fn started_programs(source: &str) -> Vec<String> {
    // Comments name programs without starting them.
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let source = code.as_str();
    let mut found = Vec::new();
    let calls: &[(&str, usize)] = &[
        ("Command::new(", 0),
        (".cmd(", 1),
        ("in_ns(", 1),
        ("run(", 0),
        ("output(", 0),
        ("stdout(", 0),
        ("run_env(", 0),
    ];
    for &(call, arg) in calls {
        for (at, _) in source.match_indices(call) {
            // A method or function whose name only ends like this one (`try_run(`) is not it.
            let before = source[..at].chars().next_back();
            if !call.starts_with(['.', 'C'])
                && before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let args = &source[at + call.len()..];
            if let Some(lit) = nth_arg_literal(args, arg) {
                found.push(lit);
            }
        }
    }
    // `ip netns exec NS program ..` spelled as an argument list.
    for (at, _) in source.match_indices("\"exec\",") {
        if let Some(lit) = nth_arg_literal(&source[at + "\"exec\",".len()..], 1) {
            found.push(lit);
        }
    }
    // `cargo fuzz ..` runs the cargo-fuzz subcommand.
    if source.contains("\"fuzz\",") && source.contains("\"cargo\"") {
        found.push("cargo-fuzz".to_owned());
    }
    found.sort();
    found.dedup();
    found
}

/// The string literal that is argument `n` (0-based) of a call whose arguments start `args`,
/// when it is a plain literal (a program name, not a path or an expression).
fn nth_arg_literal(args: &str, n: usize) -> Option<String> {
    let (mut depth, mut index, mut start) = (0usize, 0usize, 0usize);
    let mut in_string = false;
    let mut chars = args.char_indices();
    while let Some((i, c)) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth > 0 => depth -= 1,
            ')' | ']' | '}' | ',' if depth == 0 => {
                if index == n {
                    return plain_literal(&args[start..i]);
                }
                if c != ',' {
                    return None;
                }
                index += 1;
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

fn plain_literal(arg: &str) -> Option<String> {
    let inner = arg.trim().strip_prefix('"')?.strip_suffix('"')?;
    let plain = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    plain.then(|| inner.to_owned())
}

/// The `.rs` files below `dir`, skipping build output.
pub fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            out.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scanner_finds_every_way_a_program_is_started() {
        let source = "
            let a = Command::new(`nmap`).arg(`-sS`);
            let b = bed.cmd(Host::Client, `h2load`);
            let c = in_ns(&self.ns(host), `socat`);
            let d = cmd::run(`iperf3`, &[`-s`]);
            let e = tcpcopy_testbed::output(`ss`, &[`-tn`]);
            let f = sh::stdout(`rustup`, &[`toolchain`, `list`]);
            let g = cmd::run(`ip`, &[`netns`, `exec`, &br, `tc`, `qdisc`]);
            let h = Command::new(binary(`tcpcopy`)?);
            let i = bed.cmd(host, &program);
            let j = sh::run_env(`apt-get`, &args, &[]);
            let k = try_run(`notme`);
            let l = Command::new(`cargo`).args([`+nightly`, `fuzz`, `run`]);
        "
        // Written with backquotes, turned into quotes here: a made-up program in this fixture
        // must not read as one the project starts to other scanners of the sources.
        .replace('`', "\"");
        assert_eq!(
            started_programs(&source),
            [
                "apt-get",
                "cargo",
                "cargo-fuzz",
                "h2load",
                "ip",
                "iperf3",
                "nmap",
                "rustup",
                "socat",
                "ss",
                "tc"
            ]
        );
    }

    /// The guard: a program started anywhere in tests/, testbed/ or xtask/ that is not on the
    /// list fails here, naming the program and the file.
    #[test]
    fn every_program_the_project_starts_is_on_the_list() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut unlisted = Vec::new();
        let mut started = Vec::new();
        let mut seen = 0;
        for dir in ["tests", "testbed", "xtask"] {
            for file in rust_sources(&root.join(dir)) {
                let text = std::fs::read_to_string(&file).unwrap();
                // This file's own tests name made-up programs on purpose.
                let text = if file.ends_with("testbed/src/tools.rs") {
                    text.split("#[cfg(test)]\nmod tests")
                        .next()
                        .unwrap_or_default()
                } else {
                    &text
                };
                for program in started_programs(text) {
                    seen += 1;
                    started.push(program.clone());
                    if tool(&program).is_none() {
                        unlisted.push(format!(
                            "{program} (in {})",
                            file.strip_prefix(root).unwrap().display()
                        ));
                    }
                }
            }
        }
        assert!(
            seen > 10,
            "the scan found only {seen} programs: is it reading the sources?"
        );
        assert!(
            unlisted.is_empty(),
            "programs started but not on the list in testbed/src/tools.rs (add each with the package that provides it): {unlisted:?}"
        );
        // And nothing on the list that nothing starts (setup would install it for nothing).
        let unused: Vec<&str> = TOOLS
            .iter()
            .map(|t| t.program)
            .filter(|p| !started.iter().any(|s| s == p))
            .collect();
        assert!(
            unused.is_empty(),
            "on the list in testbed/src/tools.rs but started nowhere: {unused:?}"
        );
    }

    #[test]
    fn the_readme_prints_the_list() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md does not hold the list of programs of testbed/src/tools.rs; put this table in it:\n{table}"
        );
    }

    #[test]
    fn a_missing_program_is_named_with_its_install_command() {
        let nowhere = |_: &str| None;
        let err = require_with("tshark", nowhere).unwrap_err().to_string();
        assert!(
            err.contains("`tshark` is not installed")
                && err.contains("apt-get install -y --no-install-recommends tshark"),
            "{err}"
        );
        let err = require_with("bpf-linker", nowhere).unwrap_err().to_string();
        assert!(err.contains("cargo install bpf-linker"), "{err}");
        let err = require("surely-not-a-tool").unwrap_err().to_string();
        assert!(err.contains("not on the list"), "{err}");
        assert!(locate("surely-not-a-tool").is_none());
        // A listed program that is there passes, and a built binary's path is not checked.
        require("cargo").unwrap();
        require("/work/target/debug/tcpcopy").unwrap();
    }
}
