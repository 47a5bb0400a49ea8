//! A small HTTP upstream behind the testbed's nginx (`proxy_pass`), for the `--compare` tests:
//! a slow answer (`/slow/*`, after a fixed delay) and an answer of unknown length (`/chunked/*`,
//! written in pieces and ended by closing the connection, which nginx passes on to its HTTP/1.1
//! clients as a chunked body).
//!
//! ```text
//! upstream ADDR:PORT DELAY_MS VARIANT
//! ```
//! Every answer's body is `same URI\n` (repeated, for `/chunked/`), except that a `VARIANT` other
//! than `online` answers URIs containing `/body/` with a body that differs: in its length for
//! `/slow/`, in one byte in the middle of the body (`sane` for `same`) (same length) for `/chunked/`. `/slow/` waits
//! `DELAY_MS` after the request before it answers. One request per connection (nginx's
//! default to an upstream: HTTP/1.0, `Connection: close`). Prints `ready` once it listens, then
//! serves until killed.

use std::{
    fmt::Write as _,
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream},
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail};
use tcpcopy_testbed::upstream::{DIFFERING_LINE, LINES_PER_PIECE, PIECES};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, delay, variant] = args.as_slice() else {
        bail!("usage: upstream ADDR:PORT DELAY_MS VARIANT");
    };
    let delay = Duration::from_millis(delay.parse().context("DELAY_MS")?);
    let differs = variant != "online";
    let listener = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    println!("ready {addr}");
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        thread::spawn(move || {
            if let Err(e) = serve(conn, delay, differs) {
                eprintln!("upstream: {e:#}");
            }
        });
    }
    Ok(())
}

/// Reads one request head and answers it.
fn serve(conn: TcpStream, delay: Duration, differs: bool) -> anyhow::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let uri = line
        .split(' ')
        .nth(1)
        .context("no request line")?
        .to_owned();
    // The rest of the head (nginx sends no body for GET).
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let other = differs && uri.contains("/body/");
    let mut conn = conn;
    if uri.starts_with("/slow/") {
        thread::sleep(delay);
        let body = if other {
            format!("other body {uri}\n")
        } else {
            format!("same {uri}\n")
        };
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
    } else if uri.starts_with("/chunked/") {
        conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        )?;
        for piece in 0..PIECES {
            let mut text = String::new();
            for i in 0..LINES_PER_PIECE {
                // One byte in the middle of the body differs: same length, other digest.
                let word = if other && (piece, i) == DIFFERING_LINE {
                    "sane"
                } else {
                    "same"
                };
                let _ = writeln!(text, "{word} {uri}");
            }
            conn.write_all(text.as_bytes())?;
            conn.flush()?;
        }
    } else {
        conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
    }
    conn.shutdown(std::net::Shutdown::Write)?;
    Ok(())
}
