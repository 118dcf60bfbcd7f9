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
