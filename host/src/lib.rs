//! hrsync: imports employees and reporting lines from HR systems into a
//! user directory, through connectors that run as sandboxed WebAssembly
//! components.
//!
//! - [`runtime`]: loads connector components and runs them sandboxed;
//! - [`accounts`]: admin accounts, sessions and API tokens;
//! - [`connectors`]: the bundled Personio connector and connectors found on disk;
//! - [`directory`]: users, integrations and run history (SQLite by default);
//! - [`secrets`]: encryption at rest for credentials;
//! - [`sync`]: fetch, plan, preview, import and revert;
//! - [`web`]: the admin JSON API and health probes;
//! - [`sandbox`]: a faithful local imitation of the Personio API.

pub mod accounts;
pub mod config;
pub mod connectors;
pub mod directory;
pub mod runtime;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod secrets;
pub mod sync;
pub mod web;
