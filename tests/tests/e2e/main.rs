//! End-to-end tests with the real compiled connectors, the hostile test
//! components and the sandbox.
//!
//! One test binary, one module per subject: every integration test binary
//! links all of wasmtime, so one binary instead of seven keeps CI's build
//! time and disk use down. Run one subject with
//! `cargo test -p hrsync-e2e --test e2e automation::`.

mod automation;
mod conformance;
mod containment;
mod csv;
mod hostile;
mod personio;
mod personio_v2;
mod postgres;
mod python;
mod runs;
mod served;
mod sync;
mod versions;
mod webhooks;
