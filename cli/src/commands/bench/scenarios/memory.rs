//! Memory: the daemon's RSS idle and with N running containers, and the RSS and PSS of each
//! container's monitor (the parent of its first process: berth-shim, containerd-shim,
//! conmon).

use std::time::Duration;

use anyhow::{bail, Result};

use super::{make_containers, remove_quietly, Ctx};
use crate::commands::bench::command::is_interrupted;
use crate::commands::bench::engine::{Daemon, Engine};
use crate::commands::bench::procfs;
use crate::commands::bench::results::{Better, Cell, Row, Scenario};
use crate::commands::bench::stats;

/// Containers started at once.
const START_THREADS: usize = 8;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// What was measured on one engine with N containers running.
struct Busy {
    daemon_kib: Option<u64>,
    monitor_rss: Vec<f64>,
    monitor_pss: Vec<f64>,
}

/// Returns the `memory` scenario.
pub fn run(ctx: &Ctx, engines: &[Engine]) -> Result<Vec<Scenario>> {
    let n = ctx.plan.running;
    let mut idle = Row::new("daemon-idle", "daemon RSS, idle", "MiB", Better::Lower);
    let mut busy = Row::new(
        "daemon-busy",
        format!("daemon RSS, {n} running"),
        "MiB",
        Better::Lower,
    );
    let mut rss = Row::new(
        "monitor-rss",
        "monitor RSS per container",
        "MiB",
        Better::Lower,
    );
    let mut pss = Row::new(
        "monitor-pss",
        "monitor PSS per container",
        "MiB",
        Better::Lower,
    );
    for e in engines {
        ctx.progress.phase(format!(
            "memory with {n} running containers: {}",
            e.id.label()
        ));
        let no_daemon = match &e.daemon {
            Daemon::None => Some("no daemon"),
            Daemon::External { pid: None } => Some("the daemon's pid is unknown"),
            _ => None,
        };
        idle.set(
            e.id,
            match (no_daemon, e.idle_rss_kib) {
                (Some(r), _) => Cell::unavailable(r),
                (None, Some(kib)) => Cell::measured(mib(kib), vec![mib(kib)]),
                (None, None) => Cell::unavailable("cannot read the daemon's RSS"),
            },
        );
        let mut names = Vec::new();
        let measured = (|| -> Result<Busy> {
            names = make_containers(e, n, START_THREADS, Engine::start_sleeper)?;
            std::thread::sleep(Duration::from_secs(1));
            let pids = e.container_pids(&names)?;
            let daemon_pid = e.daemon_pid();
            let mut monitor_rss = Vec::new();
            let mut monitor_pss = Vec::new();
            for pid in pids {
                let Some(monitor) = procfs::ppid(pid) else {
                    bail!("container process {pid} is gone");
                };
                if monitor <= 1 || Some(monitor) == daemon_pid {
                    bail!("containers have no monitor process of their own (the parent of {pid} is {monitor})");
                }
                monitor_rss.extend(procfs::rss_kib(monitor).map(mib));
                monitor_pss.extend(procfs::pss_kib(monitor).map(mib));
            }
            Ok(Busy {
                daemon_kib: daemon_pid.and_then(procfs::rss_kib),
                monitor_rss,
                monitor_pss,
            })
        })();
        if !ctx.cancel.is_cancelled() {
            remove_quietly(ctx, e, &names)?;
        }
        match measured {
            Ok(m) => {
                busy.set(
                    e.id,
                    match (no_daemon, m.daemon_kib) {
                        (Some(r), _) => Cell::unavailable(r),
                        (None, Some(kib)) => Cell::measured(mib(kib), vec![mib(kib)]),
                        (None, None) => Cell::unavailable("cannot read the daemon's RSS"),
                    },
                );
                rss.set(
                    e.id,
                    Cell::measured(stats::median(&m.monitor_rss), m.monitor_rss),
                );
                pss.set(
                    e.id,
                    Cell::measured(stats::median(&m.monitor_pss), m.monitor_pss),
                );
            }
            Err(err) if is_interrupted(&err) => return Err(err),
            Err(err) => {
                let reason = format!("{err:#}");
                for row in [&mut busy, &mut rss, &mut pss] {
                    row.set(e.id, Cell::unavailable(reason.clone()));
                }
            }
        }
    }
    Ok(vec![Scenario {
        id: "memory".into(),
        title: "Memory".into(),
        method: format!(
            "Daemon RSS (VmRSS) right after the image was loaded, and with {n} `run -d --network none IMAGE sleep 3600` containers running (1 s after the last started); monitor RSS and PSS (smaps_rollup, shared pages divided among the processes mapping them) of the parent of each container's first process, median over the containers. An engine's own memory only: dockerd without containerd."
        ),
        rows: vec![idle, busy, rss, pss],
    }])
}
