//! What the command line makes of an error: the exit code scripts rely on
//! (the README lists them) and, where a flag is the way on, a hint naming it.
//! The library's errors say what happened; only here do they meet flags.

use hrsync::directory::StoreError;
use hrsync::model::ConnectorError;
use hrsync::runtime::{LoadError, RunError};
use hrsync::sync::{FetchError, SyncError};

pub const INVALID_INPUT: u8 = 2;
pub const SOURCE_FAILED: u8 = 3;
pub const CONNECTOR_FAILED: u8 = 4;
pub const BLOCKED: u8 = 5;
pub const DRIFT: u8 = 6;
pub const ALREADY_RUNNING: u8 = 7;
pub const CANCELLED: u8 = 8;
/// hrsync itself failed; not a documented outcome.
pub const INTERNAL: u8 = 70;

/// The exit code for `e`: the library error inside it decides; anything
/// else is invalid input (a bad flag, a missing file).
pub fn code(e: &anyhow::Error) -> u8 {
    if let Some(sync) = e.downcast_ref::<SyncError>() {
        return sync_code(sync);
    }
    if let Some(store) = e.downcast_ref::<StoreError>() {
        return store_code(store);
    }
    if let Some(fetch) = e.downcast_ref::<FetchError>() {
        return fetch_code(fetch);
    }
    if let Some(run) = e.downcast_ref::<RunError>() {
        return run_code(run);
    }
    if e.downcast_ref::<LoadError>().is_some() {
        return CONNECTOR_FAILED;
    }
    INVALID_INPUT
}

/// The flag that gets past `e`, when one does.
pub fn hint(e: &anyhow::Error) -> Option<&'static str> {
    match e.downcast_ref::<SyncError>()? {
        SyncError::Drift { .. } => Some("import anyway with --accept-drift, or preview again"),
        SyncError::Blocked { .. } => Some("after checking the source, import anyway with --override"),
        _ => None,
    }
}

fn sync_code(e: &SyncError) -> u8 {
    match e {
        SyncError::Store(s) => store_code(s),
        SyncError::Fetch { source, .. } => fetch_code(source),
        SyncError::Connector { source, .. } | SyncError::Check(source) => run_code(source),
        SyncError::Plan { .. } | SyncError::TimedOut { .. } => CONNECTOR_FAILED,
        SyncError::Blocked { .. } => BLOCKED,
        SyncError::Drift { .. } => DRIFT,
        SyncError::Cancelled { .. } => CANCELLED,
        SyncError::Invalid(_) => INVALID_INPUT,
        SyncError::Internal(_) => INTERNAL,
    }
}

fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::AlreadyRunning(_) | StoreError::LeaseLost(_) => ALREADY_RUNNING,
        StoreError::Cancelled(_) => CANCELLED,
        _ => INVALID_INPUT,
    }
}

fn fetch_code(e: &FetchError) -> u8 {
    match e.run_error() {
        Some(run) => run_code(run),
        None if matches!(e, FetchError::Incomplete { .. }) => SOURCE_FAILED,
        None => CONNECTOR_FAILED,
    }
}

fn run_code(e: &RunError) -> u8 {
    match e {
        RunError::Source { error: ConnectorError::InvalidSettings(_), .. } => INVALID_INPUT,
        RunError::Source { .. } => SOURCE_FAILED,
        _ => CONNECTOR_FAILED,
    }
}
