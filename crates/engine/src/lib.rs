//! The berth engine: images, containers, their state on disk and their events.
//!
//! The engine never knows its transport: berthd calls it from HTTP handlers and
//! `berth --daemonless` calls it in-process. Every operation takes the [`Caller`] who asked,
//! so audit and policy can be added without touching the transports.

pub mod caller;
pub mod error;
pub mod fsutil;
pub mod image;

pub use caller::Caller;
pub use error::ErrorKind;
pub mod cgroups;
pub mod config;
pub mod events;
pub mod rootfs;
pub mod spec;
