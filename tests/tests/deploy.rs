//! The deployment files in `deploy/`: the systemd units pass `systemd-analyze verify` and the
//! Kubernetes manifests the API's own types; a deliberately broken copy of each fails.
//!
//! Kubernetes: each document is read into the `k8s-openapi` type of its `apiVersion` and `kind`
//! (the Rust types generated from the Kubernetes release's OpenAPI document) and written back;
//! every field of the document must come back unchanged. Those types skip fields they do not
//! know, so a misspelled or unknown field is the one that does not come back; a missing
//! required field or a wrong type fails the reading. No network is needed.

use std::path::{Path, PathBuf};

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, Deployment},
        core::v1::{ConfigMap, Namespace},
    },
    serde::{Deserialize as _, Serialize, de::DeserializeOwned},
};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn deploy(rel: &str) -> String {
    std::fs::read_to_string(root().join("deploy").join(rel))
        .unwrap_or_else(|e| panic!("deploy/{rel}: {e}"))
}

/// Where `back` (the document as the API type wrote it again) lost or changed what `doc`
/// says, as paths (`spec.template.spec.hostNetwrok`).
fn differences(doc: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    let at = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match (doc, back) {
        (Value::Object(d), Value::Object(b)) => {
            for (k, v) in d {
                match b.get(k) {
                    Some(bv) => differences(v, bv, &at(k), out),
                    None => out.push(format!("{}: not a field of the Kubernetes API", at(k))),
                }
            }
            // The types fill a required field that is missing with its default (optional ones
            // are left out): a field written back that the document lacks is a required one.
            for k in b.keys().filter(|k| !d.contains_key(*k)) {
                out.push(format!("{}: a required field is missing", at(k)));
            }
        }
        (Value::Array(d), Value::Array(b)) if d.len() == b.len() => {
            for (i, (dv, bv)) in d.iter().zip(b).enumerate() {
                differences(dv, bv, &format!("{path}[{i}]"), out);
            }
        }
        (d, b) if d == b => {}
        (d, b) => out.push(format!("{path}: {d} read as {b}")),
    }
}

/// Reads `doc` as `T` and writes it back.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Checks every document of a manifest against the Kubernetes API types; the kinds it holds.
fn check_manifest(text: &str) -> Result<Vec<String>, String> {
    let mut kinds = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let doc = Value::deserialize(doc).map_err(|e| format!("document {i}: YAML: {e}"))?;
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let back = match (api, kind) {
            ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(&doc),
            ("apps/v1", "Deployment") => round_trip::<Deployment>(&doc),
            ("v1", "ConfigMap") => round_trip::<ConfigMap>(&doc),
            ("v1", "Namespace") => round_trip::<Namespace>(&doc),
            _ => Err(format!(
                "apiVersion {api:?} kind {kind:?} is not checked here"
            )),
        }
        .map_err(|e| format!("document {i} ({kind}): {e}"))?;
        let mut diff = Vec::new();
        differences(&doc, &back, "", &mut diff);
        if !diff.is_empty() {
            return Err(format!("document {i} ({kind}): {}", diff.join("; ")));
        }
        kinds.push(kind.to_owned());
    }
    if kinds.is_empty() {
        return Err("no document".into());
    }
    Ok(kinds)
}

#[test]
fn the_kubernetes_manifests_match_the_api() {
    for (file, kind) in [
        ("k8s/namespace.yaml", "Namespace"),
        ("k8s/configmap.yaml", "ConfigMap"),
        ("k8s/tcpcopy-daemonset.yaml", "DaemonSet"),
        ("k8s/intercept-daemonset.yaml", "DaemonSet"),
    ] {
        let kinds = check_manifest(&deploy(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"));
        assert_eq!(kinds, [kind], "deploy/{file}");
    }
}

#[test]
fn broken_manifests_fail_the_check() {
    let daemonset = deploy("k8s/tcpcopy-daemonset.yaml");
    let intercept = deploy("k8s/intercept-daemonset.yaml");
    let configmap = deploy("k8s/configmap.yaml");
    for (what, text, needle) in [
        (
            "a misspelled field",
            daemonset.replace("hostNetwork:", "hostNetwrok:"),
            "spec.template.spec.hostNetwrok: not a field",
        ),
        (
            "a misspelled field deep inside",
            intercept.replace("capabilities:", "capabilites:"),
            "securityContext.capabilites: not a field",
        ),
        (
            "a field of another kind",
            configmap.replace("data:", "stringData:"),
            "stringData: not a field",
        ),
        (
            "a wrong type",
            daemonset.replace("hostNetwork: true", "hostNetwork: [yes]"),
            "invalid type",
        ),
        (
            "a missing required field",
            daemonset.replace("        - name: tcpcopy\n", "        - \n"),
            "[0].name: a required field is missing",
        ),
        (
            "an unknown kind",
            configmap.replace("kind: ConfigMap", "kind: ConfigMapp"),
            "is not checked here",
        ),
    ] {
        assert!(
            text != daemonset && text != intercept && text != configmap,
            "{what}: the copy is broken"
        );
        let err = check_manifest(&text).expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
    }
}

/// `systemd-analyze verify` on a copy of `unit` whose executables and environment file point
/// at this build and this repository (verify wants the executables to exist), and
/// `systemd-analyze capability` on every capability it names (verify skips an unknown one
/// silently): fine when both exit 0 and verify says nothing, else what they said.
fn verify_unit(name: &str, unit: &str) -> Result<(), String> {
    tcpcopy_testbed::tools::require("systemd-analyze").map_err(|e| format!("{e:#}"))?;
    for line in unit.lines() {
        let Some((key, caps)) = line.split_once('=') else {
            continue;
        };
        if key == "AmbientCapabilities" || key == "CapabilityBoundingSet" {
            let out = std::process::Command::new("systemd-analyze")
                .arg("capability")
                .args(caps.split_whitespace())
                .output()
                .expect("run systemd-analyze");
            if !out.status.success() {
                return Err(format!(
                    "{key}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("tcpcopy-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = |b: &str| tcpcopy_testbed::binary(b).unwrap().display().to_string();
    let env = root().join("deploy/systemd");
    let text = unit
        .replace("/usr/local/bin/tcpcopy", &bin("tcpcopy"))
        .replace("/usr/local/bin/intercept", &bin("intercept"))
        .replace("/etc/tcpcopy", &env.display().to_string());
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{} {said}", out.status))
    }
}

#[test]
fn the_systemd_units_verify_and_broken_copies_do_not() {
    for name in ["tcpcopy.service", "intercept.service"] {
        let unit = deploy(&format!("systemd/{name}"));
        verify_unit(name, &unit).unwrap_or_else(|e| panic!("deploy/systemd/{name}: {e}"));
        for (what, broken, needle) in [
            (
                "a misspelled directive",
                unit.replace("Restart=on-failure", "Restrat=on-failure"),
                "Unknown key",
            ),
            (
                "a capability that does not exist",
                unit.replace("AmbientCapabilities=CAP_BPF", "AmbientCapabilities=CAP_BFP"),
                "\"CAP_BFP\" not known",
            ),
            (
                "a value systemd does not know",
                unit.replace("ProtectSystem=strict", "ProtectSystem=strcit"),
                "Failed to parse",
            ),
            (
                "an executable that is not there",
                unit.replace("ExecStart=/usr/local/bin/", "ExecStart=/nonexistent/"),
                "nonexistent",
            ),
        ] {
            assert_ne!(broken, unit, "{name}: {what}: the copy is broken");
            let err = verify_unit(name, &broken).expect_err(what);
            assert!(err.contains(needle), "{name}: {what}: {err}");
        }
        // What the unit grants and how it runs.
        for line in [
            "Restart=on-failure",
            "User=tcpcopy",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_NET_RAW CAP_IPC_LOCK",
            "CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_NET_RAW CAP_IPC_LOCK",
        ] {
            assert!(unit.lines().any(|l| l == line), "{name}: {line}");
        }
        assert!(
            unit.lines()
                .any(|l| l.starts_with("EnvironmentFile=/etc/tcpcopy/")),
            "{name}: options from an environment file"
        );
    }
}
