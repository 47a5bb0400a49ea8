//! Processes the tests and the demo start (tcpcopy, intercept) and read the output of.

use anyhow::Context as _;
use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

static BIN_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes [`binary`] take the binaries from `dir` (e.g. `target/release` for benchmarks); the
/// first call wins.
pub fn use_binaries_from(dir: PathBuf) {
    let _ = BIN_DIR.set(dir);
}

/// Path of a workspace binary (`tcpcopy`, `intercept`): the folder [`use_binaries_from`] gave,
/// `$TCPCOPY_BIN_DIR`, or the cargo target folder the running executable lives in or under
/// (`target/debug/deps/<test>` or `target/debug/xtask`); `cargo xtask test` builds them first.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = if let Some(dir) = BIN_DIR.get() {
        dir.clone()
    } else if let Some(dir) = std::env::var_os("TCPCOPY_BIN_DIR") {
        PathBuf::from(dir)
    } else {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().context("executable has no folder")?;
        if dir.ends_with("deps") {
            dir.parent().context("deps has no parent")?.to_path_buf()
        } else {
            dir.to_path_buf()
        }
    };
    let path = dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is not built; run `cargo build --workspace` (cargo xtask test does)",
        path.display()
    );
    Ok(path)
}

/// A started process whose stdout lines are collected; killed (SIGKILL) on drop if still running.
pub struct Spawned {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Spawned {
    /// Starts `cmd` with stdout captured (stderr goes to the test's stderr).
    pub fn start(mut cmd: Command) -> anyhow::Result<Self> {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines lock").push(line);
            }
        });
        Ok(Self {
            child,
            lines,
            reader: Some(reader),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first stdout line starting with `prefix`, waiting up to `timeout`; fails early if the
    /// process exits.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        self.wait_for(|l| l.starts_with(prefix), prefix, timeout)
    }

    /// The first stdout line for which `matches` holds (`what` names it in errors), waiting up to
    /// `timeout`; fails early if the process exits.
    pub fn wait_for(
        &mut self,
        matches: impl Fn(&str) -> bool,
        what: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        self.wait_for_after(0, matches, what, timeout)
    }

    /// [`Self::wait_for`] among the lines after the first `skip` (those printed after a moment
    /// the caller noted with `lines().len()`).
    pub fn wait_for_after(
        &mut self,
        skip: usize,
        matches: impl Fn(&str) -> bool,
        what: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines().into_iter().skip(skip).find(|l| matches(l)) {
                return Ok(l);
            }
            if let Some(status) = self.child.try_wait()? {
                // Let the reader drain what is left.
                thread::sleep(Duration::from_millis(100));
                if let Some(l) = self.lines().into_iter().skip(skip).find(|l| matches(l)) {
                    return Ok(l);
                }
                anyhow::bail!(
                    "process exited ({status}) before printing {what:?}: {:?}",
                    self.lines()
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!("no line {what:?} within {timeout:?}: {:?}", self.lines());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process with SIGTERM and returns its `final ...` line.
    pub fn finish(&mut self, timeout: Duration) -> anyhow::Result<String> {
        self.signal("TERM")?;
        let status = self.wait(timeout)?;
        anyhow::ensure!(status.success(), "exited with {status}: {:?}", self.lines());
        self.lines()
            .into_iter()
            .find(|l| l.starts_with("final"))
            .ok_or_else(|| anyhow::anyhow!("no final line: {:?}", self.lines()))
    }

    /// All stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines lock").clone()
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to this process, by its pid.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} {} failed", self.pid());
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit and for its output to be read.
    pub fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                anyhow::bail!("process {} still running after {timeout:?}", self.pid());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
