//! Overrides: local values an admin keeps against the source.
//!
//! An override pins one field of one person to the value it has in the
//! directory now. While it holds, syncs leave that field alone and record
//! what the source says instead, so previews can say "Personio says X,
//! kept Y" and the override list can show the drift. The status is never
//! kept: who works at the company is the source's to say, behind the
//! safeguards.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{Field, UserId};

/// One kept field of one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Override {
    pub user_id: UserId,
    #[schema(value_type = String, example = "job-title")]
    pub field: Field,
    /// The kept value in the field's text form; for `manager`, the
    /// manager's user id.
    pub value: Option<String>,
    /// The account that set it.
    pub kept_by: Option<String>,
    /// The last day it holds; `None` until someone removes it.
    pub until: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    /// What the source said when a run last saw the person (for `manager`,
    /// the manager's name); `None` before any run has.
    pub source: Option<SourceSays>,
}

/// The source's value for a kept field, as a run saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SourceSays {
    pub value: Option<String>,
    /// Whether it differs from the kept value: the drift.
    pub differs: bool,
    pub seen_at: DateTime<Utc>,
}

impl Override {
    /// Whether it still holds on `day`.
    pub fn holds_on(&self, day: NaiveDate) -> bool {
        self.until.is_none_or(|until| day <= until)
    }
}

/// Why a field cannot be kept, or `Ok`.
pub fn keepable(field: &Field) -> Result<(), String> {
    match field {
        Field::Status => Err("the status cannot be kept: who works at the company follows the HR system, behind the \
             safeguards; to stop syncing someone, deactivate them in the HR system"
            .into()),
        _ => Ok(()),
    }
}

/// What an override kept in one run: the person, the field, what the
/// source said and what the directory kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KeptValue {
    pub user_id: UserId,
    pub name: String,
    #[schema(value_type = String, example = "job-title")]
    pub field: Field,
    /// The source's value (for `manager`, a name).
    pub source: Option<String>,
    /// The kept value (for `manager`, a name).
    pub kept: Option<String>,
    /// Whether the source differs: only those are shown in a run.
    pub differs: bool,
    pub kept_by: Option<String>,
    pub until: Option<NaiveDate>,
}

/// An override a run sets in the same transaction as its writes ("revert
/// and keep").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOverride {
    pub user_id: UserId,
    pub field: Field,
    pub value: Option<String>,
    pub kept_by: Option<String>,
    pub until: Option<NaiveDate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_holds_through_its_last_day_and_the_status_is_never_kept() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let o = Override {
            user_id: UserId(1),
            field: Field::JobTitle,
            value: Some("CTO".into()),
            kept_by: Some("ann".into()),
            until: Some(day(10)),
            created_at: Utc::now(),
            source: None,
        };
        assert!(o.holds_on(day(9)) && o.holds_on(day(10)) && !o.holds_on(day(11)));
        assert!(Override { until: None, ..o }.holds_on(day(31)));
        assert!(keepable(&Field::Status).unwrap_err().contains("HR system"));
        assert!(keepable(&Field::Manager).is_ok() && keepable(&Field::Custom("x".into())).is_ok());
    }
}
