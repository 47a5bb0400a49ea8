//! `-d` (run in the background) and `-P` (pid file) for both binaries.
//!
//! `-d` starts the same program again without `-d`, detached (its own process group, standard
//! streams to the log file or /dev/null), waits until it is attached and running (or has failed,
//! whose exit code it then returns), and exits. No fork in a multi-threaded process, no unsafe.

use std::{
    env, fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    string::String,
    thread,
    time::{Duration, Instant},
    vec::Vec,
};

/// Set in the background process: where to say "attached and running".
const READY_ENV: &str = "TCPCOPY_DAEMON_READY";

/// Why the background process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("starting the background process: {0}")]
    Spawn(std::io::Error),
    #[error("the background process exited during start-up ({0}); see its log (-l)")]
    Failed(String),
    #[error("the background process did not come up within 30 s")]
    Timeout,
}

/// Runs the program in the background if `-d`/`--daemon` is among `args` (the process's own
/// arguments). Returns the background process's pid when this process should now exit.
pub fn spawn_if_requested(log: Option<&Path>) -> Result<Option<u32>, DaemonError> {
    let args: Vec<String> = env::args().skip(1).collect();
    if !args.iter().any(|a| a == "-d" || a == "--daemon") || env::var_os(READY_ENV).is_some() {
        return Ok(None);
    }
    let rest: Vec<&String> = args
        .iter()
        .filter(|a| *a != "-d" && *a != "--daemon")
        .collect();
    let ready = env::temp_dir().join(std::format!("tcpcopy-ready-{}", std::process::id()));
    let _ = fs::remove_file(&ready);
    let out = || -> Stdio {
        log.and_then(|p| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        })
        .map_or_else(Stdio::null, Stdio::from)
    };
    let exe = env::current_exe().map_err(DaemonError::Spawn)?;
    let mut child = Command::new(exe)
        .args(rest)
        .env(READY_ENV, &ready)
        .stdin(Stdio::null())
        .stdout(out())
        .stderr(out())
        .process_group(0)
        .spawn()
        .map_err(DaemonError::Spawn)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready.exists() {
            let _ = fs::remove_file(&ready);
            return Ok(Some(child.id()));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(DaemonError::Failed(std::format!("{status}")));
        }
        if Instant::now() > deadline {
            return Err(DaemonError::Timeout);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Tells the waiting parent (if any) that start-up went through.
pub fn notify_ready() {
    if let Some(path) = env::var_os(READY_ENV) {
        let _ = fs::write(path, b"ready");
    }
}

/// Start-up is through: writes the pid file (if asked; removed when the guard drops) and tells a
/// waiting `-d` parent.
pub fn started(pid_file: Option<&Path>) -> std::io::Result<Option<PidFile>> {
    let guard = pid_file.map(PidFile::create).transpose()?;
    notify_ready();
    Ok(guard)
}

/// A pid file, removed when dropped.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        fs::write(path, std::format!("{}\n", std::process::id()))?;
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The start of both binaries' `main`: checks that the process has the capabilities `tasks`
/// need (else one line naming the missing ones and a failure exit, before anything is loaded or
/// started), goes to the background for `-d` (returning the exit code for this process), sets up
/// logging to stderr or the `-l` file, then runs `run`, printing its error as one line
/// `NAME: error: ...`.
pub fn main_with<E: core::fmt::Display>(
    name: &str,
    log: Option<&Path>,
    tasks: &[crate::caps::Task],
    format: crate::logfmt::LogFormat,
    run: impl FnOnce() -> Result<(), E>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    if let Err(e) = crate::caps::check(name, tasks) {
        std::eprintln!("{name}: error: {e}");
        return ExitCode::FAILURE;
    }
    match spawn_if_requested(log) {
        Ok(Some(pid)) => {
            std::println!("{name} runs in the background, pid {pid}");
            return ExitCode::SUCCESS;
        }
        Ok(None) => {}
        Err(e) => {
            std::eprintln!("{name}: error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger.format_timestamp_millis();
    crate::logfmt::init(format, &mut logger);
    if let Some(path) = log {
        match fs::OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => {
                logger.target(env_logger::Target::Pipe(std::boxed::Box::new(f)));
            }
            Err(e) => {
                std::eprintln!("{name}: error: log file {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    logger.init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            std::eprintln!("{name}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The single-threaded tokio runtime both binaries run their loop on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
