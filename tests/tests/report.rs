//! `tcpcopy report`: a compare log as tcpcopy writes it (the `compare::log` line types over real
//! `Record`s) turned into the HTML page by the real binary, and the page opened in headless
//! Chromium (a real browser, inside a testbed namespace: nothing can reach the network) whose
//! screenshot must show the charts.

use std::{
    fmt::Write as _,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use tcpcopy_compare::{
    Difference, Digest, Offset, Record, ResponseFacts, Stats,
    log::{DifferLine, Histogram, SummaryLine},
};
use tcpcopy_testbed::{Host, Testbed, binary};

/// 2026-12-02 12:00:00 UTC.
const T0_US: u64 = 1_796_212_800_000_000;
const REQUESTS: u64 = 1_000;
/// A request every 10 ms: the log spans 10 s.
const STEP_US: u64 = 10_000;

/// Production's latency of request `i`: 60% near 400 µs, 35% near 800 µs, 5% near 1.5 ms.
fn online_us(i: u64) -> u64 {
    let jitter = (i * 37) % 50;
    match i % 20 {
        0..12 => 380 + jitter,
        12..19 => 760 + jitter,
        _ => 1_450 + jitter,
    }
}

/// The test server's: 60% near 1.8 ms, 35% near 4 ms, 5% near 12 ms (about 5 times slower).
fn test_us(i: u64) -> u64 {
    let jitter = (i * 53) % 150;
    match i % 20 {
        0..12 => 1_800 + jitter,
        12..19 => 3_900 + jitter,
        _ => 12_000 + jitter,
    }
}

fn facts(status: u16, length: u64, digest: u128, latency_us: u64) -> ResponseFacts {
    ResponseFacts {
        status: Some(status),
        length,
        digest: Digest(digest),
        latency_us: Some(latency_us),
    }
}

/// 1000 requests: every tenth (from 3) to `/changed/*` answered 500 by the test server, every
/// tenth (from 7) to `/body/*` with another body; the rest the same. A summary every 100
/// requests, the last final; 3 requests not compared (2 gap, 1 incomplete).
fn write_log(path: &Path) {
    let mut log = String::new();
    let (mut online, mut test) = (Histogram::default(), Histogram::default());
    let mut stats = Stats::default();
    for i in 0..REQUESTS {
        let t = T0_US + i * STEP_US;
        let (o, s) = (online_us(i), test_us(i));
        online.record(o);
        test.record(s);
        let record = match i % 10 {
            3 => Some(Record {
                index: (i / 10) % 4,
                request: format!("GET /changed/{} HTTP/1.1", (i / 10) % 4),
                online: facts(200, 612, 0xaa, o),
                test: facts(500, 177, 0xbb, s),
                difference: Difference::Status {
                    online: 200,
                    test: 500,
                },
            }),
            7 => Some(Record {
                index: 0,
                request: format!("GET /body/{} HTTP/1.1", (i / 10) % 3),
                online: facts(200, 612, 0xaa, o),
                test: facts(200, 640, 0xcc, s),
                difference: Difference::BodyLength {
                    online: 612,
                    test: 640,
                    at: Offset {
                        offset: 12,
                        exact: true,
                    },
                },
            }),
            _ => None,
        };
        if let Some(record) = record {
            stats.differ += 1;
            let line = DifferLine::new(
                t,
                format!("192.0.2.{}:{}", 1 + i % 200, 40_000 + i),
                "10.99.0.2:80".to_owned(),
                &record,
            );
            log += &serde_json::to_string(&line).unwrap();
            log.push('\n');
        } else {
            stats.same += 1;
        }
        if (i + 1) % 100 == 0 {
            let last = i + 1 == REQUESTS;
            if last {
                stats.not_compared_by = [0, 2, 1, 0, 0];
            }
            let line = SummaryLine::new(t, &stats, online.clone(), test.clone(), last);
            log += &serde_json::to_string(&line).unwrap();
            log.push('\n');
        }
    }
    std::fs::write(path, log).unwrap();
}

/// Pixels of exactly `rgb` and their mean x.
fn pixels_of(rgba: &[u8], width: usize, rgb: [u8; 3]) -> (u32, f64) {
    let (mut n, mut sum_x) = (0u32, 0f64);
    for (k, px) in rgba.chunks_exact(4).enumerate() {
        if px[..3] == rgb {
            n += 1;
            sum_x += f64::from(u32::try_from(k % width).unwrap());
        }
    }
    (n, if n == 0 { 0.0 } else { sum_x / f64::from(n) })
}

/// Opens `page` in headless Chromium inside the testbed's client namespace (no network there)
/// and returns the screenshot's RGBA pixels.
fn screenshot(bed: &Testbed, page: &Path, width: usize, height: usize) -> Vec<u8> {
    let dir = bed.dir();
    let shot = dir.join("report.png");
    let stderr = std::fs::File::create(dir.join("chromium.stderr")).unwrap();
    let mut chromium = bed.cmd(Host::Client, "chromium");
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut child = chromium.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_mins(2);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let diag = || std::fs::read_to_string(dir.join("chromium.stderr")).unwrap_or_default();
    assert!(
        status.success() && shot.exists(),
        "chromium: {status}\n{}",
        diag()
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width as usize, info.height as usize), (width, height));
    // Kept for a person to look at (the testbed's directory goes with it).
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::copy(&shot, keep.join("report.png")).unwrap();
    std::fs::copy(page, keep.join("report.html")).unwrap();
    match info.color_type {
        png::ColorType::Rgba => buf[..info.buffer_size()].to_vec(),
        png::ColorType::Rgb => buf[..info.buffer_size()]
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    }
}

#[test]
fn the_report_page_shows_the_verdict_and_its_charts_in_a_browser() {
    let bed = Testbed::up().unwrap();
    let dir = bed.dir();
    let log = dir.join("compare.log");
    let page = dir.join("report.html");
    write_log(&log);

    let out = std::process::Command::new(binary("tcpcopy").unwrap())
        .arg("report")
        .arg(&log)
        .arg("-o")
        .arg(&page)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tcpcopy report failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("same=800 differ=200 not_compared=3") && stdout.contains("0 unreadable"),
        "{stdout}"
    );

    // The numbers, in the page's text.
    let html = std::fs::read_to_string(&page).unwrap();
    for expected in [
        "20.0% of compared requests differ (200 of 1,000)",
        ">800<",
        "gap 2 · incomplete 1",
        "<td>200 → 500</td><td class=\"num\">100</td>",
        "<td>200 → 200</td><td class=\"num\">100</td>",
        "<td>status</td><td class=\"num\">100</td>",
        "<td>body length</td><td class=\"num\">100</td>",
        // /changed/0..3 25 times each; /body/0..2 34, 33, 33 times.
        "<td class=\"req\">GET /body/0 HTTP/1.1</td><td class=\"num\">34</td>",
        "<td class=\"req\">GET /changed/3 HTTP/1.1</td><td class=\"num\">25</td>",
        // Quantiles: production's p50/p90/p99 in the 500 µs, 1 ms and 2 ms buckets, the test
        // server's in the 2, 5 and 20 ms ones.
        "<td class=\"num\">≤&nbsp;500µs</td><td class=\"num\">≤&nbsp;1ms</td><td class=\"num\">≤&nbsp;2ms</td>",
        "<td class=\"num\">≤&nbsp;2ms</td><td class=\"num\">≤&nbsp;5ms</td><td class=\"num\">≤&nbsp;20ms</td>",
        "× slower</b> than production",
        "2026-12-02 12:00:00 UTC",
    ] {
        assert!(
            html.contains(expected),
            "the page lacks {expected:?}; page in {}",
            page.display()
        );
    }
    assert!(
        html.matches("<svg").count() >= 4,
        "four charts (latency, compared over time, differing over time, status pairs)"
    );
    // Self-contained: nothing to fetch, no script.
    for external in ["<script", "src=", "<link", "url(", "@import"] {
        assert!(!html.contains(external), "the page holds {external:?}");
    }

    // In a real browser.
    let (width, height) = (1280usize, 3200usize);
    let rgba = screenshot(&bed, &page, width, height);

    // The series' colours in enough pixels to be charts, not just the legend's swatches.
    let online = pixels_of(&rgba, width, [0x1f, 0x77, 0xb4]);
    let test = pixels_of(&rgba, width, [0xff, 0x7f, 0x0e]);
    let same = pixels_of(&rgba, width, [0x2c, 0xa0, 0x2c]);
    let differ = pixels_of(&rgba, width, [0xd6, 0x27, 0x28]);
    let mut summary = String::new();
    for (name, (n, x)) in [
        ("online", online),
        ("test", test),
        ("same", same),
        ("differ", differ),
    ] {
        let _ = write!(summary, "{name}: {n} px at mean x {x:.0}; ");
        assert!(
            n > 10_000,
            "too few {name} pixels in the screenshot ({summary}); see target/tmp/report.png"
        );
    }
    // The test server is slower: its bars stand right of production's.
    assert!(
        test.1 > online.1 + 100.0,
        "the test bars are not right of the online ones: {summary}"
    );
    // Not blank: many colours, and ink (dark text) on the page.
    let mut colours: Vec<[u8; 3]> = rgba.chunks_exact(4).map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    let ink = rgba
        .chunks_exact(4)
        .filter(|p| p[0] < 80 && p[1] < 80 && p[2] < 80)
        .count();
    assert!(
        colours.len() > 100 && ink > 20_000,
        "the screenshot looks blank: {} colours, {ink} dark pixels",
        colours.len()
    );
    eprintln!("screenshot in target/tmp/report.png: {summary}");
}
