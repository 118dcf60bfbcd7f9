//! Dockerfile rebuilds: a 10-step Dockerfile rebuilt with a warm cache, and rebuilt after a
//! one-line change to a late `COPY`, which must rebuild only the steps after it. The docker
//! CLI builds with its classic builder (`DOCKER_BUILDKIT=0`), the same API berthd serves.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{interleave, ms, Ctx};
use crate::commands::bench::engine::Engine;
use crate::commands::bench::results::{Better, Cell, Row, Scenario};
use crate::commands::bench::stats;

/// Steps before the late COPY that a change to it must take from the cache.
const CACHED_BEFORE_LATE: usize = 7;

fn dockerfile(image: &str) -> String {
    format!(
        "FROM {image}\nENV APP=/app\nWORKDIR /app\nCOPY a.txt .\nRUN cat a.txt > a.out\nLABEL bench=build\nCOPY b.txt .\nRUN cat b.txt > b.out\nCOPY late.txt .\nRUN cat late.txt > late.out\n"
    )
}

/// A context directory per engine (their images may have different names).
fn contexts(engines: &[Engine]) -> Result<(tempfile::TempDir, Vec<PathBuf>)> {
    let tmp = tempfile::Builder::new()
        .prefix("berth-bench-build-")
        .tempdir()
        .context("Cannot create the build contexts")?;
    let mut dirs = Vec::new();
    for (i, e) in engines.iter().enumerate() {
        let dir = tmp.path().join(format!("ctx{i}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("Dockerfile"), dockerfile(&e.image))?;
        std::fs::write(dir.join("a.txt"), "a\n")?;
        std::fs::write(dir.join("b.txt"), "b\n")?;
        std::fs::write(dir.join("late.txt"), "late 0\n")?;
        dirs.push(dir);
    }
    Ok((tmp, dirs))
}

/// The image name a scenario's builds get (not a container: nothing to forget).
fn tag(e: &Engine) -> String {
    let name = e.new_name();
    e.forget(std::slice::from_ref(&name));
    format!("{name}-build:latest")
}

/// Returns the `build` scenario.
pub fn run(ctx: &Ctx, engines: &[Engine]) -> Result<Vec<Scenario>> {
    ctx.progress
        .phase("build: warm-cache rebuild, and a late COPY change");
    let (_tmp, dirs) = contexts(engines)?;
    let tags: Vec<String> = engines.iter().map(tag).collect();
    let build = |i: usize, e: &Engine| -> Result<crate::commands::bench::command::Outcome> {
        e.run_ok(&["build", "-t", &tags[i], &dirs[i].to_string_lossy()])
    };
    // A cold build fills the cache; an engine that cannot build is left out with why.
    let mut skip: Vec<Option<String>> = vec![None; engines.len()];
    for (i, e) in engines.iter().enumerate() {
        if let Err(err) = build(i, e) {
            if crate::commands::bench::command::is_interrupted(&err) {
                return Err(err);
            }
            skip[i] = Some(format!("{err:#}"));
        }
    }
    let warm = interleave(
        ctx,
        engines,
        &skip,
        ctx.plan.warmup,
        ctx.plan.exec_runs,
        |i, e, _| {
            let out = build(i, e)?;
            let cached = out.stdout().matches("Using cache").count();
            if cached != 9 {
                bail!("a warm rebuild took {cached} of 9 steps from the cache");
            }
            Ok(ms(out.elapsed))
        },
    )?;
    let mut round = 0usize;
    let mut rebuilt: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
    let late = interleave(ctx, engines, &skip, 0, ctx.plan.exec_runs, |i, e, _| {
        round += 1;
        change_late(&dirs[i], round)?;
        let out = build(i, e)?;
        let cached = out.stdout().matches("Using cache").count();
        rebuilt[i].push((9 - cached.min(9)) as f64);
        if cached != CACHED_BEFORE_LATE {
            bail!("after a late COPY change {cached} steps came from the cache, not {CACHED_BEFORE_LATE}");
        }
        Ok(ms(out.elapsed))
    })?;
    for (i, e) in engines.iter().enumerate() {
        if skip[i].is_none() && !ctx.cancel.is_cancelled() {
            // Untagging the last build prunes its steps; the earlier ones went as cache.
            let _ = e.run(&["rmi", "-f", &tags[i]]);
            let _ = e.run(&["image", "prune", "-f"]);
        }
    }
    let row = |id: &str, label: &str, series: &[super::Series], p: f64| {
        Row::new(id, label, "ms", Better::Lower).with(
            engines
                .iter()
                .zip(series)
                .map(|(e, s)| (e.id, super::cell(s, |v| stats::percentile(v, p)))),
        )
    };
    let steps = Row::new(
        "late-steps",
        "steps rebuilt after the late change",
        "steps",
        Better::Neither,
    )
    .with(engines.iter().enumerate().map(|(i, e)| {
        let cell = match (&late[i], rebuilt[i].is_empty()) {
            (Ok(_), false) => Cell::measured(stats::median(&rebuilt[i]), rebuilt[i].clone()),
            (Err(reason), _) => Cell::unavailable(reason.clone()),
            _ => Cell::unavailable("no samples"),
        };
        (e.id, cell)
    }));
    Ok(vec![Scenario {
        id: "build".into(),
        title: "Dockerfile rebuilds".into(),
        method: format!(
            "A 10-step Dockerfile (ENV, WORKDIR, three COPY, three RUN, LABEL) built once cold, then rebuilt with every step cached ({} warm-up, {} rounds), then rebuilt after a one-line change to its late COPY ({} rounds; steps 2-8 must come from the cache); engines interleaved; CLI wall time of `build -t`. The docker CLI uses its classic builder (DOCKER_BUILDKIT=0).",
            ctx.plan.warmup, ctx.plan.exec_runs, ctx.plan.exec_runs
        ),
        rows: vec![
            row("warm-p50", "warm-cache rebuild p50", &warm, 50.0),
            row("warm-p90", "warm-cache rebuild p90", &warm, 90.0),
            row("late-p50", "late COPY change p50", &late, 50.0),
            steps,
        ],
    }])
}

fn change_late(dir: &Path, round: usize) -> Result<()> {
    std::fs::write(dir.join("late.txt"), format!("late {round}\n"))
        .context("Cannot change the late COPY's file")
}
