//! `--log-format text|json` of both binaries: log records (stderr or `-l`) and the report lines
//! (`attached ...`, `stats ...`, `final ...` on stdout) as today's text, or one JSON object a
//! line for log shippers.
//!
//! A log record: `{"time":"2026-12-02T10:00:00.123456Z","level":"INFO","target":"tcpcopy::link",
//! "message":"..."}`. A report line: `{"time":..,"event":"stats","message":"seen=1 ...",
//! "fields":{"seen":1,...}}`, each `key=value` of the line a field (numbers as numbers).

use std::{
    io::Write as _,
    string::{String, ToString as _},
    sync::OnceLock,
    time::SystemTime,
};

/// How logs and report lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl core::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(std::format!("{s:?}: text or json")),
        }
    }
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Sets the format for the process (the first call wins) and for `logger`'s records.
pub fn init(format: LogFormat, logger: &mut env_logger::Builder) {
    let _ = FORMAT.set(format);
    if format == LogFormat::Json {
        logger.format(|buf, record| {
            let line = serde_json::json!({
                "time": now(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
}

fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// A report line as JSON: the event, the text, and its `key=value` fields.
pub fn json_line(event: &str, body: &str) -> String {
    let mut fields = serde_json::Map::new();
    for (k, v) in body.split_whitespace().filter_map(|kv| kv.split_once('=')) {
        let value = v.parse::<u64>().map_or_else(
            |_| serde_json::Value::String(v.to_owned()),
            serde_json::Value::from,
        );
        fields.insert(k.to_owned(), value);
    }
    serde_json::json!({
        "time": now(),
        "event": event,
        "message": body,
        "fields": fields,
    })
    .to_string()
}

/// Prints a report line on stdout: `{event} {body}`, or its JSON form.
pub fn emit(event: &str, body: &str) {
    let line = match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => std::format!("{event} {body}"),
        LogFormat::Json => json_line(event, body),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_become_json_with_typed_fields() {
        let j: serde_json::Value =
            serde_json::from_str(&json_line("stats", "seen=3 mode=driver by=1,2")).unwrap();
        assert_eq!(j["event"], "stats");
        assert_eq!(j["fields"]["seen"], 3);
        assert_eq!(j["fields"]["mode"], "driver");
        assert_eq!(j["fields"]["by"], "1,2");
        assert_eq!(j["message"], "seen=3 mode=driver by=1,2");
        assert!(j["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
