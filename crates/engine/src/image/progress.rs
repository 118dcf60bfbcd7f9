//! Docker's JSON progress messages for pulls and pushes, sent to whoever streams them (the
//! HTTP response in berthd, the terminal in daemonless mode).

use std::time::{Duration, Instant};

use api_types::{ProgressDetail, ProgressMessage};
use tokio::sync::mpsc::UnboundedSender;

/// Where progress messages go. Sending never fails: a client that went away just stops
/// getting them.
#[derive(Clone)]
pub struct Progress {
    tx: Option<UnboundedSender<ProgressMessage>>,
}

impl Progress {
    /// Messages sent to `tx`.
    pub fn new(tx: UnboundedSender<ProgressMessage>) -> Self {
        Self { tx: Some(tx) }
    }

    /// Messages dropped.
    pub fn discard() -> Self {
        Self { tx: None }
    }

    /// Sends a message as it is.
    pub fn send(&self, msg: ProgressMessage) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }

    /// A line without an id: `Digest: sha256:…`.
    pub fn line(&self, status: impl Into<String>) {
        self.send(ProgressMessage {
            status: Some(status.into()),
            ..Default::default()
        });
    }

    /// A line about one layer, with an empty `progressDetail` as dockerd sends it.
    pub fn layer(&self, id: &str, status: &str) {
        self.send(ProgressMessage {
            status: Some(status.to_string()),
            progress_detail: Some(ProgressDetail::default()),
            id: Some(id.to_string()),
            ..Default::default()
        });
    }

    /// A line with an id and no detail: `Pulling from library/busybox` (id `latest`).
    pub fn with_id(&self, id: &str, status: &str) {
        self.send(ProgressMessage {
            status: Some(status.to_string()),
            id: Some(id.to_string()),
            ..Default::default()
        });
    }

    /// `Downloading`, `Extracting`, `Pushing`: bytes done of the layer's total.
    pub fn bar(&self, id: &str, status: &str, current: u64, total: u64) {
        self.send(ProgressMessage {
            status: Some(status.to_string()),
            progress_detail: Some(ProgressDetail {
                current: Some(current as i64),
                total: Some(total as i64),
            }),
            progress: Some(bar_text(current, total)),
            id: Some(id.to_string()),
            ..Default::default()
        });
    }
}

/// Counts bytes for a bar and says when to draw it: every 100 ms or at the end, as dockerd's
/// progress reader does, so a fast transfer does not drown the client in messages.
pub struct Throttle {
    last: Option<Instant>,
    pub done: u64,
    pub total: u64,
}

impl Throttle {
    pub fn new(total: u64) -> Self {
        Self {
            last: None,
            done: 0,
            total,
        }
    }

    /// Adds `n` bytes; whether a message is due.
    pub fn advance(&mut self, n: u64) -> bool {
        self.done += n;
        let now = Instant::now();
        let due = self.done >= self.total
            || self
                .last
                .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100));
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// dockerd's bar: `[=====>      ]  1.234MB/5.678MB` (50 columns).
pub fn bar_text(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let filled = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    format!(
        "[{}>{}] {:>8}/{}",
        "=".repeat(filled),
        " ".repeat(50 - filled),
        human_size(current),
        human_size(total)
    )
}

/// go-units' `HumanSize`: decimal units, four significant digits (`1.235MB`, `126B`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", four_significant(size), UNITS[i])
}

/// Go's `%.4g`.
fn four_significant(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32 + 1;
    let decimals = (4 - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_read_as_dockers() {
        assert_eq!(human_size(126), "126B");
        assert_eq!(human_size(1234), "1.234kB");
        assert_eq!(human_size(27_780_000), "27.78MB");
        assert_eq!(human_size(100_000_000), "100MB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(
            bar_text(126, 126),
            "[==================================================>]     126B/126B"
        );
        assert_eq!(
            bar_text(500, 1000),
            "[=========================>                         ]     500B/1kB"
        );
        assert_eq!(bar_text(5, 0), "      5B");
    }

    #[test]
    fn messages_have_dockers_shape() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let p = Progress::new(tx);
        p.layer("abc", "Pulling fs layer");
        p.bar("abc", "Downloading", 1, 2);
        let m = serde_json::to_string(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(
            m,
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}"#
        );
        let m = serde_json::to_value(rx.try_recv().unwrap()).unwrap();
        assert_eq!(m["progressDetail"]["current"], 1);
        assert_eq!(m["progressDetail"]["total"], 2);
    }
}
