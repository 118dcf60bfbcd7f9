//! `ps -a` and `inspect` latency with 10, 100 and 1000 containers present (created, not
//! running): how listing and lookup scale with the number of containers an engine holds.

use anyhow::{bail, Result};

use super::{interleave, make_containers, median_cell, ms, remove_quietly, Ctx};
use crate::commands::bench::command::is_interrupted;
use crate::commands::bench::engine::Engine;
use crate::commands::bench::results::{Better, Cell, Row, Scenario};

/// Containers created at once while filling an engine.
const CREATE_THREADS: usize = 4;

/// Returns the `ps` and `inspect` scenarios.
pub fn run(ctx: &Ctx, engines: &[Engine]) -> Result<Vec<Scenario>> {
    let n = engines.len();
    let mut present: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut failed: Vec<Option<String>> = vec![None; n];
    let mut ps_rows = Vec::new();
    let mut inspect_rows = Vec::new();
    let result = (|| -> Result<()> {
        for &population in &ctx.plan.populations {
            ctx.progress.phase(format!(
                "`ps -a` and `inspect` with {population} containers: creating them"
            ));
            for (i, e) in engines.iter().enumerate() {
                if failed[i].is_some() {
                    continue;
                }
                let need = population.saturating_sub(present[i].len());
                let made =
                    make_containers(e, need, CREATE_THREADS, Engine::create).and_then(|names| {
                        present[i].extend(names);
                        check_listed(e, &present[i])
                    });
                match made {
                    Ok(()) => {}
                    Err(err) if is_interrupted(&err) => return Err(err),
                    Err(err) => failed[i] = Some(format!("{err:#}")),
                }
            }
            ctx.progress.phase(format!(
                "`ps -a` and `inspect` with {population} containers"
            ));
            let ps = interleave(
                ctx,
                engines,
                &failed,
                ctx.plan.warmup,
                ctx.plan.listing_runs,
                |_, e, _| Ok(ms(e.run_ok(&["ps", "-a"])?.elapsed)),
            )?;
            let mut round = 0usize;
            let inspect = interleave(
                ctx,
                engines,
                &failed,
                ctx.plan.warmup,
                ctx.plan.listing_runs,
                |i, e, _| {
                    // A different container each time, spread over the whole population.
                    round += 1;
                    let names = &present[i];
                    let name = &names[(round * 7919) % names.len()];
                    Ok(ms(e.run_ok(&["inspect", name])?.elapsed))
                },
            )?;
            let label = format!("{population} containers");
            ps_rows.push(
                Row::new(format!("n{population}"), label.clone(), "ms", Better::Lower)
                    .with(engines.iter().zip(&ps).map(|(e, s)| (e.id, median_cell(s)))),
            );
            inspect_rows.push(
                Row::new(format!("n{population}"), label, "ms", Better::Lower).with(
                    engines
                        .iter()
                        .zip(&inspect)
                        .map(|(e, s)| (e.id, median_cell(s))),
                ),
            );
        }
        Ok(())
    })();
    ctx.progress.phase("removing the listed containers");
    for (e, names) in engines.iter().zip(&present) {
        if !ctx.cancel.is_cancelled() {
            remove_quietly(ctx, e, names)?;
        }
    }
    result?;
    // Engines that failed before the first population have no cells yet.
    for rows in [&mut ps_rows, &mut inspect_rows] {
        for row in rows.iter_mut() {
            for (e, f) in engines.iter().zip(&failed) {
                if let (false, Some(reason)) = (row.cells.contains_key(&e.id), f) {
                    row.set(e.id, Cell::unavailable(reason.clone()));
                }
            }
        }
    }
    let method = |what: &str| {
        format!(
            "`{what}` with N containers present (made with `create --network none IMAGE true`, not started), {} warm-up then {} rounds, engines interleaved; median CLI wall time.",
            ctx.plan.warmup, ctx.plan.listing_runs
        )
    };
    Ok(vec![
        Scenario {
            id: "ps".into(),
            title: "`ps -a` latency".into(),
            method: method("ps -a"),
            rows: ps_rows,
        },
        Scenario {
            id: "inspect".into(),
            title: "`inspect` latency".into(),
            method: method("inspect NAME").replace(
                "`inspect NAME` with",
                "`inspect NAME` of one of them (a different one each round) with",
            ),
            rows: inspect_rows,
        },
    ])
}

/// Checks that `ps -aq` lists at least the containers the bench made.
fn check_listed(engine: &Engine, names: &[String]) -> Result<()> {
    let out = engine.run_ok(&["ps", "-a", "-q"])?;
    let listed = out
        .stdout()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    if listed < names.len() {
        bail!(
            "`{}` listed {listed} containers, but {} were created",
            engine.describe(&["ps", "-a", "-q"]),
            names.len()
        );
    }
    Ok(())
}
