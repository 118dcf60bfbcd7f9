//! `run --rm true` latency, and the CPU time engines spend per container started, measured
//! over the same containers; and the floor under it, the same container started without an
//! engine, in the same rounds.

use std::time::Duration;

use anyhow::Result;

use super::{interleave_subjects, ms, Ctx, Series};
use crate::commands::bench::engine::Engine;
use crate::commands::bench::floor::{Floor, FloorId};
use crate::commands::bench::results::{Better, Cell, FloorReport, FloorRow, Gap, Row, Scenario};
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

/// Returns the `run-rm` and `cpu` scenarios, and the floor (the container started by each
/// way of `floor`, or the reason it could not be prepared) measured in the same rounds.
pub fn run(
    ctx: &Ctx,
    engines: &[Engine],
    floor: std::result::Result<&Floor, String>,
) -> Result<(Vec<Scenario>, FloorReport)> {
    ctx.progress
        .phase("`run --rm true` latency and CPU time, and the floor");
    let n = engines.len();
    let mut first: Vec<Option<Cpu>> = vec![None; n];
    // Per container: (CLI ms, daemon ms).
    let mut per_sample: Vec<Vec<(Option<f64>, Option<f64>)>> = vec![Vec::new(); n];
    // The engines, then the floor's ways of starting the container (those that can).
    let mut skip: Vec<Option<String>> = vec![None; n];
    if let Ok(f) = &floor {
        skip.extend(f.paths.iter().map(|p| p.unavailable.clone()));
    }
    let series = interleave_subjects(
        ctx,
        skip.len(),
        &skip,
        ctx.plan.warmup,
        ctx.plan.latency_runs,
        |i, measured| {
            let Some(e) = engines.get(i) else {
                let f = floor
                    .as_ref()
                    .expect("floor subjects exist only with a floor");
                return Ok(ms(f.sample(i - n)?));
            };
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
    let floor = floor_report(ctx, engines, &latency.rows[0], floor, &series[n..]);
    Ok((vec![latency, cpu], floor))
}

/// The floor's rows: each way's median and p90, and every engine's `run --rm true` p50
/// against it.
fn floor_report(
    ctx: &Ctx,
    engines: &[Engine],
    p50: &Row,
    floor: std::result::Result<&Floor, String>,
    series: &[Series],
) -> FloorReport {
    let (cgroup_parent, rows) = match floor {
        Ok(f) => (
            f.cgroup_parent.clone(),
            f.paths
                .iter()
                .zip(series)
                .map(|(path, s)| (path.id, path.how.clone(), super::median_cell(s), s))
                .map(|(id, how, cell, s)| {
                    let p90 = match s {
                        Ok(v) if !v.is_empty() => Some(stats::percentile(v, 90.0)),
                        _ => None,
                    };
                    (id, how, cell, p90)
                })
                .collect::<Vec<_>>(),
        ),
        Err(reason) => (
            String::new(),
            FloorId::ALL
                .iter()
                .map(|&id| (id, String::new(), Cell::unavailable(&reason), None))
                .collect(),
        ),
    };
    let rows = rows
        .into_iter()
        .map(|(id, how, cell, p90)| FloorRow {
            id: id.key().to_string(),
            label: id.label().to_string(),
            how,
            engines: engines
                .iter()
                .map(|e| {
                    let gap = match p50.cells.get(&e.id) {
                        Some(c) => Gap::between(c, &cell),
                        None => Gap::Unavailable {
                            reason: "not measured".to_string(),
                        },
                    };
                    (e.id, gap)
                })
                .collect(),
            p50: cell,
            p90,
        })
        .collect();
    FloorReport {
        title: "The floor: the same container without an engine".into(),
        method: format!(
            "In the same rounds as `run --rm true` (interleaved with the engines, {} warm-up rounds then {}): `berth-runtime` and `runc` start the container from a prepared OCI bundle (the image's root file system unpacked once into a directory, the spec berth builds for this container, a fresh cgroup each time) as a shim drives a runtime: `create`, `start`, wait for the container's process to exit (a pidfd), `delete`; `unshare` + `chroot` makes the same namespaces and enters the same root file system with no runtime (`unshare --mount --uts --ipc --pid --net --fork chroot ROOT /bin/true`). Wall time from the first command's fork to the last one's exit. An engine's cell: its `run --rm true` p50 minus the floor's p50, and (in brackets) their ratio.",
            ctx.plan.warmup, ctx.plan.latency_runs
        ),
        compared_with: "run-rm/p50".into(),
        cgroup_parent,
        rows,
    }
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
