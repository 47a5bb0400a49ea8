//! `--session-log FILE`: one JSON line per ended session, from the engine's `Event::Closed`.
//!
//! Workers collect their lines and append them in one write per publish tick (and at the end),
//! so lines of different workers never interleave. SIGHUP reopens the file by its name (after
//! logrotate moved it, the next lines go to a new file of that name).

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context as _;
use tcpcopy_engine::{Outcome, SessionRecord, Time};

/// A file of JSON lines (`--session-log`, `--compare-log`): appended whole, reopened by its
/// name on SIGHUP.
pub struct LineLog {
    /// The option that named it, for the log lines about it.
    option: &'static str,
    path: PathBuf,
    file: Mutex<File>,
}

/// The session log file.
pub type SessionLog = LineLog;

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LineLog {
    pub fn open(option: &'static str, path: &Path) -> anyhow::Result<Self> {
        let file = open(path).with_context(|| format!("{option} {}", path.display()))?;
        Ok(Self {
            option,
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Appends whole lines.
    pub fn write(&self, lines: &[u8]) {
        let mut f = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = f.write_all(lines) {
            log::warn!("{} {}: {e}", self.option, self.path.display());
        }
    }

    /// Opens the file by its name again (SIGHUP); the old one stays in use if that fails.
    pub fn reopen(&self) {
        match open(&self.path) {
            Ok(new) => {
                *self.file.lock().unwrap_or_else(PoisonError::into_inner) = new;
                log::info!("{} {} reopened", self.option, self.path.display());
            }
            Err(e) => log::warn!("{} {}: reopening: {e}", self.option, self.path.display()),
        }
    }
}

/// Engine time (microseconds since the Unix epoch, see `replay::now`) as RFC 3339.
fn rfc3339(t: Time) -> String {
    let at = UNIX_EPOCH + Duration::from_micros(t.as_micros());
    humantime::format_rfc3339_micros(at).to_string()
}

/// One session's JSON line (with its newline) appended to `out`.
pub fn append(
    out: &mut Vec<u8>,
    worker: usize,
    client: SocketAddr,
    target: SocketAddr,
    outcome: Outcome,
    r: &SessionRecord,
) {
    let outcome = match outcome {
        Outcome::Completed => "completed",
        Outcome::Lost(reason) => reason.name(),
    };
    let line = serde_json::json!({
        "start": rfc3339(r.started),
        "end": rfc3339(r.ended),
        "duration_seconds": r.ended.saturating_since(r.started).as_secs_f64(),
        "captured_client": r.captured_client.to_string(),
        "online": r.online.to_string(),
        "replay_client": client.to_string(),
        "target": target.to_string(),
        "requests": r.requests,
        "bytes": r.bytes,
        "outcome": outcome,
        "worker": worker,
    });
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_line_with_every_field() {
        let mut out = Vec::new();
        let r = SessionRecord {
            captured_client: "198.51.100.10:5000".parse().unwrap(),
            online: "198.51.100.20:80".parse().unwrap(),
            started: Time::from_micros(1_800_000_000_000_000),
            ended: Time::from_micros(1_800_000_000_250_000),
            bytes: 78,
            requests: 1,
        };
        let lost = Outcome::Lost(tcpcopy_engine::LossReason::CaptureGap);
        append(
            &mut out,
            1,
            "192.0.2.7:5000".parse().unwrap(),
            "198.51.100.30:80".parse().unwrap(),
            lost,
            &r,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with('\n'));
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(j["start"], "2027-01-15T08:00:00.000000Z");
        assert_eq!(j["end"], "2027-01-15T08:00:00.250000Z");
        assert_eq!(j["duration_seconds"], 0.25);
        assert_eq!(j["captured_client"], "198.51.100.10:5000");
        assert_eq!(j["replay_client"], "192.0.2.7:5000");
        assert_eq!(j["target"], "198.51.100.30:80");
        assert_eq!(j["online"], "198.51.100.20:80");
        assert_eq!(
            (j["requests"].as_u64(), j["bytes"].as_u64()),
            (Some(1), Some(78))
        );
        assert_eq!(j["outcome"], "capture_gap");
        assert_eq!(j["worker"], 1);
    }
}
