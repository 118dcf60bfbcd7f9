//! `exec true` latency in a running container.

use anyhow::Result;

use super::{interleave, ms, remove_quietly, Ctx};
use crate::commands::bench::command::is_interrupted;
use crate::commands::bench::engine::Engine;
use crate::commands::bench::results::{Better, Row, Scenario};
use crate::commands::bench::stats;

/// Returns the `exec` scenario. An engine whose `exec` fails on the first try (an engine or
/// mode without exec) is marked unavailable with its error.
pub fn run(ctx: &Ctx, engines: &[Engine]) -> Result<Vec<Scenario>> {
    ctx.progress.phase("`exec true` latency");
    let mut targets: Vec<Option<String>> = vec![None; engines.len()];
    let mut skip: Vec<Option<String>> = vec![None; engines.len()];
    let probe = (|| -> Result<()> {
        for (i, e) in engines.iter().enumerate() {
            match e.start_sleeper() {
                Ok(name) => {
                    let out = e.run(&["exec", &name, "true"])?;
                    if !out.status.success() {
                        ctx.progress
                            .skip((ctx.plan.warmup + ctx.plan.exec_runs) as u64);
                        skip[i] = Some(format!(
                            "`{}`: {}",
                            e.describe(&["exec", "CONTAINER", "true"]),
                            out.reason()
                        ));
                    }
                    targets[i] = Some(name);
                }
                Err(err) if is_interrupted(&err) => return Err(err),
                Err(err) => skip[i] = Some(format!("{err:#}")),
            }
        }
        Ok(())
    })();
    let series = probe.and_then(|()| {
        interleave(
            ctx,
            engines,
            &skip,
            ctx.plan.warmup,
            ctx.plan.exec_runs,
            |i, e, _| {
                let name = targets[i].as_deref().unwrap_or_default();
                Ok(ms(e.run_ok(&["exec", name, "true"])?.elapsed))
            },
        )
    });
    for (e, t) in engines.iter().zip(&targets) {
        if let (Some(name), false) = (t, ctx.cancel.is_cancelled()) {
            remove_quietly(ctx, e, std::slice::from_ref(name))?;
        }
    }
    let series = series?;
    Ok(vec![Scenario {
        id: "exec".into(),
        title: "`exec true` latency".into(),
        method: format!(
            "`exec CONTAINER true` in a running `sleep` container, {} warm-up then {} rounds, engines interleaved; CLI wall time.",
            ctx.plan.warmup, ctx.plan.exec_runs
        ),
        rows: [("p50", 50.0), ("p90", 90.0)]
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
    }])
}
