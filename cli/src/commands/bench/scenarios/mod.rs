//! The scenarios. Each takes the engines that are up, runs its commands through them with
//! the engines interleaved round by round (the order rotating, so drift of the machine hits
//! every engine alike), and returns rows of the table. An engine that fails in a scenario
//! gets the reason in its cells and goes on to the next scenario.

pub mod build;
pub mod daemon_kill;
pub mod exec;
pub mod fifty;
pub mod listing;
pub mod memory;
pub mod parallel;
pub mod registry;
pub mod run_rm;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;

use super::command::{is_interrupted, Cancel};
use super::engine::Engine;
use super::progress::Progress;
use super::results::Cell;
use super::stats;
use super::Plan;

/// What every scenario gets.
pub struct Ctx<'a> {
    pub plan: &'a Plan,
    pub cancel: &'a Cancel,
    pub progress: &'a Progress,
}

/// One engine's samples in a scenario, or why it has none.
pub type Series = std::result::Result<Vec<f64>, String>;

/// Milliseconds, the unit of every latency.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `sample(index, engine, measured)` for `warmup + runs` rounds, every engine once per
/// round, starting each round one engine further along. Warm-up rounds are run and
/// dropped. Engines whose entry in `skip` is a reason are left out, with that reason; an
/// engine whose sample fails is left out from then on, with the error.
pub fn interleave(
    ctx: &Ctx,
    engines: &[Engine],
    skip: &[Option<String>],
    warmup: usize,
    runs: usize,
    mut sample: impl FnMut(usize, &Engine, bool) -> Result<f64>,
) -> Result<Vec<Series>> {
    interleave_subjects(ctx, engines.len(), skip, warmup, runs, |i, measured| {
        sample(i, &engines[i], measured)
    })
}

/// [`interleave`] over `n` subjects of any kind (engines, and the floor's ways of starting
/// a container without one): `sample(index, measured)`.
pub fn interleave_subjects(
    ctx: &Ctx,
    n: usize,
    skip: &[Option<String>],
    warmup: usize,
    runs: usize,
    mut sample: impl FnMut(usize, bool) -> Result<f64>,
) -> Result<Vec<Series>> {
    let mut series: Vec<Series> = (0..n)
        .map(|i| match skip.get(i).cloned().flatten() {
            Some(reason) => Err(reason),
            None => Ok(Vec::with_capacity(runs)),
        })
        .collect();
    for round in 0..warmup + runs {
        for k in 0..n {
            let i = (round + k) % n;
            if series[i].is_err() {
                continue;
            }
            ctx.cancel.check()?;
            let measured = round >= warmup;
            match sample(i, measured) {
                Ok(v) => {
                    if let (true, Ok(s)) = (measured, &mut series[i]) {
                        s.push(v);
                    }
                }
                Err(e) if is_interrupted(&e) => return Err(e),
                Err(e) => series[i] = Err(format!("{e:#}")),
            }
        }
    }
    Ok(series)
}

/// Calls `f` on every item from `threads` threads at once; results in the items' order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    break;
                };
                let r = f(item);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item was mapped"))
        .collect()
}

/// Makes `count` containers with `make`, `threads` at a time; stops at the first failure
/// (the containers made so far stay remembered by the engine for clean-up).
pub fn make_containers(
    engine: &Engine,
    count: usize,
    threads: usize,
    make: impl Fn(&Engine) -> Result<String> + Sync,
) -> Result<Vec<String>> {
    let failed = AtomicBool::new(false);
    let slots: Vec<usize> = (0..count).collect();
    let made = parallel_map(&slots, threads, |_| {
        if failed.load(Ordering::Relaxed) {
            return None;
        }
        let r = make(engine);
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        Some(r)
    });
    let mut names = Vec::with_capacity(count);
    let mut first_error = None;
    for r in made.into_iter().flatten() {
        match r {
            Ok(name) => names.push(name),
            Err(e) => {
                // An interruption is the error to report, whatever else failed.
                if first_error.is_none() || is_interrupted(&e) {
                    first_error = Some(e);
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(names),
    }
}

/// A cell summarizing a series with `summary`.
pub fn cell(series: &Series, summary: impl Fn(&[f64]) -> f64) -> Cell {
    match series {
        Ok(s) if !s.is_empty() => Cell::measured(summary(s), s.clone()),
        Ok(_) => Cell::unavailable("no samples"),
        Err(reason) => Cell::unavailable(reason.clone()),
    }
}

/// The median cell of a series.
pub fn median_cell(series: &Series) -> Cell {
    cell(series, stats::median)
}

/// Removes containers at the end of a scenario; a failure is reported, and clean-up tries
/// again at the end of the run.
pub fn remove_quietly(ctx: &Ctx, engine: &Engine, names: &[String]) -> Result<()> {
    match engine.remove(names) {
        Ok(()) => Ok(()),
        Err(e) if is_interrupted(&e) => Err(e),
        Err(e) => {
            ctx.progress
                .println(format!("berth bench: {}: {e:#}", engine.id.label()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_rotate_warm_up_is_dropped_and_failures_stay_out() {
        let plan = Plan::new(true, None);
        let cancel = Cancel::default();
        let progress = Progress::new(0);
        let ctx = Ctx {
            plan: &plan,
            cancel: &cancel,
            progress: &progress,
        };
        let mut order = Vec::new();
        let skip = [None, Some("not there".to_string()), None];
        let series = interleave_subjects(&ctx, 3, &skip, 1, 2, |i, measured| {
            order.push((i, measured));
            match (i, measured) {
                (2, true) => Err(anyhow::anyhow!("broke")),
                _ => Ok(i as f64),
            }
        })
        .unwrap();
        // Round 0 (warm-up): 0 then 2; round 1 starts one further along: 2 fails, then 0;
        // round 2: 0 alone.
        assert_eq!(
            order,
            [(0, false), (2, false), (2, true), (0, true), (0, true)]
        );
        assert_eq!(series[0], Ok(vec![0.0, 0.0]));
        assert_eq!(series[1], Err("not there".to_string()));
        assert_eq!(series[2], Err("broke".to_string()));
        cancel.cancel();
        let err = interleave_subjects(&ctx, 1, &[], 0, 1, |_, _| Ok(1.0)).unwrap_err();
        assert!(is_interrupted(&err));
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<u32> = (0..50).collect();
        let out = parallel_map(&items, 7, |i| i * 2);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(parallel_map(&[] as &[u32], 4, |i| *i).is_empty());
    }
}
