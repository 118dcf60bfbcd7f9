//! `results.md`: one table of every scenario's rows, engines as columns, each value with its
//! ratio to the baseline measured in the same run; under it the floor (the container started
//! without an engine) with each engine's distance from it; then why cells are missing and
//! how each scenario was measured.

use std::fmt::Write;

use super::results::{Better, Cell, FloorReport, Gap, Results};

/// A number as the table shows it: three significant digits or so.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Footnotes: each distinct reason once, numbered in order of appearance.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn mark(&mut self, reason: &str) -> usize {
        let reason = reason.replace('\n', " / ");
        match self.0.iter().position(|r| *r == reason) {
            Some(i) => i + 1,
            None => {
                self.0.push(reason);
                self.0.len()
            }
        }
    }
}

/// The markdown document.
pub fn markdown(r: &Results) -> String {
    let mut out = String::new();
    let mut notes = Notes::default();
    let engines: Vec<&super::results::EngineReport> = r.engines.iter().collect();
    let baseline_label = r.baseline.label();
    let _ = writeln!(out, "# berth bench\n");
    let _ = writeln!(
        out,
        "`{}`, started {}, took {:.0} s.\n",
        r.command, r.started, r.wall_seconds
    );
    let _ = writeln!(
        out,
        "Machine: {}, {:.2} at the end.\n",
        r.machine.summary(),
        r.load_average_at_end
    );
    let _ = writeln!(out, "Engines:\n");
    for e in &engines {
        let baseline = if e.id == r.baseline {
            " (baseline)"
        } else {
            ""
        };
        let status = match (&e.reason, &e.version) {
            (Some(reason), _) => format!("unavailable: {}", reason.replace('\n', " / ")),
            (None, Some(v)) => format!("{}; version {v}", e.how),
            (None, None) => e.how.clone(),
        };
        let _ = writeln!(out, "- **{}**{baseline}: {status}", e.label);
    }
    let _ = writeln!(
        out,
        "\nValues are medians unless the metric says otherwise; in brackets, the ratio to {baseline_label} measured in the same run (for ms and MiB lower is better, for containers/s higher).\n"
    );
    let _ = write!(out, "| scenario | metric | unit |");
    for e in &engines {
        let _ = write!(out, " {} |", e.label);
    }
    let _ = write!(out, "\n|---|---|---|");
    for _ in &engines {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for s in &r.scenarios {
        for (k, row) in s.rows.iter().enumerate() {
            let title = if k == 0 { s.title.as_str() } else { "" };
            let _ = write!(out, "| {title} | {} | {} |", row.label, row.unit);
            let base = row.cells.get(&r.baseline).and_then(Cell::value);
            for e in &engines {
                let text = match (row.cells.get(&e.id), &e.reason) {
                    (Some(Cell::Measured { value, .. }), _) if value.is_finite() => {
                        let v = if row.better == Better::Neither {
                            format!("{value:.0}")
                        } else {
                            number(*value)
                        };
                        match (base, row.better) {
                            (Some(b), Better::Lower | Better::Higher)
                                if e.id != r.baseline && b > 0.0 =>
                            {
                                format!("{v} ({:.2}×)", value / b)
                            }
                            _ => v,
                        }
                    }
                    (Some(Cell::Unavailable { reason }), _) => {
                        format!("n/a [{}]", notes.mark(reason))
                    }
                    (_, Some(reason)) => {
                        format!("n/a [{}]", notes.mark(&format!("{}: {reason}", e.label)))
                    }
                    _ => format!("n/a [{}]", notes.mark("not measured")),
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
    }
    if let Some(floor) = &r.floor {
        floor_table(&mut out, &mut notes, floor, &engines);
    }
    if !notes.0.is_empty() {
        let _ = writeln!(out, "\nWhy a value is missing:\n");
        for (i, reason) in notes.0.iter().enumerate() {
            let _ = writeln!(out, "{}. {reason}", i + 1);
        }
    }
    let _ = writeln!(out, "\n## How it was measured\n");
    for s in &r.scenarios {
        let _ = writeln!(out, "- **{}** (`{}`): {}", s.title, s.id, s.method);
    }
    if let Some(f) = &r.floor {
        let _ = writeln!(out, "- **{}** (`floor`): {}", f.title, f.method);
    }
    let _ = writeln!(
        out,
        "- CPU accounting: {}.\n- Every container: the busybox image built by scripts/make-busybox-image.sh, loaded into each engine as `{}`, `--network none`.\n- Raw samples: results.json; latency and throughput against concurrency: concurrency.svg.",
        r.cpu_accounting,
        super::image::TAG
    );
    out
}

/// The floor's own table: each way of starting the container without an engine, its p50
/// and p90, and how far each engine's `run --rm true` p50 is above it.
fn floor_table(
    out: &mut String,
    notes: &mut Notes,
    floor: &FloorReport,
    engines: &[&super::results::EngineReport],
) {
    let _ = writeln!(
        out,
        "\n**{}**: each engine's `run --rm true` p50 above the floor, in ms (in brackets, their ratio).\n",
        floor.title
    );
    let _ = write!(out, "| floor | p50 ms | p90 ms |");
    for e in engines {
        let _ = write!(out, " {} |", e.label);
    }
    let _ = write!(out, "\n|---|---:|---:|");
    for _ in engines {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for row in &floor.rows {
        let (p50, p90) = match &row.p50 {
            Cell::Measured { value, .. } if value.is_finite() => (
                number(*value),
                row.p90.map_or_else(|| "n/a".to_string(), number),
            ),
            Cell::Unavailable { reason } => {
                let mark = format!("n/a [{}]", notes.mark(reason));
                (mark.clone(), mark)
            }
            _ => {
                let mark = format!("n/a [{}]", notes.mark("no samples"));
                (mark.clone(), mark)
            }
        };
        let _ = write!(out, "| {} | {p50} | {p90} |", row.label);
        for e in engines {
            let text = match row.engines.get(&e.id) {
                Some(Gap::Measured { above_ms, ratio }) => {
                    format!("{} ({ratio:.2}×)", Signed(*above_ms))
                }
                Some(Gap::Unavailable { reason }) => format!("n/a [{}]", notes.mark(reason)),
                None => format!("n/a [{}]", notes.mark("not measured")),
            };
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
}

/// A difference as the table shows it: [`number`] with its sign.
struct Signed(f64);

impl std::fmt::Display for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0.0 { "-" } else { "+" };
        write!(f, "{sign}{}", number(self.0.abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_about_three_digits() {
        assert_eq!(number(1234.4), "1234");
        assert_eq!(number(152.6), "153");
        assert_eq!(number(15.26), "15.3");
        assert_eq!(number(1.526), "1.53");
        assert_eq!(number(0.0), "0.00");
    }

    fn sample_results() -> Results {
        use super::super::engine::EngineId;
        use super::super::results::{EngineReport, Row, Scenario};
        let engine = |id: EngineId, reason: Option<&str>| EngineReport {
            id,
            label: id.label().to_string(),
            available: reason.is_none(),
            reason: reason.map(String::from),
            how: "somehow".to_string(),
            version: None,
        };
        let row = Row::new("p50", "p50", "ms", Better::Lower).with([
            (EngineId::Berthd, Cell::measured(100.0, vec![100.0])),
            (EngineId::Daemonless, Cell::measured(130.0, vec![130.0])),
            (EngineId::Podman, Cell::unavailable("podman: not there")),
        ]);
        let count = Row::new("running", "running", "of 10", Better::Neither).with([
            (EngineId::Berthd, Cell::measured(10.0, vec![10.0])),
            (EngineId::Daemonless, Cell::unavailable("no daemon")),
            (EngineId::Podman, Cell::unavailable("podman: not there")),
        ]);
        Results {
            schema: 1,
            command: "berth bench".into(),
            started: "2026-01-01T00:00:00Z".into(),
            wall_seconds: 1.0,
            load_average_at_end: 0.5,
            quick: true,
            baseline: EngineId::Berthd,
            machine: super::super::machine::Machine::describe(),
            plan: super::super::Plan::new(true, None),
            cpu_accounting: "cgroups".into(),
            engines: vec![
                engine(EngineId::Berthd, None),
                engine(EngineId::Daemonless, None),
                engine(EngineId::Podman, Some("not there")),
            ],
            scenarios: vec![Scenario {
                id: "run-rm".into(),
                title: "Latency".into(),
                method: "timed".into(),
                rows: vec![row, count],
            }],
            floor: None,
        }
    }

    #[test]
    fn the_table_has_ratios_to_the_baseline_and_notes_for_gaps() {
        let md = markdown(&sample_results());
        assert!(
            md.contains("| Latency | p50 | ms | 100 | 130 (1.30×) | n/a [1] |"),
            "{md}"
        );
        assert!(
            md.contains("|  | running | of 10 | 10 | n/a [2] | n/a [1] |"),
            "{md}"
        );
        assert!(md.contains("1. podman: not there\n2. no daemon\n"), "{md}");
        assert!(md.contains("- **berth → berthd** (baseline): somehow"));
        assert!(md.contains("- **podman**: unavailable: not there"));
    }

    #[test]
    fn the_floor_has_its_own_table_with_each_engines_distance() {
        use super::super::engine::EngineId;
        use super::super::results::{FloorReport, FloorRow};
        let mut r = sample_results();
        let row = |id: &str, label: &str, p50: Cell, p90, gaps: Vec<(EngineId, Gap)>| FloorRow {
            id: id.into(),
            label: label.into(),
            how: "somehow".into(),
            p50,
            p90,
            engines: gaps.into_iter().collect(),
        };
        let gone = || Gap::Unavailable {
            reason: "podman: not there".into(),
        };
        r.floor = Some(FloorReport {
            title: "The floor".into(),
            method: "alone".into(),
            compared_with: "run-rm/p50".into(),
            cgroup_parent: "berth-bench-1-floor".into(),
            rows: vec![
                row(
                    "runc",
                    "`runc` alone",
                    Cell::measured(80.0, vec![80.0]),
                    Some(90.0),
                    vec![
                        (
                            EngineId::Berthd,
                            Gap::Measured {
                                above_ms: 20.0,
                                ratio: 1.25,
                            },
                        ),
                        (
                            EngineId::Daemonless,
                            Gap::Measured {
                                above_ms: 50.0,
                                ratio: 1.625,
                            },
                        ),
                        (EngineId::Podman, gone()),
                    ],
                ),
                row(
                    "unshare-chroot",
                    "`unshare` + `chroot`",
                    Cell::unavailable("unshare is not on PATH"),
                    None,
                    vec![
                        (
                            EngineId::Berthd,
                            Gap::Unavailable {
                                reason: "unshare is not on PATH".into(),
                            },
                        ),
                        (
                            EngineId::Daemonless,
                            Gap::Unavailable {
                                reason: "unshare is not on PATH".into(),
                            },
                        ),
                        (EngineId::Podman, gone()),
                    ],
                ),
            ],
        });
        let md = markdown(&r);
        assert!(
            md.contains("| floor | p50 ms | p90 ms | berth → berthd | berth --daemonless | podman |\n|---|---:|---:|---:|---:|---:|\n"),
            "{md}"
        );
        assert!(
            md.contains("| `runc` alone | 80.0 | 90.0 | +20.0 (1.25×) | +50.0 (1.62×) | n/a [1] |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| `unshare` + `chroot` | n/a [3] | n/a [3] | n/a [3] | n/a [3] | n/a [1] |"
            ),
            "{md}"
        );
        assert!(md.contains("\n3. unshare is not on PATH\n"), "{md}");
        assert!(md.contains("- **The floor** (`floor`): alone"), "{md}");
        // The main table ends before the floor's: its rows are the scenarios' alone.
        let main: Vec<&str> = md
            .lines()
            .skip_while(|l| !l.starts_with("| scenario |"))
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(main.len(), 2 + 2);
    }

    #[test]
    fn signed_differences_keep_their_sign() {
        assert_eq!(Signed(7.123).to_string(), "+7.12");
        assert_eq!(Signed(-0.5).to_string(), "-0.50");
        assert_eq!(Signed(25.3).to_string(), "+25.3");
    }

    #[test]
    fn notes_are_numbered_once_each() {
        let mut n = Notes::default();
        assert_eq!(n.mark("a"), 1);
        assert_eq!(n.mark("b\nc"), 2);
        assert_eq!(n.mark("a"), 1);
        assert_eq!(n.0[1], "b / c");
    }
}
