//! The shim's own log (`shim_log`): runtime errors, reaping trouble, dropped log entries.

use std::fmt::Display;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Appends timestamped lines to the shim log; never fails the caller.
pub struct ShimLog {
    file: File,
}

impl ShimLog {
    /// Opens `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self { file })
    }

    pub fn info(&self, msg: impl Display) {
        self.line("info", msg);
    }

    pub fn warn(&self, msg: impl Display) {
        self.line("warning", msg);
    }

    pub fn error(&self, msg: impl Display) {
        self.line("error", msg);
    }

    fn line(&self, level: &str, msg: impl Display) {
        let line = format!("{} {level} {msg}\n", crate::monitor::now());
        let _ = (&self.file).write_all(line.as_bytes());
    }
}
