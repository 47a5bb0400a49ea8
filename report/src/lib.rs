//! `tcpcopy report`: turns a `--compare-log` file (JSON lines, see [`tcpcopy_compare::log`]) into
//! one self-contained HTML page: the verdict (totals) first, then the latency distributions online
//! vs test, the differences over time, the status pairs, what differs first and the most frequent
//! differing requests.
//!
//! The log is read as a stream and aggregated as it is read ([`Aggregate`]): memory is bounded
//! whatever the log's size (capped lines, top lists of bounded size, time buckets that widen).
//! Lines that cannot be read are counted and named in the page; a log cut in the middle of its
//! last line (tcpcopy still writing, or killed) is read up to that line.
//!
//! The charts are SVG drawn by `plotters` and inlined in the page ([`charts`]); the page needs no
//! script, no font file and nothing from the network ([`page`]).

pub mod aggregate;
pub mod charts;
pub mod cli;
pub mod page;

pub use aggregate::{Aggregate, TopK};

use std::{io::BufRead, path::Path};

/// Reads a whole compare log from `reader` and renders the page; `source` names the log in it.
pub fn report(reader: impl BufRead, source: &str) -> anyhow::Result<(Aggregate, String)> {
    let agg = Aggregate::read(reader)?;
    let html = page::render(&agg, source, page::DEFAULT_TOP)?;
    Ok((agg, html))
}

/// [`report`] from a file into a file.
pub fn report_file(input: &Path, output: &Path, top: usize) -> anyhow::Result<Aggregate> {
    use anyhow::Context as _;
    let file = std::fs::File::open(input)
        .with_context(|| format!("opening the compare log {}", input.display()))?;
    let agg = Aggregate::read(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", input.display()))?;
    let html = page::render(&agg, &input.display().to_string(), top)?;
    std::fs::write(output, html).with_context(|| format!("writing {}", output.display()))?;
    Ok(agg)
}
