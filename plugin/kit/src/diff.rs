//! The canonical diff: directory vs. incoming people → change plan, under
//! the host's own sync rules.
//!
//! It runs in the host (`host.canonical-diff`, contract 0.3.0), so a
//! connector that returns it agrees with the host's checks by construction
//! and never carries a copy of the rules. The rules are stated exactly in
//! `wit/0.3.0/hr-source.wit` and in the guide.

use crate::types::{DiffOptions, DirectoryUser, Person, PersonStatus, Plan};

/// The plan that makes the directory match the source. New directory users
/// are created only for people whose status is in `create`; people already
/// in the directory are always kept up to date.
///
/// # Panics
/// Outside a component: only the hrsync host provides the rules.
pub fn diff(create: &[PersonStatus], current: &[DirectoryUser], incoming: &[Person], options: &DiffOptions) -> Plan {
    #[cfg(target_family = "wasm")]
    return crate::hrsync::connector::host::canonical_diff(current, incoming, *options, create);
    #[cfg(not(target_family = "wasm"))]
    {
        let _ = (create, current, incoming, options);
        panic!("the canonical diff runs in the hrsync host; test it through a component (the e2e tests do)")
    }
}
