//! The capabilities each binary needs, in one place, and the start-up check both run.
//!
//! Neither binary needs root: each needs a few capabilities in its effective set, and which
//! depends on what it is about to do ([`Task`]). [`check`] reads the effective set (the `caps`
//! crate) and, when any is missing, returns one line naming each missing capability with what
//! needs it and how to grant the whole set. Root has every capability and passes unchanged.
//!
//! What each task needs, found by experiment on Linux 6.18 (see the README, "Capabilities instead of root"):
//! creating the maps and loading the programs needs `CAP_BPF`; the XDP program type, the AF_XDP
//! socket map (`XSKS`) and the attach need `CAP_NET_ADMIN`; without `CAP_PERFMON` the verifier
//! refuses the programs' packet-pointer arithmetic ("pointer arithmetic with it prohibited for
//! !root"); AF_XDP and raw sockets need `CAP_NET_RAW`; an AF_XDP UMEM is charged to
//! `RLIMIT_MEMLOCK` unless the process has `CAP_IPC_LOCK` (the project's UMEMs, 8 MiB per
//! receive queue and 16 MiB per transmit queue, are refused with ENOBUFS under the usual 8 MiB
//! limit). A control port below `net.ipv4.ip_unprivileged_port_start` (1024) needs
//! `CAP_NET_BIND_SERVICE`. The netlink questions (routes, neighbours), the /proc and /sys reads
//! (queues), the UDP
//! datagram that triggers neighbour resolution, pinning threads, `-d`, `-P` and `-l` need none.

use std::{
    borrow::ToOwned,
    format,
    string::{String, ToString},
    vec::Vec,
};

use caps::CapSet;
pub use caps::Capability;

/// Something a binary does that needs capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Task {
    /// Loading the XDP program with its maps and attaching it through a bpf link.
    LoadXdp,
    /// AF_XDP sockets (tcpcopy's transmit and `--mirror` receive, intercept's receive) and the
    /// memory (UMEM) they register.
    AfXdp,
    /// A raw IP socket (tcpcopy's `--send raw` and fallback).
    RawSocket,
    /// Listening on a privileged port (intercept's `-p` below 1024).
    PrivilegedPort,
}

impl Task {
    /// The capabilities this task needs, each with what needs it.
    pub fn needs(self) -> &'static [(Capability, &'static str)] {
        match self {
            Task::LoadXdp => &[
                (Capability::CAP_BPF, "loading the XDP program and its maps"),
                (
                    Capability::CAP_NET_ADMIN,
                    "loading and attaching the XDP program",
                ),
                (
                    Capability::CAP_PERFMON,
                    "the verifier's check of the XDP program's packet-pointer arithmetic",
                ),
            ],
            Task::AfXdp => &[
                (Capability::CAP_NET_RAW, "AF_XDP sockets"),
                (
                    Capability::CAP_IPC_LOCK,
                    "AF_XDP memory (UMEM) beyond RLIMIT_MEMLOCK",
                ),
            ],
            Task::RawSocket => &[(Capability::CAP_NET_RAW, "the raw IP socket")],
            Task::PrivilegedPort => &[(
                Capability::CAP_NET_BIND_SERVICE,
                "the control port below 1024",
            )],
        }
    }
}

/// What tcpcopy does, from its options: live capture loads XDP; sending through AF_XDP
/// (`--send auto|xdp` with an IPv4 target) or receiving through it (`--mirror`) needs the
/// AF_XDP set; a raw socket (`--send raw`, the fallback, IPv6 targets) needs `CAP_NET_RAW`,
/// which AF_XDP needs anyway.
pub fn tcpcopy_tasks(live: bool, af_xdp: bool) -> Vec<Task> {
    let mut tasks = Vec::new();
    if live {
        tasks.push(Task::LoadXdp);
    }
    if af_xdp {
        tasks.push(Task::AfXdp);
    }
    tasks.push(Task::RawSocket);
    tasks
}

/// What intercept does: it always loads XDP; `--capture auto|xdp` receives through AF_XDP;
/// its control port may be a privileged one (see [`privileged_port`]).
pub fn intercept_tasks(af_xdp: bool, privileged_port: bool) -> Vec<Task> {
    let mut tasks = vec![Task::LoadXdp];
    if af_xdp {
        tasks.push(Task::AfXdp);
    }
    if privileged_port {
        tasks.push(Task::PrivilegedPort);
    }
    tasks
}

/// Whether listening on `port` needs `CAP_NET_BIND_SERVICE` in this network namespace: below
/// `net.ipv4.ip_unprivileged_port_start` (1024 unless changed). Port 0 picks a free port.
pub fn privileged_port(port: u16) -> bool {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1024);
    port != 0 && u32::from(port) < start
}

/// The capabilities `tasks` need, each once, in the order the tasks name them.
pub fn required(tasks: &[Task]) -> Vec<Capability> {
    let mut all: Vec<Capability> = Vec::new();
    for (cap, _) in tasks.iter().flat_map(|t| t.needs()) {
        if !all.contains(cap) {
            all.push(*cap);
        }
    }
    all
}

/// Why the capabilities are not there.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// Some are missing: one line, printed after `NAME: error: `.
    #[error("{0}")]
    Missing(String),
    /// The effective set could not be read.
    #[error("reading this process's capabilities: {0}")]
    Read(String),
}

/// Checks that this process has every capability `tasks` need; the message names this
/// executable (`name` if its path cannot be read) in the `setcap` command it suggests.
pub fn check(name: &str, tasks: &[Task]) -> Result<(), CapsError> {
    let effective =
        caps::read(None, CapSet::Effective).map_err(|e| CapsError::Read(format!("{e}")))?;
    let exe = std::env::current_exe().map_or_else(|_| name.to_owned(), |p| p.display().to_string());
    match missing_message(&exe, tasks, |c| effective.contains(&c)) {
        Some(m) => Err(CapsError::Missing(m)),
        None => Ok(()),
    }
}

/// The one-line message for the capabilities of `tasks` that `has` says are missing (the
/// `setcap` command it suggests names `exe`), or `None`.
pub fn missing_message(
    exe: &str,
    tasks: &[Task],
    has: impl Fn(Capability) -> bool,
) -> Option<String> {
    let mut missing: Vec<(Capability, Vec<&str>)> = Vec::new();
    for task in tasks {
        for (cap, why) in task.needs() {
            if has(*cap) {
                continue;
            }
            match missing.iter_mut().find(|(c, _)| c == cap) {
                Some((_, whys)) => {
                    if !whys.contains(why) {
                        whys.push(why);
                    }
                }
                None => missing.push((*cap, vec![why])),
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let list: Vec<String> = missing
        .iter()
        .map(|(c, whys)| format!("{c} ({})", whys.join(", ")))
        .collect();
    let all = required(tasks);
    let setcap: Vec<String> = all.iter().map(|c| c.to_string().to_lowercase()).collect();
    let ambient: Vec<String> = all.iter().map(ToString::to_string).collect();
    Some(format!(
        "missing {} {}; run as root or grant: setcap {}+ep {exe} (systemd: AmbientCapabilities={})",
        if missing.len() == 1 {
            "capability"
        } else {
            "capabilities"
        },
        list.join(", "),
        setcap.join(","),
        ambient.join(" "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_there_says_nothing() {
        let tasks = tcpcopy_tasks(true, true);
        assert_eq!(missing_message("tcpcopy", &tasks, |_| true), None);
    }

    #[test]
    fn one_missing_is_named_with_what_needs_it_and_the_whole_set_to_grant() {
        let tasks = tcpcopy_tasks(true, true);
        let m = missing_message("tcpcopy", &tasks, |c| c != Capability::CAP_BPF).unwrap();
        assert_eq!(
            m,
            "missing capability CAP_BPF (loading the XDP program and its maps); run as root or grant: \
             setcap cap_bpf,cap_net_admin,cap_perfmon,cap_net_raw,cap_ipc_lock+ep tcpcopy \
             (systemd: AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_NET_RAW CAP_IPC_LOCK)"
        );
        assert!(!m.contains('\n'));
    }

    #[test]
    fn a_capability_two_tasks_need_is_named_once_with_both_reasons() {
        let tasks = tcpcopy_tasks(false, true);
        let m = missing_message("tcpcopy", &tasks, |_| false).unwrap();
        assert!(
            m.starts_with(
                "missing capabilities CAP_NET_RAW (AF_XDP sockets, the raw IP socket), \
                 CAP_IPC_LOCK (AF_XDP memory (UMEM) beyond RLIMIT_MEMLOCK);"
            ),
            "{m}"
        );
    }

    #[test]
    fn the_sets_per_binary_and_mode() {
        use Capability::{
            CAP_BPF, CAP_IPC_LOCK, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_PERFMON,
        };
        let set = <[Capability]>::to_vec;
        assert_eq!(
            required(&tcpcopy_tasks(true, true)),
            set(&[
                CAP_BPF,
                CAP_NET_ADMIN,
                CAP_PERFMON,
                CAP_NET_RAW,
                CAP_IPC_LOCK
            ])
        );
        assert_eq!(
            required(&tcpcopy_tasks(true, false)),
            set(&[CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_NET_RAW])
        );
        assert_eq!(
            required(&tcpcopy_tasks(false, true)),
            set(&[CAP_NET_RAW, CAP_IPC_LOCK])
        );
        assert_eq!(required(&tcpcopy_tasks(false, false)), set(&[CAP_NET_RAW]));
        assert_eq!(
            required(&intercept_tasks(true, false)),
            set(&[
                CAP_BPF,
                CAP_NET_ADMIN,
                CAP_PERFMON,
                CAP_NET_RAW,
                CAP_IPC_LOCK
            ])
        );
        assert_eq!(
            required(&intercept_tasks(false, false)),
            set(&[CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON])
        );
        assert_eq!(
            required(&intercept_tasks(false, true)),
            set(&[CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_NET_BIND_SERVICE])
        );
    }
}
