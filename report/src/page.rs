//! The HTML page: one file, inline CSS and SVG, no script, nothing fetched.
#![expect(
    clippy::cast_precision_loss,
    reason = "shares and means as f64 for display"
)]

use std::fmt::Write as _;

use tcpcopy_compare::log::Histogram;

use crate::{
    aggregate::{Aggregate, Ranked, StatusPair, Summary},
    charts,
};

/// Rows of the top lists by default.
pub const DEFAULT_TOP: usize = 20;

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Text for HTML (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if p > 0.0 && p < 0.1 {
        "<0.1%".to_owned()
    } else {
        format!("{p:.1}%")
    }
}

/// Microseconds since the Unix epoch as `2026-12-02 12:00:00 UTC` (proleptic Gregorian).
pub fn utc(time_us: u64) -> String {
    let secs = time_us / 1_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        (rem % 3_600) / 60,
        rem % 60
    )
}

fn quantile(h: &Histogram, permille: u64) -> String {
    match h.quantile(permille) {
        None => "–".to_owned(),
        Some(u64::MAX) => format!(
            "&gt;&nbsp;{}",
            charts::format_us(*tcpcopy_compare::log::LATENCY_BOUNDS_US.last().unwrap_or(&0))
        ),
        Some(us) => format!("≤&nbsp;{}", charts::format_us(us)),
    }
}

fn mean_us(h: &Histogram) -> Option<f64> {
    (h.count > 0).then(|| h.sum_us as f64 / h.count as f64)
}

fn format_mean(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

fn status(s: Option<u16>) -> String {
    s.map_or_else(|| "—".to_owned(), |s| s.to_string())
}

fn pair_label(p: StatusPair) -> String {
    format!("{} → {}", status(p.0), status(p.1))
}

fn count_cell(r: &Ranked<impl Ord>) -> String {
    if r.error == 0 {
        thousands(r.count)
    } else {
        format!("≤&nbsp;{}", thousands(r.count))
    }
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#222;font:16px/1.45 "DejaVu Sans",Helvetica,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
header{display:flex;justify-content:space-between;align-items:baseline;flex-wrap:wrap;gap:8px;margin-bottom:16px}
header h1{font-size:22px;margin:0;font-weight:600}
header .meta{color:#666;font-size:14px}
section{background:#fff;border:1px solid #e1e3e8;border-radius:10px;padding:20px 24px;margin:18px 0}
h2{font-size:19px;margin:0 0 4px;font-weight:600}
p.lead{margin:0 0 12px;color:#555;font-size:15px}
.verdict{border-width:0 0 0 10px;border-style:solid}
.verdict.bad{border-color:#d62728}.verdict.good{border-color:#2ca02c}.verdict.none{border-color:#999}
.headline{font-size:30px;font-weight:700;margin:0 0 16px;line-height:1.2}
.bad .headline{color:#b71c1c}.good .headline{color:#1b7a1b}.none .headline{color:#555}
.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:14px;margin-bottom:16px}
.tile{background:#f7f8fa;border-radius:8px;padding:12px 16px}
.tile .n{font-size:32px;font-weight:700;line-height:1.1}
.tile .l{color:#555;font-size:14px;text-transform:uppercase;letter-spacing:.04em}
.tile .s{color:#555;font-size:14px}
.tile.same .n{color:#2ca02c}.tile.differ .n{color:#d62728}.tile.nc .n{color:#666}
.stack{display:flex;height:22px;border-radius:6px;overflow:hidden;background:#eee;margin-bottom:14px}
.stack div{height:100%}
.k-same{background:#2ca02c}.k-differ{background:#d62728}.k-nc{background:#9e9e9e}
.latline{font-size:17px;margin:6px 0}
.notes{margin:10px 0 0;padding:0;list-style:none}
.notes li{background:#fff6e0;border-left:4px solid #f0a500;padding:6px 10px;margin:6px 0;font-size:15px}
table{border-collapse:collapse;width:100%;font-size:15px}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eceef2;vertical-align:top}
th{color:#555;font-weight:600;background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.req{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:14px;word-break:break-all}
.bar{background:#d62728;height:10px;border-radius:3px;min-width:2px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:6px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:24px}
svg{max-width:100%;height:auto;display:block}
.empty{color:#777;font-style:italic;margin:8px 0}
.legend{margin:4px 0 0;font-size:15px}
"#;

/// The whole page for `agg`; `source` names the log, `top` is the length of the top lists.
pub fn render(agg: &Aggregate, source: &str, top: usize) -> anyhow::Result<String> {
    let mut h = String::new();
    let title = format!("tcpcopy compare report: {}", esc(source));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>"
    );
    let span = match (agg.first_time_us, agg.last_time_us) {
        (Some(a), Some(b)) => format!(
            "{} – {} ({})",
            utc(a),
            utc(b),
            charts::format_offset((b - a) as f64 / 1e6)
        ),
        _ => "no timed line".to_owned(),
    };
    let _ = write!(
        h,
        "<header><h1>tcpcopy: production vs test server</h1>\
         <div class=\"meta\">{} · {span}</div></header>",
        esc(source)
    );
    verdict(&mut h, agg);
    latency(&mut h, agg)?;
    over_time(&mut h, agg)?;
    differences(&mut h, agg, top)?;
    requests(&mut h, agg, top);
    log_section(&mut h, agg);
    h.push_str("</main></body></html>\n");
    Ok(h)
}

/// The verdict's class (`good`, `bad`, `none`) and sentence; `same` is unknown without a
/// summary.
fn headline(same: Option<u64>, differ: u64) -> (&'static str, String) {
    let compared = same.map(|s| s.saturating_add(differ));
    match (same, compared) {
        (None, _) if differ == 0 => ("none", "Nothing in this log to report".to_owned()),
        (None, _) => (
            "bad",
            format!(
                "{} differing requests (no summary line: totals unknown)",
                thousands(differ)
            ),
        ),
        (Some(_), Some(0)) => ("none", "No request was compared".to_owned()),
        (Some(_), Some(c)) if differ == 0 => (
            "good",
            format!("All {} compared requests answered the same", thousands(c)),
        ),
        (Some(_), c) => {
            let c = c.unwrap_or(0);
            (
                "bad",
                format!(
                    "{} of compared requests differ ({} of {})",
                    percent(differ, c),
                    thousands(differ),
                    thousands(c)
                ),
            )
        }
    }
}

fn verdict(h: &mut String, agg: &Aggregate) {
    let s = agg.last_summary.as_ref();
    let (same, differ, nc) = s.map_or((None, agg.differ_lines, 0), |s| {
        (Some(s.same), s.differ, s.not_compared_total())
    });
    let compared = same.map(|s| s.saturating_add(differ));
    let (class, headline) = headline(same, differ);
    let _ = write!(
        h,
        "<section class=\"verdict {class}\" id=\"verdict\"><div class=\"headline\">{}</div>",
        esc(&headline)
    );
    let all = compared.unwrap_or(differ).saturating_add(nc);
    let reasons: Vec<String> = s
        .map(|s| {
            s.not_compared
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| format!("{} {}", esc(r), thousands(*n)))
                .collect()
        })
        .unwrap_or_default();
    let tile = |class: &str, label: &str, n: Option<u64>, sub: String| {
        format!(
            "<div class=\"tile {class}\"><div class=\"l\">{label}</div><div class=\"n\">{}</div><div class=\"s\">{sub}</div></div>",
            n.map_or_else(|| "?".to_owned(), thousands)
        )
    };
    h.push_str("<div class=\"tiles\">");
    h.push_str(&tile(
        "all",
        "Requests",
        Some(all),
        "compared or not".to_owned(),
    ));
    h.push_str(&tile(
        "same",
        "Same",
        same,
        compared.map_or_else(String::new, |c| {
            format!("{} of compared", percent(same.unwrap_or(0), c))
        }),
    ));
    h.push_str(&tile(
        "differ",
        "Differ",
        Some(differ),
        compared.map_or_else(String::new, |c| {
            format!("{} of compared", percent(differ, c))
        }),
    ));
    h.push_str(&tile(
        "nc",
        "Not compared",
        // Without a summary it is unknown.
        s.map(|_| nc),
        if s.is_none() {
            String::new()
        } else if reasons.is_empty() {
            percent(nc, all)
        } else {
            reasons.join(" · ")
        },
    ));
    h.push_str("</div>");
    if all > 0 {
        let _ = write!(
            h,
            "<div class=\"stack\" title=\"same / differ / not compared\">\
             <div class=\"k-same\" style=\"width:{:.3}%\"></div>\
             <div class=\"k-differ\" style=\"width:{:.3}%\"></div>\
             <div class=\"k-nc\" style=\"width:{:.3}%\"></div></div>",
            same.unwrap_or(0) as f64 * 100.0 / all as f64,
            differ as f64 * 100.0 / all as f64,
            nc as f64 * 100.0 / all as f64,
        );
    }
    latency_line(h, s);
    notes(h, agg);
    h.push_str("</section>");
}

/// The verdict's sentence on response times.
fn latency_line(h: &mut String, s: Option<&Summary>) {
    if let Some(s) = s
        && let (Some(mo), Some(mt)) = (mean_us(&s.online), mean_us(&s.test))
    {
        let ratio = mt / mo.max(1.0);
        let how = if ratio >= 1.1 {
            format!("<b>{ratio:.1}× slower</b>")
        } else if ratio <= 0.9 {
            format!("<b>{:.1}× faster</b>", 1.0 / ratio)
        } else {
            "about as fast".to_owned()
        };
        let _ = write!(
            h,
            "<p class=\"latline\">Response time: the test server is {how} than production \
             (mean {} vs {}; p50 {} vs {}; p99 {} vs {}).</p>",
            format_mean(mt),
            format_mean(mo),
            quantile(&s.test, 500),
            quantile(&s.online, 500),
            quantile(&s.test, 990),
            quantile(&s.online, 990),
        );
    }
}

/// What a reader must know to trust the totals.
fn notes(h: &mut String, agg: &Aggregate) {
    let s = agg.last_summary.as_ref();
    let mut notes = Vec::new();
    match s {
        None if agg.differ_lines > 0 => notes.push(
            "No summary line in the log (tcpcopy stopped before its first stats interval?): the totals and latencies are unknown; the differing requests below are all there is.".to_owned(),
        ),
        Some(s) if !s.is_final => notes.push(format!(
            "No final summary: tcpcopy was still running or was killed; these totals are from the last summary, at {}.",
            utc(s.time_us)
        )),
        _ => {}
    }
    if agg.final_summaries > 1 {
        notes.push(format!(
            "This log holds {} runs of tcpcopy (final summaries): the totals are the last run's; the differing requests below are all runs'.",
            agg.final_summaries
        ));
    }
    if let Some(s) = s
        && s.sessions_over_cap > 0
    {
        notes.push(format!(
            "{} sessions went over the comparison's memory cap; their later requests are not counted.",
            thousands(s.sessions_over_cap)
        ));
    }
    if agg.bad_lines > 0 {
        notes.push(format!(
            "{} lines of the log could not be read and were skipped (listed at the end of the page).",
            thousands(agg.bad_lines)
        ));
    }
    if agg.truncated_last_line {
        notes.push(
            "The log's last line was cut off (tcpcopy still writing, or stopped): it was left out."
                .to_owned(),
        );
    }
    if !notes.is_empty() {
        h.push_str("<ul class=\"notes\">");
        for n in notes {
            let _ = write!(h, "<li>{}</li>", esc(&n));
        }
        h.push_str("</ul>");
    }
}

fn latency(h: &mut String, agg: &Aggregate) -> anyhow::Result<()> {
    h.push_str(
        "<section id=\"latency\"><h2>Response times: production vs test server</h2>\
         <p class=\"lead\">Each side's requests by response time (last byte of the request to last byte of the response), \
         in % of that side's requests.</p>",
    );
    let Some(s) = agg
        .last_summary
        .as_ref()
        .filter(|s| s.online.count + s.test.count > 0)
    else {
        h.push_str("<p class=\"empty\">No latencies in this log (no summary line, or nothing measured).</p></section>");
        return Ok(());
    };
    let _ = write!(
        h,
        "<p class=\"legend\"><span class=\"sw\" style=\"background:#1f77b4\"></span>production (online), {} requests\
         <span class=\"sw\" style=\"background:#ff7f0e;margin-left:24px\"></span>test server, {} requests</p>",
        thousands(s.online.count),
        thousands(s.test.count)
    );
    h.push_str(&charts::latency(&s.online, &s.test)?);
    h.push_str(
        "<table id=\"quantiles\"><tr><th></th><th class=\"num\">requests</th><th class=\"num\">mean</th>\
         <th class=\"num\">p50</th><th class=\"num\">p90</th><th class=\"num\">p99</th></tr>",
    );
    for (name, color, hist) in [
        ("production", "#1f77b4", &s.online),
        ("test server", "#ff7f0e", &s.test),
    ] {
        let _ = write!(
            h,
            "<tr><td><span class=\"sw\" style=\"background:{color}\"></span>{name}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            thousands(hist.count),
            mean_us(hist).map_or_else(|| "–".to_owned(), format_mean),
            quantile(hist, 500),
            quantile(hist, 900),
            quantile(hist, 990),
        );
    }
    h.push_str(
        "</table><p class=\"lead\" style=\"margin-top:8px\">Quantiles are the upper bound of the histogram bucket they fall in.</p></section>",
    );
    Ok(())
}

fn over_time(h: &mut String, agg: &Aggregate) -> anyhow::Result<()> {
    h.push_str("<section id=\"over-time\"><h2>Differences over time</h2>");
    let start = agg.first_time_us.unwrap_or(0);
    let intervals = agg.interval_series();
    let differs = agg.differ_series();
    if intervals.is_empty() && differs.is_empty() {
        h.push_str("<p class=\"empty\">Nothing over time: no differing request and fewer than two summaries.</p></section>");
        return Ok(());
    }
    if !intervals.is_empty() {
        h.push_str(
            "<p class=\"lead\">Requests compared between successive summaries: \
             <span class=\"sw k-same\"></span>same <span class=\"sw k-differ\" style=\"margin-left:12px\"></span>differ</p>",
        );
        h.push_str(&charts::compared_over_time(&intervals, start)?);
    }
    if !differs.is_empty() {
        let _ = write!(
            h,
            "<p class=\"lead\">Differing requests logged, per {}:</p>",
            charts::format_offset(agg.differ_over_time.width_us() as f64 / 1e6)
        );
        h.push_str(&charts::differ_over_time(
            &differs,
            agg.differ_over_time.width_us(),
            start,
        )?);
    }
    h.push_str("</section>");
    Ok(())
}

fn approx_note(exact: bool) -> &'static str {
    if exact {
        ""
    } else {
        "<p class=\"lead\">More distinct values than the report keeps: counts marked ≤ may be over by a little; every value more frequent than those listed is listed.</p>"
    }
}

fn differences(h: &mut String, agg: &Aggregate, top: usize) -> anyhow::Result<()> {
    h.push_str("<section id=\"status-pairs\"><h2>What differs</h2>");
    if agg.differ_lines == 0 {
        h.push_str("<p class=\"empty\">No differing request in this log.</p></section>");
        return Ok(());
    }
    let pairs = agg.status_pairs.top(top);
    let labelled: Vec<(String, u64)> = pairs
        .iter()
        .take(12)
        .map(|r| (pair_label(r.key), r.count))
        .collect();
    h.push_str(
        "<p class=\"lead\">The differing requests by status pair (production → test server; — : not HTTP) \
         and by what differs first (status, then headers, body length, body bytes).</p>",
    );
    h.push_str("<div class=\"two\"><div>");
    h.push_str(&charts::status_pairs(&labelled)?);
    h.push_str("</div><div><table id=\"pairs\"><tr><th>production → test</th><th class=\"num\">requests</th><th class=\"num\">share</th></tr>");
    for r in &pairs {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&pair_label(r.key)),
            count_cell(r),
            percent(r.count, agg.differ_lines)
        );
    }
    h.push_str("</table>");
    h.push_str(approx_note(agg.status_pairs.exact()));
    h.push_str("<table id=\"what\" style=\"margin-top:18px\"><tr><th>differs first in</th><th class=\"num\">requests</th><th class=\"num\">share</th></tr>");
    for r in agg.what.top(top) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&r.key.replace('_', " ")),
            count_cell(&r),
            percent(r.count, agg.differ_lines)
        );
    }
    h.push_str("</table>");
    h.push_str(approx_note(agg.what.exact()));
    h.push_str("</div></div></section>");
    Ok(())
}

fn requests(h: &mut String, agg: &Aggregate, top: usize) {
    let _ = write!(
        h,
        "<section id=\"requests\"><h2>Most frequent differing requests</h2>\
         <p class=\"lead\">The top {top} request lines (or first bytes) among {} differing requests, {} distinct.</p>",
        thousands(agg.differ_lines),
        if agg.requests.exact() {
            thousands(agg.requests.len() as u64)
        } else {
            format!("more than {}", thousands(agg.requests.len() as u64))
        }
    );
    let rows = agg.requests.top(top);
    if rows.is_empty() {
        h.push_str("<p class=\"empty\">None.</p></section>");
        return;
    }
    let max = rows.first().map_or(1, |r| r.count.max(1));
    h.push_str("<table id=\"top-requests\"><tr><th class=\"num\">#</th><th>request</th><th class=\"num\">requests</th><th class=\"num\">share</th><th style=\"width:18%\"></th></tr>");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td class=\"num\">{}</td><td class=\"req\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td><div class=\"bar\" style=\"width:{:.1}%\"></div></td></tr>",
            i + 1,
            esc(&r.key),
            count_cell(r),
            percent(r.count, agg.differ_lines),
            r.count as f64 * 100.0 / max as f64
        );
    }
    h.push_str("</table>");
    h.push_str(approx_note(agg.requests.exact()));
    h.push_str("</section>");
}

fn log_section(h: &mut String, agg: &Aggregate) {
    let _ = write!(
        h,
        "<section id=\"log\"><h2>The log</h2><p class=\"lead\">{} lines: {} differing requests, {} summaries \
         ({} final), {} unreadable{}.</p>",
        thousands(agg.lines),
        thousands(agg.differ_lines),
        thousands(agg.summary_lines),
        thousands(agg.final_summaries),
        thousands(agg.bad_lines),
        if agg.truncated_last_line {
            ", the last line cut off"
        } else {
            ""
        }
    );
    if !agg.named_bad_lines.is_empty() {
        h.push_str("<table id=\"bad-lines\"><tr><th class=\"num\">line</th><th>why it was skipped</th></tr>");
        for b in &agg.named_bad_lines {
            let _ = write!(
                h,
                "<tr><td class=\"num\">{}</td><td>{}</td></tr>",
                b.number,
                esc(&b.reason)
            );
        }
        h.push_str("</table>");
        if agg.bad_lines > agg.named_bad_lines.len() as u64 {
            let _ = write!(
                h,
                "<p class=\"lead\">… and {} more.</p>",
                thousands(agg.bad_lines - agg.named_bad_lines.len() as u64)
            );
        }
    }
    h.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn helpers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_212_800_000_000), "2026-12-02 12:00:00 UTC");
        assert_eq!(utc(951_782_400_000_000), "2000-02-29 00:00:00 UTC");
        // Any u64 formats (a damaged line's time is no reason to fail).
        assert!(utc(u64::MAX).ends_with("UTC"));
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(1, 10_000), "<0.1%");
        assert_eq!(percent(0, 0), "–");
    }

    /// A valid log, then that log with bytes flipped and cut anywhere, and extreme values:
    /// every one reads and renders (no panic, no overflow).
    #[test]
    #[expect(
        clippy::cast_possible_truncation,
        reason = "pseudo-random positions and bytes"
    )]
    fn damaged_and_extreme_logs_always_render() {
        let differ = r#"{"kind":"differ","time_us":1796212800000000,"client":"c","server":"s","index":0,"request":"GET / HTTP/1.1","online":{"status":200,"length":1,"digest":"00","latency_us":5},"test":{"status":500,"length":1,"digest":"01","latency_us":9},"difference":{"what":"header","name":"x-a","online":"1","test":"2"}}"#;
        let summary = r#"{"kind":"summary","time_us":1796212801000000,"same":3,"differ":1,"not_compared":{"gap":1},"sessions_over_cap":0,"online":{"counts":[0,1,2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1],"count":4,"sum_us":70000500},"test":{"counts":[0,0,0,4],"count":4,"sum_us":900},"final":true}"#;
        let log = format!("{differ}\n{summary}\n{differ}\n{summary}\n");
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300u64 {
            let mut bytes = log.clone().into_bytes();
            for _ in 0..round % 7 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate(
                bytes.len() - (next() as usize % (bytes.len() / 2)) * usize::from(round % 3 == 0),
            );
            let agg = Aggregate::read(Cursor::new(bytes)).unwrap();
            render(&agg, "fuzzed.log", DEFAULT_TOP).unwrap();
        }
        let max = u64::MAX;
        let extreme = format!(
            r#"{{"kind":"summary","time_us":{max},"same":{max},"differ":{max},"not_compared":{{"gap":{max},"incomplete":{max}}},"sessions_over_cap":{max},"online":{{"counts":[{max},{max}],"count":{max},"sum_us":{max}}},"test":{{"counts":[],"count":{max},"sum_us":0}},"final":false}}
{{"kind":"summary","time_us":0,"same":0,"differ":0,"online":{{"counts":[],"count":0,"sum_us":0}},"test":{{"counts":[],"count":0,"sum_us":0}}}}
{{"kind":"differ","time_us":{max},"request":"","online":{{"status":65535}},"test":{{"status":null}},"difference":{{"what":""}}}}
{{"kind":"differ","time_us":0,"request":"","online":{{}},"test":{{}},"difference":{{"what":"bytes"}}}}
"#
        );
        let agg = Aggregate::read(Cursor::new(extreme)).unwrap();
        assert_eq!(
            (agg.summary_lines, agg.differ_lines, agg.bad_lines),
            (2, 2, 0)
        );
        let page = render(&agg, "extreme.log", DEFAULT_TOP).unwrap();
        assert!(page.contains("65535 → —"));
    }

    #[test]
    fn an_empty_log_makes_a_page_that_says_so() {
        let agg = Aggregate::read(Cursor::new("")).unwrap();
        let page = render(&agg, "empty.log", DEFAULT_TOP).unwrap();
        assert!(page.contains("Nothing in this log to report"));
        assert!(page.contains("No latencies in this log"));
        assert!(page.ends_with("</html>\n"));
    }

    #[test]
    fn request_lines_are_escaped_and_bad_lines_named() {
        let log = concat!(
            r#"{"kind":"differ","time_us":1,"request":"GET /<script>alert(1)</script> HTTP/1.1","online":{"status":200},"test":{"status":500},"difference":{"what":"status"}}"#,
            "\n{broken\n"
        );
        let agg = Aggregate::read(Cursor::new(log)).unwrap();
        let page = render(&agg, "x<y>.log", DEFAULT_TOP).unwrap();
        assert!(!page.contains("<script>"));
        assert!(page.contains("GET /&lt;script&gt;alert(1)&lt;/script&gt; HTTP/1.1"));
        assert!(page.contains("x&lt;y&gt;.log"));
        assert!(page.contains("200 → 500"));
        assert!(page.contains("<td class=\"num\">2</td>"), "line 2 is named");
        assert!(page.contains("No summary line in the log"));
        assert!(page.contains("1 differing requests (no summary line"));
    }
}
