//! hrsync: imports employees and reporting lines from HR systems into a
//! user directory, through connectors that run as sandboxed WebAssembly
//! components.
//!
//! - [`model`]: the host's vocabulary — people, fields, plans, connectors —
//!   independent of any contract version;
//! - [`rules`]: the sync rules, defined once, and the canonical diff;
//! - [`runtime`]: loads connector components and runs them sandboxed;
//! - [`accounts`]: accounts with roles, sessions and API tokens;
//! - [`audit`]: the append-only audit log of who did what;
//! - [`data_dir`]: the data directory, private to its owner;
//! - [`connectors`]: the bundled Personio connector and connectors found on disk;
//! - [`directory`]: users, integrations and run history (SQLite by default);
//! - [`secrets`]: encryption at rest for credentials;
//! - [`sync`]: fetch, plan, preview, import and revert;
//! - [`schedule`]: automatic imports at intervals, incremental where possible;
//! - [`webhooks`]: changes the source pushes, imported within seconds;
//! - [`mail`]: invitations and alerts through a transactional outbox and SMTP;
//! - [`config`]: the server's configuration file;
//! - [`web`]: the admin pages, JSON API, health probes and metrics;
//! - [`sandbox`]: a faithful local imitation of the Personio API.

pub mod accounts;
pub mod audit;
pub mod config;
pub mod conformance;
pub mod connectors;
pub mod data_dir;
pub mod directory;
pub mod mail;
pub mod model;
pub mod rules;
pub mod runtime;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod schedule;
pub mod secrets;
pub mod sync;
pub mod tenancy;
pub mod web;
pub mod webhooks;
