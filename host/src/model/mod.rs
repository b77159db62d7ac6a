//! The host's vocabulary: people as a source states them, the fields the
//! directory keeps, the changes a plan proposes and what connectors say
//! about themselves — owned by the host, independent of any version of the
//! connector contract.
//!
//! `runtime::bindings` converts each contract version's generated types to
//! and from these, so a new contract version touches its binding module and,
//! if it adds something, this model — nothing else in the host.

mod connector;
mod person;
mod plan;

pub use connector::{
    Capabilities, CheckReport, ConnectorError, ConnectorInfo, EventsInfo, FetchRequest, LogLevel, Mapped,
    MissingAttribute, Page, RawRecord, Retry, SettingKind, SettingSpec, SourceAttribute, SourceEvent, Subscription,
};
pub use person::{Email, Entry, Field, Gender, Person, PersonStatus, SourceId, UserStatus, display_name};
pub use plan::{
    Change, Deactivation, DeactivationReason, DiffOptions, DirectoryUser, FieldChange, Issue, MissingUser, Plan,
    Severity, UserUpdate,
};

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A directory user.
    UserId
);
id_type!(
    /// A configured connector instance.
    IntegrationId
);
id_type!(
    /// A preview, import or revert.
    RunId
);
id_type!(
    /// A customer company of a multi-tenant deployment: it owns its
    /// integrations, directory, runs and accounts. A single-tenant install
    /// is [`TenantId::DEFAULT`].
    TenantId
);

impl TenantId {
    /// The one tenant of a single-tenant install.
    pub const DEFAULT: TenantId = TenantId(1);
}
