//! `concurrency.svg`: the parallel-starts scenario drawn, median latency per container and
//! containers per second against the number started at once, one line per engine.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::engine::EngineId;
use super::results::{Cell, Results};

/// One engine's line: (concurrency index, value) points.
struct Line {
    id: EngineId,
    points: Vec<(f64, f64)>,
}

fn colour(id: EngineId) -> RGBColor {
    match id {
        EngineId::Berthd => RGBColor(31, 119, 180),
        EngineId::Daemonless => RGBColor(214, 39, 40),
        EngineId::DockerCliBerthd => RGBColor(44, 160, 44),
        EngineId::Docker => RGBColor(148, 103, 189),
        EngineId::Podman => RGBColor(255, 127, 14),
        EngineId::BerthdOther => RGBColor(23, 190, 207),
        EngineId::DaemonlessOther => RGBColor(227, 119, 194),
    }
}

/// The lines of rows `<prefix>c<N>` of the `parallel` scenario.
fn lines(r: &Results, prefix: &str) -> Vec<Line> {
    let Some(s) = r.scenarios.iter().find(|s| s.id == "parallel") else {
        return Vec::new();
    };
    r.engines
        .iter()
        .filter(|e| e.available)
        .map(|e| Line {
            id: e.id,
            points: r
                .plan
                .concurrency
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let row = s
                        .rows
                        .iter()
                        .find(|row| row.id == format!("{prefix}c{c}"))?;
                    Some((i as f64, row.cells.get(&e.id).and_then(Cell::value)?))
                })
                .collect(),
        })
        .filter(|l| !l.points.is_empty())
        .collect()
}

/// Draws the chart into `path`.
pub fn draw(r: &Results, path: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("Cannot draw {}: {e}", path.display());
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(600);
    let levels = &r.plan.concurrency;
    panel(
        &left,
        "Latency per container (p50)",
        "ms",
        levels,
        &lines(r, "latency-"),
    )
    .map_err(|e| err(&e))?;
    panel(
        &right,
        "Containers per second",
        "containers/s",
        levels,
        &lines(r, "throughput-"),
    )
    .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    levels: &[usize],
    lines: &[Line],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.15;
    let x_max = levels.len().saturating_sub(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.25..x_max + 0.25, 0.0..y_max)?;
    let label_of = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 0.01 && i >= 0.0 {
            levels
                .get(i as usize)
                .map(|c| c.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc("containers started at once")
        .y_desc(unit)
        .x_labels(levels.len())
        .x_label_formatter(&label_of)
        .y_label_formatter(&|v| {
            if y_max >= 20.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for line in lines {
        let c = colour(line.id);
        chart
            .draw_series(LineSeries::new(line.points.clone(), c.stroke_width(2)))?
            .label(line.id.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(line.points.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
    }
    if !lines.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}
