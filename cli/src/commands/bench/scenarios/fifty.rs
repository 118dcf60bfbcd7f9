//! 50 running containers, the case the issues quote for docker and podman: the wall time of
//! starting 50 `sleep 3600` containers at once, `ps` latency while they run, and the wall
//! time of one `rm -f` of all 50.
//!
//! Each round every engine starts its 50 (one engine at a time), then `ps` is timed with the
//! engines interleaved while each holds its 50, then every engine removes its 50 (one engine
//! at a time); the engine that goes first moves one further along each round.

use std::time::Instant;

use anyhow::{bail, Result};

use super::{interleave, median_cell, ms, parallel_map, remove_quietly, Ctx, Series};
use crate::commands::bench::command::is_interrupted;
use crate::commands::bench::engine::Engine;
use crate::commands::bench::results::{Better, Row, Scenario};

/// Containers running at once, the number the issues quote.
pub const RUNNING: usize = 50;

/// Engine indices in the order they take their turn in `round`.
fn turns(round: usize, engines: usize) -> impl Iterator<Item = usize> {
    (0..engines).map(move |k| (round + k) % engines)
}

/// Returns the `fifty` scenario: `start`, `ps` and `rm` rows.
pub fn run(ctx: &Ctx, engines: &[Engine]) -> Result<Vec<Scenario>> {
    let n = engines.len();
    let rounds = ctx.plan.fifty_rounds;
    let mut running: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut failed: Vec<Option<String>> = vec![None; n];
    let mut starts: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut listings: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut removals: Vec<Vec<f64>> = vec![Vec::new(); n];
    let result = (|| -> Result<()> {
        for round in 0..rounds {
            ctx.progress.phase(format!(
                "{RUNNING} running containers, round {} of {rounds}: starting them",
                round + 1
            ));
            for i in turns(round, n) {
                if failed[i].is_some() {
                    continue;
                }
                ctx.cancel.check()?;
                match start_all(&engines[i], &mut running[i]) {
                    Ok(seconds) => starts[i].push(seconds),
                    Err(err) if is_interrupted(&err) => return Err(err),
                    Err(err) => failed[i] = Some(format!("{err:#}")),
                }
            }

            ctx.progress.phase(format!(
                "{RUNNING} running containers, round {} of {rounds}: `ps`",
                round + 1
            ));
            let ps = interleave(
                ctx,
                engines,
                &failed,
                ctx.plan.warmup,
                ctx.plan.listing_runs,
                |_, e, _| Ok(ms(e.run_ok(&["ps"])?.elapsed)),
            )?;
            for (i, s) in ps.into_iter().enumerate() {
                match s {
                    Ok(samples) => listings[i].extend(samples),
                    Err(reason) => {
                        failed[i].get_or_insert(reason);
                    }
                }
            }

            ctx.progress.phase(format!(
                "{RUNNING} running containers, round {} of {rounds}: `rm -f`",
                round + 1
            ));
            for i in turns(round, n) {
                if failed[i].is_some() || running[i].is_empty() {
                    continue;
                }
                ctx.cancel.check()?;
                match remove_all(&engines[i], &running[i]) {
                    Ok(seconds) => {
                        removals[i].push(seconds);
                        running[i].clear();
                    }
                    Err(err) if is_interrupted(&err) => return Err(err),
                    Err(err) => failed[i] = Some(format!("{err:#}")),
                }
            }
            // An engine that failed this round still holds what it started.
            for (e, names) in engines.iter().zip(running.iter_mut()) {
                if !names.is_empty() {
                    remove_quietly(ctx, e, names)?;
                    names.clear();
                }
            }
        }
        Ok(())
    })();
    // What is left after an interruption or a failure half-way through a round.
    for (e, names) in engines.iter().zip(&running) {
        if !names.is_empty() && !ctx.cancel.is_cancelled() {
            remove_quietly(ctx, e, names)?;
        }
    }
    result?;

    let series = |samples: &[Vec<f64>]| -> Vec<Series> {
        samples
            .iter()
            .zip(&failed)
            .map(|(s, f)| match f {
                Some(reason) => Err(reason.clone()),
                None => Ok(s.clone()),
            })
            .collect()
    };
    let row = |id: &str, label: String, unit: &str, samples: &[Vec<f64>]| {
        Row::new(id, label, unit, Better::Lower).with(
            engines
                .iter()
                .zip(series(samples))
                .map(|(e, s)| (e.id, median_cell(&s))),
        )
    };
    Ok(vec![Scenario {
        id: "fifty".into(),
        title: format!("{RUNNING} running containers"),
        method: format!(
            "{RUNNING} `run -d --network none IMAGE sleep 3600` started at once (wall time until the last CLI exits), then `ps` with them running ({} warm-up then {} rounds, engines interleaved, each engine holding its {RUNNING}; median CLI wall time over every round), then one `rm -f` of all {RUNNING} (its CLI wall time); {rounds} round(s), one engine at a time for starts and removals, the engine going first moving along each round; start and removal are medians over rounds.",
            ctx.plan.warmup, ctx.plan.listing_runs
        ),
        rows: vec![
            row("start", format!("start {RUNNING} at once"), "s", &starts),
            row("ps", format!("`ps` with {RUNNING} running"), "ms", &listings),
            row("rm", format!("one `rm -f` of the {RUNNING}"), "s", &removals),
        ],
    }])
}

/// Starts [`RUNNING`] sleepers at once, adding the names of those started to `started`, and
/// checks that `ps` lists them all; returns the wall time in seconds.
fn start_all(engine: &Engine, started: &mut Vec<String>) -> Result<f64> {
    let slots: Vec<usize> = (0..RUNNING).collect();
    let clock = Instant::now();
    let made = parallel_map(&slots, RUNNING, |_| engine.start_sleeper());
    let wall = clock.elapsed().as_secs_f64();
    let mut first_error = None;
    for r in made {
        match r {
            Ok(name) => started.push(name),
            // An interruption is the error to report, whatever else failed.
            Err(e) if first_error.is_none() || is_interrupted(&e) => first_error = Some(e),
            Err(_) => {}
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    check_running(engine, started)?;
    Ok(wall)
}

/// Checks that `ps` lists every one of `names` as running.
fn check_running(engine: &Engine, names: &[String]) -> Result<()> {
    let args = ["ps", "--format", "{{.Names}}"];
    let out = engine.run_ok(&args)?;
    let listed = out.stdout();
    let listed: Vec<&str> = listed
        .lines()
        .map(|l| l.trim().trim_start_matches('/'))
        .collect();
    let missing = names
        .iter()
        .filter(|n| !listed.contains(&n.as_str()))
        .count();
    if missing > 0 {
        bail!(
            "`{}` did not list {missing} of the {} containers just started",
            engine.describe(&args),
            names.len()
        );
    }
    Ok(())
}

/// One `rm -f` of all of `names`; returns its wall time in seconds.
fn remove_all(engine: &Engine, names: &[String]) -> Result<f64> {
    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    let out = engine.run_ok(&args)?;
    engine.forget(names);
    Ok(out.elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_takes_one_turn_a_round_and_the_first_moves_along() {
        assert_eq!(turns(0, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(turns(1, 3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(turns(4, 3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(turns(2, 0).count(), 0);
    }
}
