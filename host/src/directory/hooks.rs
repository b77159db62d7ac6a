//! Webhook subscriptions and the deliveries they bring: what the host
//! stores so that a delivery is answered at once and processed after.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{IntegrationId, RunId};

/// An integration's subscription with its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookSubscription {
    pub integration: IntegrationId,
    /// The unguessable path segment of `/hooks/<hook>`.
    pub hook: String,
    /// SHA-256 (hex) of the token the source sends with each delivery.
    #[serde(skip)]
    pub token_hash: String,
    /// The source's id for it.
    pub source_id: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub last_delivery_at: Option<DateTime<Utc>>,
}

/// A delivery as received, before anyone read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub integration: IntegrationId,
    pub received_at: DateTime<Utc>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A stored delivery waiting to be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub id: i64,
    pub event: NewEvent,
}

/// An integration's deliveries waiting to be processed: when the oldest
/// and the newest arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub integration: IntegrationId,
    pub oldest: DateTime<Utc>,
    pub newest: DateTime<Utc>,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    /// Its people were imported (or were already current).
    Done,
    /// Not about people of the integration.
    Ignored,
    /// The connector could not read it.
    Failed,
}

impl EventState {
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Done => "done",
            EventState::Ignored => "ignored",
            EventState::Failed => "failed",
        }
    }
}

/// How one delivery ended, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnd {
    pub id: i64,
    pub state: EventState,
    pub outcome: String,
    pub run: Option<RunId>,
}
