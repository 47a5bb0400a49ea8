//! A raw HTTP/1.1 client that pipelines: every request on one connection, all sent in one write
//! before any answer is read (the last with `Connection: close`), then the answers read until
//! the server closes. For the `--compare` tests (curl no longer pipelines).
//!
//! ```text
//! http-pipeline ADDR:PORT URI...
//! ```
//! Prints one line per answer, in order: `STATUS chunked|length BODY_BYTES`; fails when the
//! answers are fewer than the requests or cannot be read.

use std::{
    fmt::Write as _,
    io::{Read as _, Write as _},
    net::TcpStream,
    time::Duration,
};

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((addr, uris)) = args.split_first() else {
        bail!("usage: http-pipeline ADDR:PORT URI...");
    };
    if uris.is_empty() {
        bail!("no URI");
    }
    let mut requests = String::new();
    for (i, uri) in uris.iter().enumerate() {
        let close = if i + 1 == uris.len() {
            "Connection: close\r\n"
        } else {
            ""
        };
        let _ = write!(
            requests,
            "GET {uri} HTTP/1.1\r\nHost: {addr}\r\n{close}\r\n"
        );
    }
    let mut conn = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    conn.set_read_timeout(Some(Duration::from_mins(1)))?;
    conn.write_all(requests.as_bytes())?;
    let mut answers = Vec::new();
    conn.read_to_end(&mut answers)?;
    let mut rest = answers.as_slice();
    for n in 0..uris.len() {
        let (line, after) = answer(rest).with_context(|| format!("answer {n}"))?;
        println!("{line}");
        rest = after;
    }
    if !rest.is_empty() {
        bail!("{} bytes after the last answer", rest.len());
    }
    Ok(())
}

/// Reads one answer from the front of `buf`: its line for the output and what follows it.
fn answer(buf: &[u8]) -> anyhow::Result<(String, &[u8])> {
    let end = find(buf, b"\r\n\r\n").context("no complete head")?;
    let head = std::str::from_utf8(&buf[..end]).context("head is not UTF-8")?;
    let mut body = &buf[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .context("no status line")?
        .to_owned();
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("content-length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    if chunked {
        let mut total = 0;
        loop {
            let eol = find(body, b"\r\n").context("no chunk size line")?;
            let size_text = std::str::from_utf8(&body[..eol])?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .context("chunk size")?;
            body = &body[eol + 2..];
            if size == 0 {
                // No trailers from nginx: the empty line ends the body.
                body = body
                    .strip_prefix(b"\r\n")
                    .context("no end of chunked body")?;
                break;
            }
            anyhow::ensure!(body.len() >= size + 2, "a chunk cut short");
            total += size;
            body = &body[size + 2..];
        }
        Ok((format!("{status} chunked {total}"), body))
    } else {
        let n = length.context("neither content-length nor chunked")?;
        anyhow::ensure!(body.len() >= n, "a body cut short");
        Ok((format!("{status} length {n}"), &body[n..]))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
