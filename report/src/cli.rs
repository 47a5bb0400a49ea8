//! `tcpcopy report FILE [-o OUT.html]`: the command line, called by the tcpcopy binary when its
//! first argument is `report`.

use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use clap::Parser;

use crate::page::{DEFAULT_TOP, thousands};

#[derive(Debug, Parser)]
#[command(
    name = "tcpcopy report",
    bin_name = "tcpcopy report",
    about = "Turns a --compare-log file into one self-contained HTML page (verdict, latency distributions, differences over time, status pairs, top differing requests)"
)]
pub struct Args {
    /// The compare log tcpcopy wrote (--compare-log FILE).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Where to write the page. Default: FILE.html.
    #[arg(short = 'o', long = "output", value_name = "OUT.html")]
    pub output: Option<PathBuf>,

    /// Rows in the lists of requests and status pairs.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TOP)]
    pub top: usize,
}

impl Args {
    pub fn output(&self) -> PathBuf {
        self.output.clone().unwrap_or_else(|| {
            let mut name = self.file.clone().into_os_string();
            name.push(".html");
            PathBuf::from(name)
        })
    }
}

/// Runs `tcpcopy report` with `args` (the first being the command's name, `report`).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            // --help and the like print and succeed; usage errors fail.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let output = args.output();
    match crate::report_file(&args.file, &output, args.top) {
        Ok(agg) => {
            let totals = agg.last_summary.as_ref().map_or_else(
                || {
                    format!(
                        "{} differing requests, no summary",
                        thousands(agg.differ_lines)
                    )
                },
                |s| {
                    format!(
                        "same={} differ={} not_compared={}",
                        s.same,
                        s.differ,
                        s.not_compared_total()
                    )
                },
            );
            println!(
                "tcpcopy report: wrote {} ({totals}; {} lines read, {} unreadable)",
                output.display(),
                thousands(agg.lines),
                thousands(agg.bad_lines)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tcpcopy report: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
