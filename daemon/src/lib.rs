//! berthd: the Docker Engine API over a Unix socket, translated into engine calls.
//!
//! HTTP lives here and only here: handlers parse a request, call one engine method with
//! the caller's identity, and turn the result (or the error) into Docker's response.

pub mod error;
pub mod handlers;
pub mod params;
pub mod peer;
pub mod router;

pub use router::app;
