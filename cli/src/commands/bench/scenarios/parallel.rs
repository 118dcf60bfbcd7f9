//! Parallel starts: at each concurrency, that many `run --rm true` at once; containers per
//! second and the latency of each.

use std::time::Instant;

use anyhow::Result;

use super::{interleave, ms, parallel_map, Ctx};
use crate::commands::bench::engine::Engine;
use crate::commands::bench::results::{Better, Row, Scenario};
use crate::commands::bench::stats;

/// Returns the `parallel` scenario: a `throughput-c<N>` and a `latency-c<N>` row per level.
pub fn run(ctx: &Ctx, engines: &[Engine]) -> Result<Vec<Scenario>> {
    let mut skip: Vec<Option<String>> = vec![None; engines.len()];
    let mut throughput_rows = Vec::new();
    let mut latency_rows = Vec::new();
    for &c in &ctx.plan.concurrency {
        ctx.progress
            .phase(format!("parallel starts, {c} at a time"));
        let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
        // One warm-up round at the first level only: the engines are warm by then.
        let warmup = usize::from(c == ctx.plan.concurrency[0]);
        let throughput = interleave(
            ctx,
            engines,
            &skip,
            warmup,
            ctx.plan.parallel_rounds,
            |i, e, measured| {
                let slots: Vec<usize> = (0..c).collect();
                let start = Instant::now();
                let runs = parallel_map(&slots, c, |_| e.run_true());
                let wall = start.elapsed();
                let mut times = Vec::with_capacity(c);
                for r in runs {
                    times.push(ms(r?));
                }
                if measured {
                    latencies[i].extend(times);
                }
                Ok(c as f64 / wall.as_secs_f64())
            },
        )?;
        let mut tp = Row::new(
            format!("throughput-c{c}"),
            format!("{c} at a time"),
            "containers/s",
            Better::Higher,
        );
        let mut lat = Row::new(
            format!("latency-c{c}"),
            format!("{c} at a time, latency p50"),
            "ms",
            Better::Lower,
        );
        for (i, e) in engines.iter().enumerate() {
            tp.set(e.id, super::median_cell(&throughput[i]));
            let lat_series = throughput[i].clone().map(|_| latencies[i].clone());
            lat.set(e.id, super::cell(&lat_series, stats::median));
            if let Err(reason) = &throughput[i] {
                skip[i] = Some(reason.clone());
            }
        }
        throughput_rows.push(tp);
        latency_rows.push(lat);
    }
    throughput_rows.extend(latency_rows);
    Ok(vec![Scenario {
        id: "parallel".into(),
        title: "Parallel starts".into(),
        method: format!(
            "At each concurrency N, N `run --rm --network none IMAGE true` started at once, {} round(s) per engine, engines interleaved; containers/s is N over the wall time of the round (median of rounds), latency the median of every container's CLI wall time.",
            ctx.plan.parallel_rounds
        ),
        rows: throughput_rows,
    }])
}
