//! `--metrics ADDR:PORT` of both binaries: Prometheus metrics and health over HTTP.
//!
//! Each scrape asks the binary for its families ([`Families`]: counters, gauges and histograms
//! with their labels, built from the counters the workers publish) and encodes them with the
//! `prometheus-client` crate: the Prometheus text format 0.0.4 by default, OpenMetrics 1.0 when
//! the scraper asks for it (`Accept: application/openmetrics-text`). Counters get their `_total`
//! suffix and the unit its suffix (`_seconds`, `_bytes`) from the crate.
//!
//! Paths: `/metrics`; `/ready` answers 200 once the binary says it is ready (attached, intercept
//! links up) and 503 with the reason before; `/live` answers 200 while the process serves.
//! One thread serves the requests one after another (scrapes and probes are rare); anything
//! else gets 404.

use std::{
    borrow::Cow,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    string::{String, ToString as _},
    sync::Arc,
    time::Duration,
    vec::Vec,
};

use anyhow::Context as _;
pub use prometheus_client::registry::Unit;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

/// Labels of one sample: (name, value) pairs.
pub type Labels = Vec<(Cow<'static, str>, String)>;

/// The value of one sample.
#[derive(Clone, Debug)]
pub enum Value {
    Counter(u64),
    Gauge(f64),
    /// A classic histogram: the sum and count of the observations and the cumulative count at
    /// each upper bound (the `+Inf` bucket is `count`).
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

/// One metric family: its name (without the unit or `_total` suffix, which the encoder adds),
/// help, unit, and samples.
#[derive(Clone, Debug)]
pub struct Family {
    pub name: Cow<'static, str>,
    pub help: &'static str,
    pub unit: Option<Unit>,
    pub kind: MetricType,
    pub samples: Vec<(Labels, Value)>,
}

/// The families of one scrape, built by a binary.
#[derive(Clone, Debug, Default)]
pub struct Families(pub Vec<Family>);

impl Families {
    fn family(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        help: &'static str,
        unit: Option<Unit>,
        kind: MetricType,
    ) -> &mut Family {
        let name = name.into();
        if let Some(i) = self.0.iter().position(|f| f.name == name) {
            return &mut self.0[i];
        }
        self.0.push(Family {
            name,
            help,
            unit,
            kind,
            samples: Vec::new(),
        });
        self.0.last_mut().expect("just pushed")
    }

    /// A counter sample (a family is created on its first sample; later ones add samples).
    pub fn counter(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        help: &'static str,
        unit: Option<Unit>,
        labels: Labels,
        v: u64,
    ) {
        self.family(name, help, unit, MetricType::Counter)
            .samples
            .push((labels, Value::Counter(v)));
    }

    /// A gauge sample.
    pub fn gauge(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        help: &'static str,
        unit: Option<Unit>,
        labels: Labels,
        v: f64,
    ) {
        self.family(name, help, unit, MetricType::Gauge)
            .samples
            .push((labels, Value::Gauge(v)));
    }

    /// A histogram sample.
    pub fn histogram(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        help: &'static str,
        unit: Option<Unit>,
        labels: Labels,
        v: Value,
    ) {
        self.family(name, help, unit, MetricType::Histogram)
            .samples
            .push((labels, v));
    }

    /// The XDP program's counters, `{prefix}_xdp_{name}_frames_total` (or `_bytes_total`).
    pub fn xdp(&mut self, prefix: &str, counters: &[(&'static str, &'static str, u64)]) {
        for &(name, help, v) in counters {
            let (base, unit) = match name.strip_suffix("_bytes") {
                Some(base) => (std::format!("{prefix}_xdp_{base}"), Some(Unit::Bytes)),
                None => (std::format!("{prefix}_xdp_{name}_frames"), None),
            };
            self.counter(base, help, unit, Vec::new(), v);
        }
    }
}

/// A `worker` label.
pub fn worker(i: usize) -> Labels {
    std::vec![(Cow::Borrowed("worker"), i.to_string())]
}

/// `labels` with one more.
pub fn with(mut labels: Labels, name: &'static str, value: impl Into<String>) -> Labels {
    labels.push((Cow::Borrowed(name), value.into()));
    labels
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let mut family = encoder.encode_descriptor(&f.name, f.help, f.unit.as_ref(), f.kind)?;
            for (labels, v) in &f.samples {
                let mut enc = family.encode_family(labels)?;
                match v {
                    Value::Counter(n) => ConstCounter::new(*n).encode(enc)?,
                    Value::Gauge(x) => ConstGauge::new(*x).encode(enc)?,
                    Value::Histogram {
                        sum,
                        count,
                        buckets,
                    } => {
                        let mut all = buckets.clone();
                        all.push((f64::INFINITY, *count));
                        // The encoder takes counts per bucket and adds them up itself.
                        let mut prev = 0;
                        for b in &mut all {
                            let c = b.1;
                            b.1 -= prev.min(c);
                            prev = c;
                        }
                        enc.encode_histogram::<Labels>(*sum, *count, &all, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Which text format a scrape gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Encodes `families` in `format`.
pub fn encode(families: Families, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(std::boxed::Box::new(families));
    let mut out = String::new();
    let done = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    if done.is_err() {
        log::warn!("encoding the metrics failed");
    }
    out
}

/// What the HTTP side asks the binary: its families now, and whether it is ready (else why not).
pub struct Source {
    pub families: std::boxed::Box<dyn Fn() -> Families + Send + Sync>,
    pub ready: std::boxed::Box<dyn Fn() -> Result<(), String> + Send + Sync>,
}

/// The metrics listener, bound at start (so a taken port fails the start at once) and served
/// from [`Self::serve`] on (connections made before wait in the backlog).
pub struct Listener(TcpListener);

impl Listener {
    pub fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        TcpListener::bind(addr)
            .map(Self)
            .with_context(|| std::format!("--metrics {addr}"))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.0.local_addr().ok()
    }

    /// Serves `/metrics`, `/ready` and `/live` from a thread of its own until the process ends.
    pub fn serve(self, source: Source) -> anyhow::Result<()> {
        let source = Arc::new(source);
        if let Some(a) = self.local_addr() {
            log::info!("metrics on http://{a}/metrics (readiness /ready, liveness /live)");
        }
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for conn in self.0.incoming() {
                    match conn {
                        Ok(c) => {
                            if let Err(e) = answer(c, &source) {
                                log::debug!("metrics request: {e}");
                            }
                        }
                        Err(e) => log::debug!("metrics accept: {e}"),
                    }
                }
            })
            .context("starting the metrics thread")?;
        Ok(())
    }
}

/// The request's path and whether it asks for OpenMetrics, from its head; `None` if the head is
/// not a GET (or HEAD) request line.
fn parse_request(head: &str) -> Option<(&str, Format, bool)> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?;
    let target = first.next()?;
    if !matches!(method, "GET" | "HEAD") || !first.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    let open_metrics = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text")
        })
    });
    let format = if open_metrics {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    };
    Some((path, format, method == "HEAD"))
}

fn answer(mut c: TcpStream, source: &Source) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = c.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let (status, content_type, body, head_only) = match parse_request(&head) {
        None => (
            "400 Bad Request",
            "text/plain",
            "bad request\n".into(),
            false,
        ),
        Some(("/metrics", format, h)) => (
            "200 OK",
            format.content_type(),
            encode((source.families)(), format),
            h,
        ),
        Some(("/ready", _, h)) => match (source.ready)() {
            Ok(()) => ("200 OK", "text/plain", "ready\n".into(), h),
            Err(why) => (
                "503 Service Unavailable",
                "text/plain",
                std::format!("not ready: {why}\n"),
                h,
            ),
        },
        Some(("/live", _, h)) => ("200 OK", "text/plain", "live\n".into(), h),
        Some((_, _, h)) => (
            "404 Not Found",
            "text/plain",
            "not found: /metrics, /ready, /live\n".into(),
            h,
        ),
    };
    let mut out = std::format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(&body);
    }
    c.write_all(out.as_bytes())?;
    c.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Families {
        let mut f = Families::default();
        f.counter(
            "x_sessions",
            "Sessions ended.",
            None,
            with(worker(0), "outcome", "completed"),
            7,
        );
        f.gauge("x_lag", "Lag.", Some(Unit::Seconds), worker(0), 0.5);
        f.histogram(
            "x_response_time",
            "Response times.",
            Some(Unit::Seconds),
            worker(0),
            Value::Histogram {
                sum: 0.3,
                count: 3,
                buckets: std::vec![(0.001, 1), (0.01, 2)],
            },
        );
        f.xdp(
            "x",
            &[("seen", "Frames seen.", 9), ("matched_bytes", "Bytes.", 90)],
        );
        f
    }

    #[test]
    fn families_encode_as_prometheus_text_with_suffixes_and_cumulative_buckets() {
        let text = encode(sample(), Format::Prometheus);
        for want in [
            "# TYPE x_sessions_total counter",
            "x_sessions_total{worker=\"0\",outcome=\"completed\"} 7",
            "# TYPE x_lag_seconds gauge",
            "x_lag_seconds{worker=\"0\"} 0.5",
            "# TYPE x_response_time_seconds histogram",
            "x_response_time_seconds_bucket{worker=\"0\",le=\"0.001\"} 1",
            "x_response_time_seconds_bucket{worker=\"0\",le=\"0.01\"} 2",
            "x_response_time_seconds_bucket{worker=\"0\",le=\"+Inf\"} 3",
            "x_response_time_seconds_count{worker=\"0\"} 3",
            "x_xdp_seen_frames_total 9",
            "x_xdp_matched_bytes_total 90",
        ] {
            assert!(
                text.lines().any(|l| l == want || l.starts_with(want)),
                "{want:?} not in\n{text}"
            );
        }
        let om = encode(sample(), Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"), "{om}");
    }

    #[test]
    fn requests_are_read_from_their_head() {
        assert_eq!(
            parse_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("/metrics", Format::Prometheus, false))
        );
        assert_eq!(
            parse_request(
                "GET /metrics?x=1 HTTP/1.1\r\naccept: application/openmetrics-text;version=1.0.0\r\n\r\n"
            ),
            Some(("/metrics", Format::OpenMetrics, false))
        );
        assert_eq!(
            parse_request("HEAD /ready HTTP/1.0\r\n\r\n").map(|r| r.2),
            Some(true)
        );
        assert_eq!(parse_request("POST /metrics HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_request("garbage"), None);
    }
}
