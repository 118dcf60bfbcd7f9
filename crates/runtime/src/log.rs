//! The `--log` file: libcontainer's tracing events and our final error, one line each, in
//! runc's `text` (logrus) or `json` shape so a shim can read the last error back.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::LogFormat;

/// Where the final error goes besides stderr.
pub struct Logger {
    file: Option<Arc<Mutex<File>>>,
    format: LogFormat,
}

/// Opens `--log` (append) and routes tracing events there: warnings and errors (only
/// errors from libcgroups), or everything down to debug with `--debug`. Without `--log`, events go to stderr only
/// with `--debug`.
pub fn init(path: Option<&Path>, format: LogFormat, debug: bool) -> anyhow::Result<Logger> {
    // libcgroups warns about every v1 controller the host lacks (hugetlb, net_cls, …)
    // on each call: noise next to the errors a shim looks for.
    let filter = || {
        if debug {
            EnvFilter::new("debug")
        } else {
            EnvFilter::new("warn,libcgroups=error")
        }
    };
    let Some(path) = path else {
        if debug {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_writer(std::io::stderr)
                .event_format(RuncFormat { format })
                .try_init();
        }
        return Ok(Logger { file: None, format });
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("Cannot open the log file {path:?}"))?;
    let file = Arc::new(Mutex::new(file));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(SharedFile(file.clone()))
        .event_format(RuncFormat { format })
        .try_init();
    Ok(Logger {
        file: Some(file),
        format,
    })
}

impl Logger {
    /// Appends an error line to the log file, if there is one.
    pub fn error(&self, msg: &str) {
        if let Some(file) = &self.file {
            let line = format_line(self.format, "error", msg);
            if let Ok(mut f) = file.lock() {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
}

#[derive(Clone)]
struct SharedFile(Arc<Mutex<File>>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedFile {
    type Writer = SharedFileGuard<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        SharedFileGuard(&self.0)
    }
}

struct SharedFileGuard<'a>(&'a Mutex<File>);

impl std::io::Write for SharedFileGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // One event is one write: O_APPEND keeps lines whole across the forked processes.
        let mut f = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("log lock poisoned"))?;
        f.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Formats events as runc does: `{"level":..,"msg":..,"time":..}` or logrus text.
struct RuncFormat {
    format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut msg = fields.message;
        if !fields.rest.is_empty() {
            if !msg.is_empty() {
                msg.push(' ');
            }
            msg.push_str(&fields.rest);
        }
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        writer.write_str(&format_line(self.format, level, &msg))
    }
}

fn format_line(format: LogFormat, level: &str, msg: &str) -> String {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match format {
        LogFormat::Json => {
            let mut line =
                serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string();
            line.push('\n');
            line
        }
        LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.rest.is_empty() {
                self.rest.push(' ');
            }
            let _ = write!(self.rest, "{}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_runcs_fields() {
        let line = format_line(
            LogFormat::Json,
            "error",
            r#"exec: "x": executable file not found in $PATH"#,
        );
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], r#"exec: "x": executable file not found in $PATH"#);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn errors_are_appended_to_the_log_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        let logger = Logger {
            file: Some(Arc::new(Mutex::new(File::create(&path).unwrap()))),
            format: LogFormat::Json,
        };
        logger.error("one");
        logger.error("two");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().last().unwrap().contains(r#""msg":"two""#));
    }
}
