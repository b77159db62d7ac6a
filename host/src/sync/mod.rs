//! Sync: fetch from the source through a connector ([`fetch`]), let the
//! connector diff it against the directory, check and translate the plan
//! ([`plan`]), and preview, import or revert it as one recorded run
//! ([`engine`]).

pub mod engine;
pub mod fetch;
pub mod plan;

pub use engine::{RunReport, SyncEngine, SyncError};
pub use fetch::{FetchError, FetchOptions, Fetched, Progress, RetryPolicy, fetch_all};
