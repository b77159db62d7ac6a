//! The generic parts of an hrsync connector, so a connector is mostly its
//! source-specific fetch and mapping.
//!
//! - the `hr-source` bindings: [`types`], the [`Connector`] trait to
//!   implement, and [`export_connector!`] to export it;
//! - [`diff`]: the canonical diff (create, update, deactivate, reactivate,
//!   link by email, missing), computed by the host under its own rules,
//!   which every connector can return as is;
//! - [`settings`]: reading the admin's settings with errors that name them;
//! - [`dates`]: calendar dates from the usual text forms, validated;
//! - [`errors`]: HTTP statuses to the contract's errors;
//! - [`paging`]: cursors for offset paging and de-duplication by id.
//!
//! ```ignore
//! use hrsync_connector_kit::{Connector, types::*};
//!
//! struct Mine;
//! impl Connector for Mine { /* describe, check, fetch_page, map_fields, diff, canonical_creates */ }
//!
//! #[cfg(target_family = "wasm")]
//! hrsync_connector_kit::export_connector!(Mine);
//! ```

wit_bindgen::generate!({
    path: "../../wit/0.3.0",
    world: "hr-connector",
    additional_derives: [PartialEq, Eq],
    pub_export_macro: true,
    export_macro_name: "export_connector",
    default_bindings_module: "hrsync_connector_kit",
});

pub mod dates;
pub mod diff;
pub mod errors;
pub mod paging;
pub mod settings;

/// What a connector implements.
pub use exports::hrsync::connector::hr_source::Guest as Connector;
/// The contract's types.
pub use hrsync::connector::types;

/// Reports progress within a long call (contract 0.2.0): `done` of `total`.
pub fn progress(done: u64, total: Option<u64>) {
    #[cfg(target_family = "wasm")]
    hrsync::connector::host::progress(done, total);
    #[cfg(not(target_family = "wasm"))]
    let _ = (done, total);
}

/// Logs a line to the run's log (never secrets).
pub fn log(level: hrsync::connector::host::Level, message: &str) {
    #[cfg(target_family = "wasm")]
    hrsync::connector::host::log(level, message);
    #[cfg(not(target_family = "wasm"))]
    let _ = (level, message);
}
