//! Serde types of the Docker Engine API (v1.41) that berth serves and consumes.
//!
//! Shared by the engine (which produces these shapes), berthd (which serves them) and the
//! `berth` CLI (which reads them), so that output is identical whether a command went
//! through the daemon or ran daemonless.
//!
//! Request types are lenient, as real clients demand: every field is optional, `null`
//! means "default", and unknown fields are kept (and echoed back in inspect) rather than
//! refused. Response types follow the field order and null-ness of a real dockerd.

pub mod container;
pub mod detach;
pub mod duration;
pub mod exec;
pub mod filters;
pub mod image;
pub mod observe;
pub mod stdcopy;
pub mod strslice;
pub mod system;
pub mod version;

pub use container::*;
pub use exec::*;
pub use image::*;
pub use observe::*;
pub use system::*;

pub use version::{API_VERSION, MIN_API_VERSION};

/// The body of every error response: `{"message": "..."}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}
