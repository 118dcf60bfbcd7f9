//! The results of a run, as written to `results.json`: every raw sample, the value the table
//! shows for it, and why a cell is missing when it is.

use std::collections::BTreeMap;

use serde::Serialize;

use super::engine::EngineId;
use super::machine::Machine;
use super::Plan;

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Results {
    /// Bumped when the shape of this document changes.
    pub schema: u32,
    /// The command line, to reproduce the run.
    pub command: String,
    /// RFC 3339, when the run started.
    pub started: String,
    pub wall_seconds: f64,
    /// The 1-minute load average when the scenarios were done: other work on the machine.
    pub load_average_at_end: f64,
    pub quick: bool,
    pub baseline: EngineId,
    pub machine: Machine,
    pub plan: Plan,
    /// How CPU time was accounted.
    pub cpu_accounting: String,
    pub engines: Vec<EngineReport>,
    pub scenarios: Vec<Scenario>,
    /// The same container started without an engine, measured with `run-rm` (absent when
    /// that scenario was not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<FloorReport>,
}

/// The floor under the start rows: the container started by a runtime alone and by the
/// kernel alone, in the same rounds as the engines' `run --rm true`.
#[derive(Debug, Serialize)]
pub struct FloorReport {
    pub title: String,
    /// What was done and measured.
    pub method: String,
    /// The engines' row this floor is compared with (`run-rm/p50`).
    pub compared_with: String,
    /// The cgroup parent the runtimes' containers were made under (removed at the end).
    pub cgroup_parent: String,
    pub rows: Vec<FloorRow>,
}

/// One way of starting the container without an engine.
#[derive(Debug, Serialize)]
pub struct FloorRow {
    /// Stable: `berth-runtime`, `runc`, `unshare-chroot`.
    pub id: String,
    pub label: String,
    /// What one sample runs.
    pub how: String,
    /// The median wall time in ms, with every sample (or why there is none).
    pub p50: Cell,
    /// The 90th percentile in ms, of the same samples.
    pub p90: Option<f64>,
    /// How far each engine's `compared_with` value is above this floor.
    pub engines: BTreeMap<EngineId, Gap>,
}

/// An engine's distance from a floor.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Gap {
    Measured {
        /// The engine's value minus the floor's, in ms.
        above_ms: f64,
        /// The engine's value divided by the floor's.
        ratio: f64,
    },
    Unavailable {
        reason: String,
    },
}

impl Gap {
    /// The gap between an engine's cell and a floor's.
    pub fn between(engine: &Cell, floor: &Cell) -> Self {
        match (engine, floor) {
            (_, Cell::Unavailable { reason }) => Gap::Unavailable {
                reason: reason.clone(),
            },
            (Cell::Unavailable { reason }, _) => Gap::Unavailable {
                reason: reason.clone(),
            },
            _ => match (engine.value(), floor.value()) {
                (Some(e), Some(f)) if f > 0.0 => Gap::Measured {
                    above_ms: e - f,
                    ratio: e / f,
                },
                _ => Gap::Unavailable {
                    reason: "no samples".to_string(),
                },
            },
        }
    }
}

/// One engine of the run.
#[derive(Debug, Serialize)]
pub struct EngineReport {
    pub id: EngineId,
    pub label: String,
    pub available: bool,
    /// Why it could not be measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How the bench reached it.
    pub how: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One scenario: a few rows of the table.
#[derive(Debug, Serialize)]
pub struct Scenario {
    /// Stable: `run-rm`, `cpu`, `parallel`, `ps`, `inspect`, `exec`, `memory`, `daemon-kill`,
    /// `fifty`.
    pub id: String,
    pub title: String,
    /// What was done and measured, in one or two sentences.
    pub method: String,
    pub rows: Vec<Row>,
}

/// One measured quantity, for every engine.
#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub label: String,
    pub unit: String,
    pub better: Better,
    pub cells: BTreeMap<EngineId, Cell>,
}

/// Which direction is better, for reading ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
    /// A count or a state: no ratio is shown.
    Neither,
}

/// One engine's value of a row.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Cell {
    Measured {
        /// What the table shows (a median, a percentile, a mean or a count, as the row says).
        value: f64,
        /// The raw samples it summarizes.
        samples: Vec<f64>,
    },
    Unavailable {
        reason: String,
    },
}

impl Cell {
    /// A value summarizing `samples`.
    pub fn measured(value: f64, samples: Vec<f64>) -> Self {
        Cell::Measured { value, samples }
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        Cell::Unavailable {
            reason: reason.into(),
        }
    }

    /// The value, when measured.
    pub fn value(&self) -> Option<f64> {
        match self {
            Cell::Measured { value, .. } if value.is_finite() => Some(*value),
            _ => None,
        }
    }
}

impl Row {
    pub fn new(
        id: impl Into<String>,
        label: impl Into<String>,
        unit: &str,
        better: Better,
    ) -> Self {
        Self {
            id: id.into(),
            label: label.into(),
            unit: unit.to_string(),
            better,
            cells: BTreeMap::new(),
        }
    }

    /// Sets an engine's cell.
    pub fn set(&mut self, engine: EngineId, cell: Cell) {
        self.cells.insert(engine, cell);
    }

    /// Builder form of [`Row::set`] for a list of cells.
    pub fn with(mut self, cells: impl IntoIterator<Item = (EngineId, Cell)>) -> Self {
        for (e, c) in cells {
            self.set(e, c);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_differences_and_ratios_or_say_why_not() {
        let floor = Cell::measured(20.0, vec![20.0]);
        match Gap::between(&Cell::measured(28.0, vec![28.0]), &floor) {
            Gap::Measured { above_ms, ratio } => {
                assert_eq!(above_ms, 8.0);
                assert_eq!(ratio, 1.4);
            }
            g => panic!("{g:?}"),
        }
        let gone = Cell::unavailable("runc is not on PATH");
        assert!(matches!(
            Gap::between(&Cell::measured(28.0, vec![28.0]), &gone),
            Gap::Unavailable { reason } if reason == "runc is not on PATH"
        ));
        assert!(matches!(
            Gap::between(&Cell::unavailable("podman: not there"), &floor),
            Gap::Unavailable { reason } if reason == "podman: not there"
        ));
        assert!(matches!(
            Gap::between(&Cell::measured(f64::NAN, vec![]), &floor),
            Gap::Unavailable { .. }
        ));
    }
}
