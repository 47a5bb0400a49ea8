//! The page's charts, drawn by `plotters` into SVG text.
#![expect(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "chart coordinates: counts, indexes and times as f64 for drawing, far below 2^52"
)]

use plotters::{
    chart::MeshStyle,
    coord::Shift,
    coord::ranged1d::AsRangedCoord,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};
use tcpcopy_compare::log::{Histogram, LATENCY_BOUNDS_US};

/// Production's series.
pub const ONLINE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
/// The test server's series.
pub const TEST: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
/// Same answers.
pub const SAME: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
/// Differing answers.
pub const DIFFER: RGBColor = RGBColor(0xd6, 0x27, 0x28);

const FONT: &str = "sans-serif";
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const WIDTH: u32 = 1100;
const HEIGHT: u32 = 360;

/// A latency bound for people: `50µs`, `2ms`, `1.5s`.
pub fn format_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        trim(us as f64 / 1e3, "ms")
    } else {
        trim(us as f64 / 1e6, "s")
    }
}

fn trim(v: f64, unit: &str) -> String {
    let s = format!("{v:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s}{unit}")
}

/// A duration on a time axis: `0s`, `45s`, `3m`, `1h30m`.
pub fn format_offset(seconds: f64) -> String {
    let s = seconds.round().max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 if s.is_multiple_of(60) => format!("{}m", s / 60),
        60..3_600 => format!("{}m{}s", s / 60, s % 60),
        _ if s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        _ => format!("{}h{}m", s / 3_600, (s % 3_600) / 60),
    }
}

/// The label of histogram bucket `i`: its upper bound, or above the last.
fn bucket_label(i: usize) -> String {
    match LATENCY_BOUNDS_US.get(i) {
        Some(&b) => format!("≤{}", format_us(b)),
        None => format!(
            ">{}",
            format_us(LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.len() - 1])
        ),
    }
}

/// An x axis of `n` categories centred on 0, 1, .. n-1: plotters puts its labels on the
/// integers when asked for at least `n` of them.
fn categories(n: usize) -> std::ops::Range<f64> {
    -0.5..n as f64 - 0.5
}

/// The category an axis label at `x` names (labels between categories name none).
fn category<T>(x: f64, items: &[T]) -> Option<&T> {
    let k = x.round();
    if (x - k).abs() > 1e-6 || k < 0.0 {
        return None;
    }
    items.get(k as usize)
}

fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    svg_sized((WIDTH, HEIGHT), draw)
}

fn svg_sized(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(out)
}

fn share(count: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 * 100.0 / total as f64
    }
}

/// A chart drawn into an SVG string, over axes `X` by `Y`.
type Chart<'a, 'b, X, Y> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// A chart on `root` in the page's layout: margins and label areas.
fn chart<'a, 'b, X: AsRangedCoord, Y: AsRangedCoord>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    x: X,
    y: Y,
) -> anyhow::Result<Chart<'a, 'b, X, Y>> {
    Ok(ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)?)
}

/// The page's mesh: horizontal grid lines only, in light grey, labels in the page's ink.
fn house_mesh<'m, 'a, 'b, X: Ranged, Y: Ranged, DB: DrawingBackend>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB> {
    mesh.disable_x_mesh()
        .label_style((FONT, 14).into_font().color(&INK))
        .axis_desc_style((FONT, 15).into_font().color(&INK))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
}

/// Both latency distributions as grouped bars, in % of each side's requests, over the buckets
/// from the first to the last that holds anything.
pub fn latency(online: &Histogram, test: &Histogram) -> anyhow::Result<String> {
    let n = LATENCY_BOUNDS_US.len() + 1;
    let any = |i: usize| {
        online.counts.get(i).copied().unwrap_or(0) > 0
            || test.counts.get(i).copied().unwrap_or(0) > 0
    };
    let first = (0..n).find(|&i| any(i)).unwrap_or(0);
    let last = (0..n).rev().find(|&i| any(i)).unwrap_or(n - 1);
    // At least five buckets, so that one lone bar is not as wide as the chart.
    let last = last.max((first + 4).min(n - 1));
    let first = first.min(last.saturating_sub(4));
    let buckets: Vec<usize> = (first..=last).collect();
    let pct = |h: &Histogram, i: usize| share(h.counts.get(i).copied().unwrap_or(0), h.count);
    let top = buckets
        .iter()
        .map(|&i| pct(online, i).max(pct(test, i)))
        .fold(0.0, f64::max);
    let y_max = (top * 1.15).clamp(5.0, 100.0);
    svg(|root| {
        let mut chart = chart(root, categories(buckets.len()), 0.0..y_max)?;
        house_mesh(&mut chart.configure_mesh())
            .x_labels(buckets.len() + 1)
            .x_label_formatter(&|x| {
                category(*x, &buckets)
                    .map(|&i| bucket_label(i))
                    .unwrap_or_default()
            })
            .y_label_formatter(&|y| format!("{y:.0}%"))
            .x_desc("response time (bucket's upper bound)")
            .y_desc("share of the side's requests")
            .draw()?;
        // The legend is the page's, above the chart.
        for (h, color, offset) in [(online, ONLINE, -0.42), (test, TEST, 0.0)] {
            chart.draw_series(buckets.iter().enumerate().map(|(k, &i)| {
                let x = k as f64 + offset;
                Rectangle::new([(x, 0.0), (x + 0.42, pct(h, i))], color.filled())
            }))?;
        }
        Ok(())
    })
}

/// Differing requests per time bucket (`(bucket start, count)`), bars over seconds since `start_us`.
pub fn differ_over_time(
    series: &[(u64, u64)],
    width_us: u64,
    start_us: u64,
) -> anyhow::Result<String> {
    let width = width_us as f64 / 1e6;
    let points: Vec<(f64, u64)> = series
        .iter()
        .map(|&(t, n)| (t.saturating_sub(start_us) as f64 / 1e6, n))
        .collect();
    let x_min = points.first().map_or(0.0, |p| p.0.min(0.0));
    let x_max = points
        .last()
        .map_or(1.0, |p| p.0 + width)
        .max(x_min + width * 5.0);
    let y_max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64 * 1.15;
    svg(|root| {
        let mut chart = chart(root, x_min..x_max, 0.0..y_max)?;
        house_mesh(&mut chart.configure_mesh())
            .x_labels(10)
            .y_labels(6)
            .x_label_formatter(&|x| format_offset(*x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("time since the log's first line")
            .y_desc(format!("differing requests per {}", format_offset(width)))
            .draw()?;
        chart.draw_series(points.iter().map(|&(x, n)| {
            Rectangle::new(
                [(x + width * 0.05, 0.0), (x + width * 0.95, n as f64)],
                DIFFER.filled(),
            )
        }))?;
        Ok(())
    })
}

/// Requests compared per interval between summaries, same and differing stacked
/// (`(interval start, end, same, differ)`), over seconds since `start_us`.
pub fn compared_over_time(
    series: &[(u64, u64, u64, u64)],
    start_us: u64,
) -> anyhow::Result<String> {
    let at = |t: u64| t.saturating_sub(start_us) as f64 / 1e6;
    let bars: Vec<(f64, f64, u64, u64)> = series
        .iter()
        .map(|&(begin, end, same, differ)| {
            let (begin, end) = (at(begin), at(end));
            (begin.min(end - 0.5), end, same, differ)
        })
        .collect();
    let x_min = bars.first().map_or(0.0, |b| b.0.min(0.0));
    let x_max = bars.last().map_or(1.0, |b| b.1).max(x_min + 1.0);
    let y_max = bars
        .iter()
        .map(|b| b.2.saturating_add(b.3))
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.15;
    svg(|root| {
        let mut chart = chart(root, x_min..x_max, 0.0..y_max)?;
        house_mesh(&mut chart.configure_mesh())
            .x_labels(10)
            .y_labels(6)
            .x_label_formatter(&|x| format_offset(*x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("time since the log's first line")
            .y_desc("requests compared per interval")
            .draw()?;
        let gap = |b: &(f64, f64, u64, u64)| (b.1 - b.0) * 0.04;
        chart.draw_series(bars.iter().map(|b| {
            Rectangle::new(
                [(b.0 + gap(b), 0.0), (b.1 - gap(b), b.2 as f64)],
                SAME.filled(),
            )
        }))?;
        chart.draw_series(bars.iter().map(|b| {
            Rectangle::new(
                [
                    (b.0 + gap(b), b.2 as f64),
                    (b.1 - gap(b), b.2.saturating_add(b.3) as f64),
                ],
                DIFFER.filled(),
            )
        }))?;
        Ok(())
    })
}

/// Status pairs (`online → test` labels and counts) as bars, most frequent first.
pub fn status_pairs(pairs: &[(String, u64)]) -> anyhow::Result<String> {
    // At least four slots, so that one or two bars are not a wall of red.
    let n = pairs.len().max(4);
    let y_max = pairs.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64 * 1.2;
    svg_sized((540, 340), |root| {
        let mut chart = chart(root, categories(n), 0.0..y_max)?;
        house_mesh(&mut chart.configure_mesh())
            .x_labels(n + 1)
            .y_labels(6)
            .x_label_formatter(&|x| category(*x, pairs).map(|p| p.0.clone()).unwrap_or_default())
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("status: production → test server")
            .y_desc("differing requests")
            .draw()?;
        chart.draw_series(pairs.iter().enumerate().map(|(k, p)| {
            let x = k as f64;
            Rectangle::new([(x - 0.3, 0.0), (x + 0.3, p.1 as f64)], DIFFER.filled())
        }))?;
        chart.draw_series(pairs.iter().enumerate().map(|(k, p)| {
            Text::new(
                crate::page::thousands(p.1),
                (k as f64, p.1 as f64),
                (FONT, 15)
                    .into_font()
                    .color(&INK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_well() {
        assert_eq!(format_us(50), "50µs");
        assert_eq!(format_us(2_000), "2ms");
        assert_eq!(format_us(1_500), "1.5ms");
        assert_eq!(format_us(60_000_000), "60s");
        assert_eq!(bucket_label(0), "≤50µs");
        assert_eq!(bucket_label(LATENCY_BOUNDS_US.len()), ">60s");
        assert_eq!(format_offset(45.0), "45s");
        assert_eq!(format_offset(180.0), "3m");
        assert_eq!(format_offset(5_400.0), "1h30m");
    }

    #[test]
    fn charts_are_svg_in_the_series_colours() {
        let mut online = Histogram::default();
        let mut test = Histogram::default();
        for _ in 0..10 {
            online.record(400);
            test.record(4_000);
        }
        let s = latency(&online, &test).unwrap();
        assert!(s.starts_with("<svg") || s.contains("<svg"), "{}", &s[..80]);
        assert!(
            s.contains("#1F77B4") || s.contains("#1f77b4"),
            "online's colour"
        );
        assert!(
            s.contains("#FF7F0E") || s.contains("#ff7f0e"),
            "test's colour"
        );
        assert!(s.contains("≤500µs") && s.contains("≤5ms"));
        let empty = latency(&Histogram::default(), &Histogram::default()).unwrap();
        assert!(empty.contains("<svg"));
        assert!(
            differ_over_time(&[], 1_000_000, 0)
                .unwrap()
                .contains("<svg")
        );
        assert!(compared_over_time(&[], 0).unwrap().contains("<svg"));
        assert!(status_pairs(&[]).unwrap().contains("<svg"));
    }
}
