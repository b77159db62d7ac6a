//! The generic parts of an hrsync connector, so a connector is mostly its
//! source-specific fetch and mapping.
//!
//! - the bindings of contract 0.4.0: [`types`], the [`Connector`] and
//!   [`Events`] traits to implement (or [`without_events!`] for a source
//!   that cannot push changes), and [`export_connector!`] to export them;
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
//! hrsync_connector_kit::without_events!(Mine);
//!
//! #[cfg(target_family = "wasm")]
//! hrsync_connector_kit::export_connector!(Mine);
//! ```

wit_bindgen::generate!({
    path: "../../wit/0.4.0",
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

/// The types of [`Events`].
pub use exports::hrsync::connector::hr_events as events;
/// What a connector whose source pushes changes implements (0.4.0).
pub use exports::hrsync::connector::hr_events::Guest as Events;
/// What a connector implements.
pub use exports::hrsync::connector::hr_source::Guest as Connector;

/// Implements [`Events`] for a connector whose source cannot push changes:
/// `describe-events` is `none`, and the host never calls the rest.
#[macro_export]
macro_rules! without_events {
    ($connector:ty) => {
        impl $crate::Events for $connector {
            fn describe_events() -> Option<$crate::events::EventsInfo> {
                None
            }

            fn subscribe(
                _: Vec<$crate::types::Entry>,
                _: String,
                _: String,
            ) -> Result<$crate::events::Subscription, $crate::types::ConnectorError> {
                Err($crate::types::ConnectorError::InvalidSettings("this source cannot push changes".into()))
            }

            fn unsubscribe(_: Vec<$crate::types::Entry>, _: String) -> Result<(), $crate::types::ConnectorError> {
                Ok(())
            }

            fn handle_event(
                _: Vec<$crate::types::Entry>,
                _: Vec<$crate::types::Entry>,
                _: String,
            ) -> Result<$crate::events::Event, $crate::types::ConnectorError> {
                Ok($crate::events::Event::Ignored("this source cannot push changes".into()))
            }

            fn fetch_people(
                _: Vec<$crate::types::Entry>,
                _: Vec<String>,
            ) -> Result<Vec<$crate::types::RawRecord>, $crate::types::ConnectorError> {
                Err($crate::types::ConnectorError::InvalidSettings("this source cannot push changes".into()))
            }
        }
    };
}
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
