//! The host as users and admins meet it: the JSON API, the pages in a real
//! browser, the command line, and the sandbox checked against Personio's
//! official spec.
//!
//! One test binary, one module per surface: every integration test binary
//! links all of wasmtime, so one binary instead of four keeps CI's build
//! time and disk use down. Run one surface with
//! `cargo test -p hrsync --test host browser::`.

mod api;
mod browser;
mod cli;
mod common;
mod deployment;
mod replicas;
mod sandbox_spec;
mod security;
mod server;
mod tenants;
