//! The berth engine: images, containers, their state on disk and their events.
//!
//! The engine never knows its transport: berthd calls it from HTTP handlers and
//! `berth --daemonless` calls it in-process. Every operation takes the [`Caller`] who asked,
//! so audit and policy can be added without touching the transports.

pub mod build;
pub mod caller;
pub mod cgroups;
pub mod commit;
pub mod config;
pub mod container;
pub mod distribution;
pub mod engine;
pub mod error;
pub mod events;
pub mod fsutil;
pub mod image;
pub mod images;
pub mod journal;
pub mod kernel;
pub mod lock;
pub mod process;
pub mod rootfs;
pub mod spec;
pub mod store;
pub mod system;
pub(crate) mod tarfs;
pub mod timestamp;

pub use caller::Caller;
pub use config::EngineConfig;
pub use engine::{Engine, EngineError};
pub use error::ErrorKind;
