//! `stats`: a live table of containers' resource use, computed from the engine's samples as
//! the docker CLI computes it (CPU from the sample and its `precpu_stats`, memory without
//! the page cache, network and block I/O summed).

use std::io::Write;
use std::pin::Pin;
use std::time::Duration;

use api_types::ContainerStats;
use clap::Args;
use futures_util::stream::{SelectAll, Stream, StreamExt};
use serde_json::{json, Value};

use crate::backend::{Backend, BackendError, ContainerListOptions};
use crate::format::{short_id, RowFormat};
use crate::units::{bytes_size, human_size_with_precision};

const DEFAULT_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Display a live stream of container(s) resource usage statistics
#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// One container's row, as docker's `StatsEntry`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Entry {
    /// As the user named it (or its id).
    container: String,
    name: String,
    id: String,
    cpu_percent: f64,
    memory: f64,
    memory_limit: f64,
    memory_percent: f64,
    net_rx: f64,
    net_tx: f64,
    block_read: f64,
    block_write: f64,
    pids: u64,
    /// No valid sample (yet): docker shows `--`.
    invalid: bool,
}

impl Entry {
    fn new(container: &str) -> Self {
        Self {
            container: container.to_string(),
            invalid: true,
            ..Default::default()
        }
    }

    /// Fills the entry from a sample, as docker's `collect` does.
    fn update(&mut self, s: &ContainerStats) {
        self.name = s.name.clone();
        self.id = s.id.clone();
        self.cpu_percent = cpu_percent(s);
        self.memory = memory_usage_no_cache(s);
        self.memory_limit = s.memory_stats.limit as f64;
        self.memory_percent = if s.memory_stats.limit != 0 {
            self.memory / self.memory_limit * 100.0
        } else {
            0.0
        };
        let (rx, tx) = s
            .networks
            .iter()
            .flatten()
            .fold((0.0, 0.0), |(rx, tx), (_, n)| {
                (rx + n.rx_bytes as f64, tx + n.tx_bytes as f64)
            });
        (self.net_rx, self.net_tx) = (rx, tx);
        let (r, w) = s
            .blkio_stats
            .io_service_bytes_recursive
            .iter()
            .flatten()
            .fold((0.0, 0.0), |(r, w), e| match e.op.chars().next() {
                Some('r' | 'R') => (r + e.value as f64, w),
                Some('w' | 'W') => (r, w + e.value as f64),
                _ => (r, w),
            });
        (self.block_read, self.block_write) = (r, w);
        self.pids = s.pids_stats.current;
        self.invalid = false;
    }

    fn row(&self, trunc: bool) -> Value {
        let dash = |s: String| if self.invalid { "--".to_string() } else { s };
        let id = if trunc {
            short_id(&self.id)
        } else {
            self.id.clone()
        };
        json!({
            "Container": self.container,
            "Name": if self.name.len() > 1 { self.name[1..].to_string() } else { "--".into() },
            "ID": id,
            "CPUPerc": dash(format!("{:.2}%", self.cpu_percent)),
            "MemUsage": if self.invalid {
                "-- / --".to_string()
            } else {
                format!("{} / {}", bytes_size(self.memory), bytes_size(self.memory_limit))
            },
            "MemPerc": dash(format!("{:.2}%", self.memory_percent)),
            "NetIO": dash(format!(
                "{} / {}",
                human_size_with_precision(self.net_rx, 3),
                human_size_with_precision(self.net_tx, 3)
            )),
            "BlockIO": dash(format!(
                "{} / {}",
                human_size_with_precision(self.block_read, 3),
                human_size_with_precision(self.block_write, 3)
            )),
            "PIDs": dash(self.pids.to_string()),
        })
    }
}

fn header() -> Value {
    json!({
        "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

/// docker's `calculateCPUPercentUnix`.
fn cpu_percent(s: &ContainerStats) -> f64 {
    let cpu_delta =
        s.cpu_stats.cpu_usage.total_usage as f64 - s.precpu_stats.cpu_usage.total_usage as f64;
    let system_delta = s.cpu_stats.system_cpu_usage as f64 - s.precpu_stats.system_cpu_usage as f64;
    let mut online = s.cpu_stats.online_cpus as f64;
    if online == 0.0 {
        online = s
            .cpu_stats
            .cpu_usage
            .percpu_usage
            .as_ref()
            .map_or(0, Vec::len) as f64;
    }
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    }
}

/// docker's `calculateMemUsageUnixNoCache`: usage less the inactive page cache.
fn memory_usage_no_cache(s: &ContainerStats) -> f64 {
    let m = &s.memory_stats;
    if let Some(&v) = m.stats.get("total_inactive_file") {
        if v < m.usage {
            return (m.usage - v) as f64;
        }
    }
    match m.stats.get("inactive_file") {
        Some(&v) if v < m.usage => (m.usage - v) as f64,
        _ => m.usage as f64,
    }
}

/// `berth stats`.
pub async fn stats<B: Backend>(backend: &B, args: StatsArgs) -> anyhow::Result<()> {
    let format_text = args.format.clone().unwrap_or_default();
    let format = RowFormat::parse(&format_text, DEFAULT_TABLE)
        .map_err(|e| anyhow::anyhow!("failed to parse template: {e}"))?;
    let trunc = !args.no_trunc;
    let listed = args.containers.is_empty();
    let mut entries: Vec<Entry> = Vec::new();
    let mut streams: SelectAll<Tagged> = SelectAll::new();
    let mut errors = Vec::new();
    let names = if listed {
        list(backend, args.all).await?
    } else {
        args.containers.clone()
    };
    for name in names {
        add(
            backend,
            &name,
            !args.no_stream,
            &mut entries,
            &mut streams,
            &mut errors,
        )
        .await;
    }
    if !errors.is_empty() && !listed {
        anyhow::bail!("{}", errors.join("\n"));
    }
    if args.no_stream {
        // The first sample of each (the engine takes two, a second apart, for the CPU).
        while entries.iter().any(|e| e.invalid) {
            match streams.next().await {
                Some((i, Ok(s))) => entries[i].update(&s),
                Some((i, Err(e))) => {
                    errors.push(e.to_string());
                    entries[i].invalid = false;
                }
                None => break,
            }
        }
        if !errors.is_empty() && !listed {
            anyhow::bail!("{}", errors.join("\n"));
        }
        print!("{}", render(&format, &entries, trunc)?);
        return Ok(());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            sample = streams.next(), if !streams.is_empty() => match sample {
                Some((i, Ok(s))) => entries[i].update(&s),
                Some((i, Err(_))) => entries[i].invalid = true,
                None => {}
            },
            _ = tick.tick() => {
                if listed {
                    for name in list(backend, args.all).await? {
                        if !entries.iter().any(|e| e.container == name) {
                            add(backend, &name, true, &mut entries, &mut streams, &mut errors).await;
                        }
                    }
                }
                let text = render(&format, &entries, trunc)?;
                let mut out = std::io::stdout().lock();
                // Clear the screen and go home, then the whole table in one write.
                write!(out, "\x1b[2J\x1b[H{text}")?;
                out.flush()?;
            }
        }
    }
}

/// A stats stream tagged with its entry's index.
type Tagged = Pin<Box<dyn Stream<Item = (usize, Result<ContainerStats, BackendError>)> + Send>>;

async fn add<B: Backend>(
    backend: &B,
    name: &str,
    stream: bool,
    entries: &mut Vec<Entry>,
    streams: &mut SelectAll<Tagged>,
    errors: &mut Vec<String>,
) {
    let i = entries.len();
    entries.push(Entry::new(name));
    match backend.container_stats(name, stream).await {
        Ok(s) => {
            streams.push(Box::pin(s.map(move |r| (i, r))));
        }
        Err(e) => {
            errors.push(e.to_string());
            entries[i].invalid = true;
        }
    }
}

/// The containers to watch without names: running ones (all with `-a`), by short id.
async fn list<B: Backend>(backend: &B, all: bool) -> anyhow::Result<Vec<String>> {
    let opts = ContainerListOptions {
        all,
        ..Default::default()
    };
    Ok(backend
        .list_containers(&opts)
        .await?
        .into_iter()
        .map(|c| short_id(&c.id))
        .collect())
}

fn render(format: &RowFormat, entries: &[Entry], trunc: bool) -> anyhow::Result<String> {
    let rows: Vec<Value> = entries.iter().map(|e| e.row(trunc)).collect();
    format
        .render(&header(), &rows)
        .map_err(|e| anyhow::anyhow!("failed to execute template: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ContainerStats {
        serde_json::from_str(include_str!("../../tests/fixtures/stats.json")).unwrap()
    }

    #[test]
    fn rows_are_computed_like_dockers() {
        let mut s = sample();
        s.cpu_stats.cpu_usage.total_usage = s.precpu_stats.cpu_usage.total_usage + 10_000_000;
        s.cpu_stats.system_cpu_usage = s.precpu_stats.system_cpu_usage + 2_000_000_000;
        let mut e = Entry::new("ck-d");
        e.update(&s);
        let row = e.row(true);
        assert_eq!(row["ID"], "03ed8a5ead50");
        assert_eq!(row["Name"], "ck-d");
        // 10 ms of 2 s of system time on 2 CPUs.
        assert_eq!(row["CPUPerc"], "1.00%");
        // The sample's usage less total_inactive_file, against the limit.
        assert_eq!(row["MemUsage"], "324KiB / 23.54GiB");
        assert_eq!(row["MemPerc"], "0.00%");
        assert_eq!(row["NetIO"], "0B / 0B");
        assert_eq!(row["BlockIO"], "0B / 0B");
        assert_eq!(row["PIDs"], "1");
        let none = Entry::new("x").row(true);
        assert_eq!(
            (none["CPUPerc"].as_str(), none["MemUsage"].as_str()),
            (Some("--"), Some("-- / --"))
        );
    }

    #[test]
    fn block_io_and_network_are_summed() {
        let s: ContainerStats = serde_json::from_value(json!({
            "name": "/n", "id": "abc",
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 1000},
                {"major": 8, "minor": 0, "op": "write", "value": 2500000},
                {"major": 8, "minor": 16, "op": "read", "value": 24},
                {"major": 8, "minor": 0, "op": "Total", "value": 9}
            ]},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 10}, "eth1": {"rx_bytes": 500}},
            "memory_stats": {"usage": 4096, "stats": {"inactive_file": 1024}, "limit": 8192}
        }))
        .unwrap();
        let mut e = Entry::new("n");
        e.update(&s);
        let row = e.row(false);
        assert_eq!(row["BlockIO"], "1.02kB / 2.5MB");
        assert_eq!(row["NetIO"], "2kB / 10B");
        assert_eq!(row["MemUsage"], "3KiB / 8KiB");
        assert_eq!(row["MemPerc"], "37.50%");
        assert_eq!(row["CPUPerc"], "0.00%");
    }
}
