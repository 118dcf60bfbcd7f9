//! `berth bench`: berth through berthd, berth daemonless, and docker and podman when they
//! are there, measured side by side in one run on the same image, and written to one
//! results folder (a markdown table with ratios against a baseline, the raw samples as JSON,
//! an SVG chart, the machine's description). Under the start rows, the floor: the same
//! container started by a runtime alone and by the kernel alone (`floor.rs`).
//!
//! Everything the bench starts it also removes, on success, failure or Ctrl-C: containers
//! (by the names it gave them), the private daemons (by the pids it got when it started
//! them), their roots, mounts and cgroups, the floor's containers and cgroups, and its
//! accounting cgroups.

mod accounting;
mod berthd;
mod chart;
mod command;
mod engine;
mod floor;
mod image;
mod machine;
mod procfs;
mod progress;
mod report;
mod results;
mod scenarios;
mod stats;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use self::accounting::Accounting;
use self::command::{is_interrupted, Cancel};
use self::engine::{Engine, EngineId, Setup};
use self::floor::{Floor, FloorId};
use self::progress::Progress;
use self::results::{Cell, EngineReport, Gap, Results};
use self::scenarios::Ctx;
use crate::exit::StatusError;

/// Measure berth through berthd, berth --daemonless, docker and podman side by side
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// A shorter run (fewer samples; ps/inspect up to 100 containers; 20 running for memory;
    /// one round of 50 running)
    #[arg(long)]
    pub quick: bool,
    /// Folder for the results [default: bench-results/<timestamp>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Engines to measure, comma-separated [default: all of them]
    #[arg(long, value_delimiter = ',', value_name = "ENGINES")]
    pub engines: Vec<EngineId>,
    /// The engine the ratios are against
    #[arg(long, default_value = "berthd", value_name = "ENGINE")]
    pub baseline: EngineId,
    /// Measure the berthd at this address (unix://PATH) instead of starting a private one
    #[arg(long, value_name = "unix://PATH")]
    pub host: Option<String>,
    /// Also measure another build of berth (its `berth`, with berthd, berth-shim and
    /// berth-runtime next to it) in the same run, as the engines berthd-other and
    /// daemonless-other: a change's speed against the previous commit's
    #[arg(long, value_name = "BERTH")]
    pub other_build: Option<PathBuf>,
    /// Scenarios to run, comma-separated [default: all of them]
    #[arg(long, value_delimiter = ',', value_name = "SCENARIOS")]
    pub scenarios: Vec<ScenarioId>,
    /// Samples per latency measurement [default: 15 with --quick, 100 otherwise]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub runs: Option<u32>,
}

/// A scenario, as `--scenarios` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScenarioId {
    /// `run --rm true` latency, CPU time per container over the same containers, and the
    /// floor: the same container started by berth-runtime alone, runc alone and
    /// unshare + chroot
    RunRm,
    /// `exec true` latency
    Exec,
    /// Containers per second and latency at concurrency 1 to 32
    Parallel,
    /// `ps -a` and `inspect` latency with 10, 100 and 1000 containers present
    Listing,
    /// Daemon and monitor memory
    Memory,
    /// Running containers after the daemon is killed with SIGKILL
    DaemonKill,
    /// 50 containers started at once, `ps` while they run, one `rm -f` of them all
    Fifty,
    /// A 10-step Dockerfile rebuilt with a warm cache, and after a late COPY change
    Build,
    /// Pull (cold), unpack and push of a 100 MB image against a loopback registry (10 MB
    /// with --quick)
    Registry,
}

impl ScenarioId {
    const ALL: [ScenarioId; 9] = [
        ScenarioId::RunRm,
        ScenarioId::Exec,
        ScenarioId::Parallel,
        ScenarioId::Listing,
        ScenarioId::Memory,
        ScenarioId::DaemonKill,
        ScenarioId::Fifty,
        ScenarioId::Build,
        ScenarioId::Registry,
    ];
}

/// How much of everything a run does.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Unmeasured rounds before each timed scenario.
    pub warmup: usize,
    pub latency_runs: usize,
    pub concurrency: Vec<usize>,
    pub parallel_rounds: usize,
    /// Containers present for `ps` and `inspect`.
    pub populations: Vec<usize>,
    pub listing_runs: usize,
    pub exec_runs: usize,
    /// Running containers for the memory scenario.
    pub running: usize,
    /// Running containers when the daemon is killed.
    pub kill_containers: usize,
    /// Rounds of starting 50 containers, `ps` with them running and removing them.
    pub fifty_rounds: usize,
}

impl Plan {
    fn new(quick: bool, runs: Option<u32>) -> Self {
        let mut plan = if quick {
            Plan {
                warmup: 2,
                latency_runs: 15,
                concurrency: vec![1, 2, 4, 8, 16, 32],
                parallel_rounds: 1,
                populations: vec![10, 100],
                listing_runs: 10,
                exec_runs: 10,
                running: 20,
                kill_containers: 5,
                fifty_rounds: 1,
            }
        } else {
            Plan {
                warmup: 3,
                latency_runs: 100,
                concurrency: vec![1, 2, 4, 8, 16, 32],
                parallel_rounds: 3,
                populations: vec![10, 100, 1000],
                listing_runs: 30,
                exec_runs: 50,
                running: 100,
                kill_containers: 20,
                fifty_rounds: 3,
            }
        };
        if let Some(n) = runs {
            let n = n as usize;
            plan.latency_runs = n;
            plan.listing_runs = n;
            plan.exec_runs = n;
        }
        plan
    }

    /// About how many engine commands a run makes, for the progress bar.
    fn planned_commands(&self, engines: usize, scenarios: &[ScenarioId]) -> u64 {
        let max_pop = self.populations.iter().copied().max().unwrap_or(0);
        let per_engine: usize = scenarios
            .iter()
            .map(|s| match s {
                ScenarioId::RunRm => self.warmup + self.latency_runs,
                ScenarioId::Exec => 3 + self.warmup + self.exec_runs,
                ScenarioId::Parallel => {
                    self.concurrency.iter().sum::<usize>() * self.parallel_rounds
                        + self.concurrency.first().copied().unwrap_or(0)
                }
                ScenarioId::Listing => {
                    max_pop
                        + max_pop / 50
                        + self.populations.len() * (1 + 2 * (self.warmup + self.listing_runs))
                }
                ScenarioId::Memory => self.running + self.running / 25 + 2,
                ScenarioId::DaemonKill => 3 * self.kill_containers + 2,
                ScenarioId::Fifty => {
                    self.fifty_rounds
                        * (scenarios::fifty::RUNNING + 2 + self.warmup + self.listing_runs)
                }
                ScenarioId::Build => 3 + self.warmup + 2 * self.exec_runs,
                // Per round: rmi and pull; rmi, load, rmi; tag, two pushes, rmi.
                ScenarioId::Registry => 9 * if self.latency_runs <= 15 { 2 } else { 5 } + 2,
            })
            .sum::<usize>();
        // The floor's starts, with run-rm's.
        let floor = if scenarios.contains(&ScenarioId::RunRm) {
            FloorId::ALL.len() * (self.warmup + self.latency_runs)
        } else {
            0
        };
        (per_engine * engines + floor) as u64
    }
}

/// Runs the bench; SIGINT, SIGTERM and SIGHUP stop it, after which it cleans up.
pub async fn bench(args: BenchArgs) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let cancel = Cancel::default();
    // Registered before any work starts, so no signal finds the default action.
    let mut int = signal(SignalKind::interrupt()).context("Cannot catch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("Cannot catch SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("Cannot catch SIGHUP")?;
    let watched = cancel.clone();
    let watcher = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            if watched.cancel() {
                eprintln!("\nberth bench: still cleaning up, please wait");
            } else {
                eprintln!("\nberth bench: interrupted; removing what it started");
            }
        }
    });
    let outcome = tokio::task::spawn_blocking(move || run(args, cancel)).await;
    watcher.abort();
    outcome.map_err(|e| anyhow!("The bench stopped unexpectedly: {e}"))?
}

/// Everything a run starts, removed when it is dropped.
struct Lab {
    tmp: PathBuf,
    accounting: Option<Accounting>,
    engines: Vec<Engine>,
    floor: Option<Floor>,
}

impl Lab {
    fn new() -> Result<Self> {
        let tmp = nix::unistd::mkdtemp(&std::env::temp_dir().join("berth-bench-XXXXXX"))
            .context("Cannot create a temporary directory")?;
        Ok(Self {
            tmp,
            accounting: None,
            engines: Vec::new(),
            floor: None,
        })
    }

    /// Removes every engine's containers, daemon and roots, the floor's containers and
    /// cgroups, the accounting cgroups and the temporary directory; copies the private
    /// daemons' logs (when they logged anything) into `logs` first. Returns what it could
    /// not do.
    fn cleanup(&mut self, logs: Option<&Path>) -> Vec<String> {
        let mut warnings = Vec::new();
        for mut e in self.engines.drain(..) {
            warnings.extend(e.cleanup());
            if let (Some(dir), Some(log)) = (logs, e.daemon_log()) {
                let written = std::fs::metadata(&log).is_ok_and(|m| m.len() > 0);
                if written && std::fs::create_dir_all(dir).is_ok() {
                    let _ = std::fs::copy(&log, dir.join(format!("{}-berthd.log", e.id.key())));
                }
            }
        }
        if let Some(mut f) = self.floor.take() {
            warnings.extend(f.cleanup());
        }
        if let Some(a) = self.accounting.take() {
            warnings.extend(a.remove());
        }
        if self.tmp.exists() {
            let mounted = self::engine::mounts_under(&self.tmp);
            if mounted.is_empty() {
                if let Err(e) = std::fs::remove_dir_all(&self.tmp) {
                    warnings.push(format!("Cannot remove {}: {e}", self.tmp.display()));
                }
            } else {
                warnings.push(format!(
                    "Left {}: {} still mounted under it",
                    self.tmp.display(),
                    mounted[0].display()
                ));
            }
        }
        warnings
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for w in self.cleanup(None) {
            eprintln!("berth bench: {w}");
        }
    }
}

/// Keeps the first of each repeated value, in order.
fn dedup<T: PartialEq + Copy>(items: &[T]) -> Vec<T> {
    let mut out = Vec::new();
    for i in items {
        if !out.contains(i) {
            out.push(*i);
        }
    }
    out
}

fn run(args: BenchArgs, cancel: Cancel) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("berth bench needs root: it starts daemons and containers and reads cgroups");
    }
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let selected = if args.engines.is_empty() {
        EngineId::ALL
            .into_iter()
            .filter(|id| args.other_build.is_some() || !id.is_other_build())
            .collect()
    } else {
        dedup(&args.engines)
    };
    if let Some(other) = &args.other_build {
        if !other.is_file() {
            bail!("--other-build {}: no such berth binary", other.display());
        }
    }
    if !selected.contains(&args.baseline) {
        bail!(
            "The baseline {} is not among the engines measured (--engines)",
            args.baseline.key()
        );
    }
    let wanted = if args.scenarios.is_empty() {
        ScenarioId::ALL.to_vec()
    } else {
        dedup(&args.scenarios)
    };
    let plan = Plan::new(args.quick, args.runs);
    let out_dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("bench-results").join(started.format("%Y%m%d-%H%M%S").to_string())
    });
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("Cannot create {}", out_dir.display()))?;
    let machine = machine::Machine::describe();
    let berth = std::env::current_exe().context("Cannot find the running berth binary")?;
    // Until the engines are up: about 5 commands each to prepare them, then the scenarios.
    let progress =
        Progress::new(5 * selected.len() as u64 + plan.planned_commands(selected.len(), &wanted));

    let mut lab = Lab::new()?;
    progress.phase("building the busybox image");
    let archive = image::build(&lab.tmp)?;
    let cpu_accounting = match Accounting::create() {
        Ok(a) => {
            let d = a.describe();
            lab.accounting = Some(a);
            d
        }
        Err(e) => format!("unavailable ({e:#})"),
    };
    let mut engine_reports = Vec::new();
    {
        let setup = Setup {
            tmp: &lab.tmp,
            berth: berth.clone(),
            archive: &archive,
            accounting: lab.accounting.as_ref(),
            host: args.host.clone(),
            other_berth: args.other_build.clone(),
            prefix: format!("berth-bench-{}-", std::process::id()),
            progress: progress.clone(),
            cancel: cancel.clone(),
        };
        for id in selected {
            progress.phase(format!("preparing {}", id.label()));
            match self::engine::prepare(id, &setup) {
                Ok(e) => {
                    engine_reports.push(EngineReport {
                        id,
                        label: id.label().to_string(),
                        available: true,
                        reason: None,
                        how: e.how.clone(),
                        version: e.version.clone(),
                    });
                    lab.engines.push(e);
                }
                Err(reason) => {
                    if cancel.is_cancelled() {
                        break;
                    }
                    progress.println(format!(
                        "berth bench: {}: unavailable: {reason}",
                        id.label()
                    ));
                    engine_reports.push(EngineReport {
                        id,
                        label: id.label().to_string(),
                        available: false,
                        reason: Some(reason),
                        how: String::new(),
                        version: None,
                    });
                }
            }
        }
    }

    // The floor, when `run --rm true` is measured: prepared here so that the lab removes it.
    let floor_prepared = if wanted.contains(&ScenarioId::RunRm) && !cancel.is_cancelled() {
        progress.phase("preparing the floor (a bundle for the runtimes alone)");
        match Floor::prepare(
            &lab.tmp,
            &archive,
            &berth,
            &format!("berth-bench-{}-", std::process::id()),
            progress.clone(),
        ) {
            Ok(f) => {
                lab.floor = Some(f);
                Ok(())
            }
            Err(e) => {
                let reason = format!("{e:#}");
                progress.println(format!("berth bench: the floor: unavailable: {reason}"));
                Err(reason)
            }
        }
    } else {
        Err("not measured".to_string())
    };

    progress.plan_remaining(plan.planned_commands(lab.engines.len(), &wanted));
    let ctx = Ctx {
        plan: &plan,
        cancel: &cancel,
        progress: &progress,
    };
    let mut measured = Vec::new();
    let mut floor_report = None;
    let lab_tmp = lab.tmp.clone();
    let outcome = (|| -> Result<()> {
        for s in &wanted {
            cancel.check()?;
            let engines = &mut lab.engines;
            measured.extend(match s {
                ScenarioId::RunRm => {
                    let floor = match (&lab.floor, &floor_prepared) {
                        (Some(f), _) => Ok(f),
                        (None, Err(reason)) => Err(reason.clone()),
                        (None, Ok(())) => Err("not prepared".to_string()),
                    };
                    let (rows, floor) = scenarios::run_rm::run(&ctx, engines, floor)?;
                    floor_report = Some(floor);
                    rows
                }
                ScenarioId::Exec => scenarios::exec::run(&ctx, engines)?,
                ScenarioId::Parallel => scenarios::parallel::run(&ctx, engines)?,
                ScenarioId::Listing => scenarios::listing::run(&ctx, engines)?,
                ScenarioId::Memory => scenarios::memory::run(&ctx, engines)?,
                ScenarioId::DaemonKill => scenarios::daemon_kill::run(&ctx, engines)?,
                ScenarioId::Fifty => scenarios::fifty::run(&ctx, engines)?,
                ScenarioId::Build => scenarios::build::run(&ctx, engines)?,
                ScenarioId::Registry => scenarios::registry::run(&ctx, engines, &lab_tmp)?,
            });
        }
        Ok(())
    })();

    let load_average_at_end = machine::load_average();
    progress.phase("cleaning up");
    let warnings = lab.cleanup(Some(&out_dir.join("logs")));
    progress.finish();
    for w in &warnings {
        eprintln!("berth bench: {w}");
    }
    match outcome {
        Err(e) if is_interrupted(&e) || cancel.is_cancelled() => {
            return Err(StatusError::new(
                130,
                "berth bench: interrupted; everything it started has been removed",
            )
            .into())
        }
        Err(e) => return Err(e),
        Ok(()) => {}
    }

    // An engine that could not be used is missing from every row, with its reason.
    for e in &engine_reports {
        let (false, Some(reason)) = (e.available, &e.reason) else {
            continue;
        };
        let reason = format!("{}: {reason}", e.label);
        for row in measured.iter_mut().flat_map(|s| s.rows.iter_mut()) {
            row.cells
                .entry(e.id)
                .or_insert_with(|| Cell::unavailable(reason.clone()));
        }
        for row in floor_report.iter_mut().flat_map(|f| f.rows.iter_mut()) {
            row.engines.entry(e.id).or_insert_with(|| Gap::Unavailable {
                reason: reason.clone(),
            });
        }
    }
    let command = std::iter::once("berth".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let results = Results {
        schema: 2,
        command,
        started: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        wall_seconds: clock.elapsed().as_secs_f64(),
        load_average_at_end,
        quick: args.quick,
        baseline: args.baseline,
        machine,
        plan,
        cpu_accounting,
        engines: engine_reports,
        scenarios: measured,
        floor: floor_report,
    };
    let json = serde_json::to_string_pretty(&results)?;
    std::fs::write(out_dir.join("results.json"), json + "\n")
        .with_context(|| format!("Cannot write {}", out_dir.join("results.json").display()))?;
    let md = report::markdown(&results);
    std::fs::write(out_dir.join("results.md"), &md)
        .with_context(|| format!("Cannot write {}", out_dir.join("results.md").display()))?;
    chart::draw(&results, &out_dir.join("concurrency.svg"))?;
    // A closed stdout (`| head`) is no reason to fail a run whose results are written.
    let _ = writeln!(std::io::stdout(), "{md}");
    eprintln!(
        "berth bench: results in {} ({:.0} s)",
        out_dir.display(),
        results.wall_seconds
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_is_smaller_and_runs_override_samples() {
        let quick = Plan::new(true, None);
        let full = Plan::new(false, None);
        assert!(quick.latency_runs < full.latency_runs);
        assert_eq!(quick.populations, vec![10, 100]);
        assert_eq!(full.populations, vec![10, 100, 1000]);
        assert_eq!(full.concurrency, vec![1, 2, 4, 8, 16, 32]);
        assert_eq!((quick.fifty_rounds, full.fifty_rounds), (1, 3));
        let p = Plan::new(true, Some(3));
        assert_eq!((p.latency_runs, p.listing_runs, p.exec_runs), (3, 3, 3));
        assert!(
            full.planned_commands(3, &ScenarioId::ALL)
                > quick.planned_commands(3, &ScenarioId::ALL)
        );
    }

    #[test]
    fn dedup_keeps_the_first() {
        assert_eq!(dedup(&[2, 1, 2, 3, 1]), vec![2, 1, 3]);
    }
}
