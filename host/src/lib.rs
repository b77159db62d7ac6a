//! hrsync: imports employees and reporting lines from HR systems into a
//! user directory, through connectors that run as sandboxed WebAssembly
//! components.
//!
//! - [`runtime`]: loads connector components and runs them sandboxed;
//! - [`connectors`]: the bundled Personio connector and connectors found on disk;
//! - [`sync`]: drives a connector through a complete fetch;
//! - [`sandbox`]: a faithful local imitation of the Personio API.

pub mod connectors;
pub mod runtime;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod sync;
