//! Sync: fetch from the source through a connector ([`fetch`]), bound and
//! fingerprint what it returns ([`intake`]), let the connector diff it
//! against the directory, check every claim of the plan and translate it
//! ([`plan`]), and preview, import or revert it as one recorded run that
//! holds its integration ([`engine`]); a refused import says who drifted
//! since its preview ([`drift`]).

pub mod drift;
pub mod engine;
pub mod fetch;
pub mod intake;
pub mod plan;

pub use engine::{RunReport, SyncEngine, SyncError};
pub use fetch::{FetchError, FetchLimits, FetchOptions, Fetched, Progress, RetryPolicy, fetch_all};
