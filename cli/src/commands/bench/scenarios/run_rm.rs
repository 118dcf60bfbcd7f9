//! `run --rm true` latency, and the CPU time engines spend per container started, measured
//! over the same containers.

use std::time::Duration;

use anyhow::Result;

use super::{interleave, ms, Ctx, Series};
use crate::commands::bench::engine::Engine;
use crate::commands::bench::results::{Better, Cell, Row, Scenario};
use crate::commands::bench::stats;

/// CPU readings of one engine: its CLI processes and its daemon side.
#[derive(Clone)]
struct Cpu {
    cli: std::result::Result<Duration, String>,
    daemon: std::result::Result<Duration, String>,
}

impl Cpu {
    fn read(engine: &Engine) -> Self {
        Self {
            cli: engine.cli_cpu(),
            daemon: engine.daemon_cpu(),
        }
    }
}

/// CPU used between two readings, in ms: (CLI, daemon side).
fn spent(
    before: &std::result::Result<Duration, String>,
    after: &std::result::Result<Duration, String>,
) -> std::result::Result<f64, String> {
    match (before, after) {
        (Ok(a), Ok(b)) => Ok(ms(b.saturating_sub(*a))),
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
    }
}

/// Returns the `run-rm` and `cpu` scenarios.
pub fn run(ctx: &Ctx, engines: &[Engine]) -> Result<Vec<Scenario>> {
    ctx.progress.phase("`run --rm true` latency and CPU time");
    let n = engines.len();
    let mut first: Vec<Option<Cpu>> = vec![None; n];
    // Per container: (CLI ms, daemon ms).
    let mut per_sample: Vec<Vec<(Option<f64>, Option<f64>)>> = vec![Vec::new(); n];
    let series = interleave(
        ctx,
        engines,
        &[],
        ctx.plan.warmup,
        ctx.plan.latency_runs,
        |i, e, measured| {
            let before = measured.then(|| Cpu::read(e));
            let t = e.run_true()?;
            if let Some(before) = before {
                let after = Cpu::read(e);
                per_sample[i].push((
                    spent(&before.cli, &after.cli).ok(),
                    spent(&before.daemon, &after.daemon).ok(),
                ));
                first[i].get_or_insert(before);
            }
            Ok(ms(t))
        },
    )?;
    // What a daemon does after a container's exit (reaping, unmounting) belongs to it.
    std::thread::sleep(Duration::from_millis(500));
    let last: Vec<Cpu> = engines.iter().map(Cpu::read).collect();

    let latency = Scenario {
        id: "run-rm".into(),
        title: "`run --rm true` latency".into(),
        method: format!(
            "`run --rm --network none IMAGE true`, one at a time, {} warm-up rounds then {} rounds; engines interleaved round by round; wall time of the CLI process.",
            ctx.plan.warmup, ctx.plan.latency_runs
        ),
        rows: [("p50", 50.0), ("p90", 90.0), ("p99", 99.0)]
            .into_iter()
            .map(|(id, p)| {
                Row::new(id, id, "ms", Better::Lower).with(
                    engines
                        .iter()
                        .zip(&series)
                        .map(|(e, s)| (e.id, super::cell(s, |v| stats::percentile(v, p)))),
                )
            })
            .collect(),
    };

    let mut total = Row::new(
        "total",
        "all engine processes",
        "ms/container",
        Better::Lower,
    );
    let mut cli = Row::new("cli", "CLI processes", "ms/container", Better::Lower);
    let mut daemon = Row::new("daemon", "daemon side", "ms/container", Better::Lower);
    for (i, e) in engines.iter().enumerate() {
        let (cli_cell, daemon_cell, total_cell) =
            cpu_cells(&series[i], first[i].as_ref(), &last[i], &per_sample[i]);
        cli.set(e.id, cli_cell);
        daemon.set(e.id, daemon_cell);
        total.set(e.id, total_cell);
    }
    let cpu = Scenario {
        id: "cpu".into(),
        title: "CPU time per container started".into(),
        method: "Over the `run --rm true` containers above: CPU time of the engine's cgroups (CLI processes and what they fork; a private daemon with its shims and runtime calls; containers' own processes excluded) from the first measured container to 0.5 s after the last, divided by the number of containers. An external daemon is read from /proc/<pid>/stat (itself and the children it reaped). Samples are per-container differences.".into(),
        rows: vec![total, cli, daemon],
    };
    Ok(vec![latency, cpu])
}

/// The CLI, daemon and total cells of one engine.
fn cpu_cells(
    series: &Series,
    first: Option<&Cpu>,
    last: &Cpu,
    per_sample: &[(Option<f64>, Option<f64>)],
) -> (Cell, Cell, Cell) {
    let count = match series {
        Ok(s) if !s.is_empty() => s.len() as f64,
        Ok(_) => return (na("no samples"), na("no samples"), na("no samples")),
        Err(reason) => return (na(reason), na(reason), na(reason)),
    };
    let Some(first) = first else {
        return (na("no samples"), na("no samples"), na("no samples"));
    };
    let cli_samples: Vec<f64> = per_sample.iter().filter_map(|s| s.0).collect();
    let daemon_samples: Vec<f64> = per_sample.iter().filter_map(|s| s.1).collect();
    let cli = spent(&first.cli, &last.cli).map(|v| v / count);
    let daemon = spent(&first.daemon, &last.daemon).map(|v| v / count);
    let cell = |v: &std::result::Result<f64, String>, samples: Vec<f64>| match v {
        Ok(v) => Cell::measured(*v, samples),
        Err(reason) => na(reason),
    };
    let total = match (&cli, &daemon) {
        (Ok(c), Ok(d)) => Cell::measured(
            c + d,
            per_sample
                .iter()
                .filter_map(|(c, d)| Some(c.as_ref()? + d.as_ref()?))
                .collect(),
        ),
        // No daemon: the CLI processes are all of it.
        (Ok(c), Err(r)) if r == "no daemon" => Cell::measured(*c, cli_samples.clone()),
        (Err(r), _) | (_, Err(r)) => na(r),
    };
    (
        cell(&cli, cli_samples),
        cell(&daemon, daemon_samples),
        total,
    )
}

fn na(reason: &str) -> Cell {
    Cell::unavailable(reason)
}
