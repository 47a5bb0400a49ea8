//! Teardown of testbeds: by id, and of the stale ones a killed process left behind.

use std::{fs, path::Path, thread, time::Duration};

use crate::{Host, cmd};

/// Every testbed namespace starts with this.
pub const PREFIX: &str = "tcx-";

const SUFFIXES: [&str; 5] = [
    "br",
    Host::Client.name(),
    Host::Online.name(),
    Host::Test.name(),
    Host::Assistant.name(),
];

/// The project's namespaces that exist now.
pub fn project_namespaces() -> Vec<String> {
    cmd::output("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_owned)
        .collect()
}

/// The testbed id of a project namespace (`tcx-123-0-online` -> `tcx-123-0`).
fn id_of(ns: &str) -> Option<&str> {
    let (id, suffix) = ns.rsplit_once('-')?;
    SUFFIXES.contains(&suffix).then_some(id)
}

/// Stops every process in testbed `id`'s namespaces (all of them were started by the testbed's
/// owner), deletes the namespaces, which takes their links with them, and removes its files.
/// Never fails: what cannot be removed is reported on stderr.
pub fn teardown(id: &str) {
    for ns in project_namespaces().iter().filter(|n| id_of(n) == Some(id)) {
        for attempt in 0..40 {
            let pids = cmd::output("ip", &["netns", "pids", ns]).unwrap_or_default();
            let pids: Vec<&str> = pids.split_whitespace().collect();
            if pids.is_empty() {
                break;
            }
            if attempt == 0 || attempt % 10 == 9 {
                let mut args = vec!["-KILL"];
                args.extend(&pids);
                let _ = cmd::run("kill", &args);
            }
            thread::sleep(Duration::from_millis(50));
        }
        if let Err(e) = cmd::ip(&["netns", "del", ns]) {
            eprintln!("testbed: could not delete namespace {ns}: {e:#}");
        }
    }
    let dir = std::env::temp_dir().join(id);
    if dir.exists() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// The ids of testbeds whose creating process no longer exists (`tcx-<pid>-<n>-*`): left behind.
pub fn stale_ids() -> Vec<String> {
    let mut ids: Vec<String> = project_namespaces()
        .iter()
        .filter_map(|ns| id_of(ns))
        .filter(|id| {
            let pid = id
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('-').next());
            pid.and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Tears down the testbeds of processes that no longer exist; returns their ids.
pub fn sweep_stale() -> Vec<String> {
    let ids = stale_ids();
    for id in &ids {
        teardown(id);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::id_of;

    #[test]
    fn ids_from_namespace_names() {
        assert_eq!(id_of("tcx-123-0-online"), Some("tcx-123-0"));
        assert_eq!(id_of("tcx-123-10-br"), Some("tcx-123-10"));
        assert_eq!(id_of("tcx-bed-assistant"), Some("tcx-bed"));
        assert_eq!(id_of("tcx-123-0-other"), None);
    }
}
