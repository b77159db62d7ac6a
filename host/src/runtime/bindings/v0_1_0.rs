//! Contract 0.1.0, and the conversions between its types — shared by 0.2.0
//! and 0.3.0 — and the host's model.
//!
//! Into the guest every conversion is total. Out of the guest, what the
//! model cannot hold (an impossible date, a user id out of range) is
//! refused with the reason, and the call fails as invalid output.

use chrono::{Datelike, NaiveDate};

use crate::model;

wasmtime::component::bindgen!({
    path: "../wit/0.1.0",
    world: "hr-connector",
    exports: { default: async },
});

use self::hrsync::connector::types as wit;

impl hrsync::connector::types::Host for super::RunState {}

impl hrsync::connector::host::Host for super::RunState {
    fn log(&mut self, level: hrsync::connector::host::Level, message: String) {
        self.log(level.into(), &message);
    }
}

impl From<hrsync::connector::host::Level> for model::LogLevel {
    fn from(level: hrsync::connector::host::Level) -> Self {
        use self::hrsync::connector::host::Level as L;
        match level {
            L::Trace => model::LogLevel::Trace,
            L::Debug => model::LogLevel::Debug,
            L::Info => model::LogLevel::Info,
            L::Warn => model::LogLevel::Warn,
            L::Error => model::LogLevel::Error,
        }
    }
}

// Into the guest.

impl From<&model::Entry> for wit::Entry {
    fn from(e: &model::Entry) -> Self {
        wit::Entry { key: e.key.clone(), value: e.value.clone() }
    }
}

impl From<&model::FetchRequest> for wit::FetchRequest {
    fn from(r: &model::FetchRequest) -> Self {
        wit::FetchRequest { cursor: r.cursor.clone(), updated_since: r.updated_since.clone() }
    }
}

impl From<&model::RawRecord> for wit::RawRecord {
    fn from(r: &model::RawRecord) -> Self {
        wit::RawRecord { source_id: r.source_id.to_string(), payload: r.payload.clone() }
    }
}

fn date(d: NaiveDate) -> wit::Date {
    // chrono's months and days are 1..=12 and 1..=31.
    wit::Date { year: d.year(), month: d.month() as u8, day: d.day() as u8 }
}

impl From<model::Gender> for wit::Gender {
    fn from(g: model::Gender) -> Self {
        match g {
            model::Gender::Male => wit::Gender::Male,
            model::Gender::Female => wit::Gender::Female,
            model::Gender::Diverse => wit::Gender::Diverse,
        }
    }
}

impl From<model::PersonStatus> for wit::PersonStatus {
    fn from(s: model::PersonStatus) -> Self {
        match s {
            model::PersonStatus::Active => wit::PersonStatus::Active,
            model::PersonStatus::Onboarding => wit::PersonStatus::Onboarding,
            model::PersonStatus::Leave => wit::PersonStatus::Leave,
            model::PersonStatus::Inactive => wit::PersonStatus::Inactive,
        }
    }
}

impl From<model::UserStatus> for wit::UserStatus {
    fn from(s: model::UserStatus) -> Self {
        match s {
            model::UserStatus::Active => wit::UserStatus::Active,
            model::UserStatus::Inactive => wit::UserStatus::Inactive,
            model::UserStatus::PendingStart => wit::UserStatus::PendingStart,
        }
    }
}

impl From<&model::Person> for wit::Person {
    fn from(p: &model::Person) -> Self {
        wit::Person {
            source_id: p.source_id.to_string(),
            employee_id: p.employee_id.clone(),
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            preferred_name: p.preferred_name.clone(),
            email: p.email.clone(),
            gender: p.gender.map(Into::into),
            status: p.status.into(),
            supervisor_id: p.supervisor_id.as_ref().map(|s| s.to_string()),
            start_date: p.start_date.map(date),
            termination_date: p.termination_date.map(date),
            job_title: p.job_title.clone(),
            department: p.department.clone(),
            office: p.office.clone(),
            team: p.team.clone(),
            custom: p.custom.iter().map(Into::into).collect(),
            profile_url: p.profile_url.clone(),
        }
    }
}

fn user_id(id: model::UserId) -> u64 {
    // Directory ids are positive.
    id.0.max(0) as u64
}

impl From<&model::DirectoryUser> for wit::DirectoryUser {
    fn from(u: &model::DirectoryUser) -> Self {
        wit::DirectoryUser {
            user_id: user_id(u.user_id),
            source_id: u.source_id.as_ref().map(|s| s.to_string()),
            status: u.status.into(),
            missing_runs: u.missing_runs,
            person: (&u.person).into(),
        }
    }
}

impl From<model::DiffOptions> for wit::DiffOptions {
    fn from(o: model::DiffOptions) -> Self {
        wit::DiffOptions { complete: o.complete, missing_after: o.missing_after }
    }
}

impl From<model::Severity> for wit::Severity {
    fn from(s: model::Severity) -> Self {
        match s {
            model::Severity::Warning => wit::Severity::Warning,
            model::Severity::Error => wit::Severity::Error,
        }
    }
}

impl From<&model::Issue> for wit::Issue {
    fn from(i: &model::Issue) -> Self {
        wit::Issue {
            source_id: i.source_id.as_ref().map(|s| s.to_string()),
            name: i.name.clone(),
            field: i.field.clone(),
            severity: i.severity.into(),
            message: i.message.clone(),
        }
    }
}

fn field_changes(changes: &[model::FieldChange]) -> Vec<wit::FieldChange> {
    changes
        .iter()
        .map(|c| wit::FieldChange { field: c.field.clone(), before: c.before.clone(), after: c.after.clone() })
        .collect()
}

impl From<&model::UserUpdate> for wit::UserUpdate {
    fn from(u: &model::UserUpdate) -> Self {
        wit::UserUpdate { user_id: user_id(u.user_id), person: (&u.person).into(), changes: field_changes(&u.changes) }
    }
}

impl From<&model::Change> for wit::Change {
    fn from(c: &model::Change) -> Self {
        match c {
            model::Change::Create(p) => wit::Change::Create(p.into()),
            model::Change::Update(u) => wit::Change::Update(u.into()),
            model::Change::Reactivate(u) => wit::Change::Reactivate(u.into()),
            model::Change::Link(u) => wit::Change::Link(u.into()),
            model::Change::Deactivate(d) => wit::Change::Deactivate(wit::Deactivation {
                user_id: user_id(d.user_id),
                reason: match d.reason {
                    model::DeactivationReason::InactiveInSource => wit::DeactivationReason::InactiveInSource,
                    model::DeactivationReason::MissingFromSource => wit::DeactivationReason::MissingFromSource,
                },
                person: d.person.as_ref().map(Into::into),
                changes: field_changes(&d.changes),
            }),
            model::Change::Missing(m) => {
                wit::Change::Missing(wit::MissingUser { user_id: user_id(m.user_id), runs: m.runs })
            }
        }
    }
}

impl From<&model::Plan> for wit::Plan {
    fn from(p: &model::Plan) -> Self {
        wit::Plan {
            changes: p.changes.iter().map(Into::into).collect(),
            issues: p.issues.iter().map(Into::into).collect(),
        }
    }
}

// Out of the guest.

impl From<wit::ConnectorInfo> for model::ConnectorInfo {
    fn from(i: wit::ConnectorInfo) -> Self {
        model::ConnectorInfo {
            id: i.id,
            name: i.name,
            version: i.version,
            description: i.description,
            settings: i.settings.into_iter().map(Into::into).collect(),
            capabilities: model::Capabilities {
                supervisors: i.capabilities.contains(wit::Capabilities::SUPERVISORS),
                termination_dates: i.capabilities.contains(wit::Capabilities::TERMINATION_DATES),
                incremental_fetch: i.capabilities.contains(wit::Capabilities::INCREMENTAL_FETCH),
                custom_attributes: i.capabilities.contains(wit::Capabilities::CUSTOM_ATTRIBUTES),
            },
            default_hosts: i.default_hosts,
        }
    }
}

impl From<wit::SettingSpec> for model::SettingSpec {
    fn from(s: wit::SettingSpec) -> Self {
        model::SettingSpec {
            key: s.key,
            label: s.label,
            kind: match s.kind {
                wit::SettingKind::Text => model::SettingKind::Text,
                wit::SettingKind::Secret => model::SettingKind::Secret,
                wit::SettingKind::Flag => model::SettingKind::Flag,
                wit::SettingKind::Choice => model::SettingKind::Choice,
                wit::SettingKind::MultiChoice => model::SettingKind::MultiChoice,
                wit::SettingKind::Attribute => model::SettingKind::Attribute,
                wit::SettingKind::AttributeList => model::SettingKind::AttributeList,
            },
            required: s.required,
            default_value: s.default_value,
            choices: s.choices,
            help: s.help,
        }
    }
}

impl From<wit::MissingAttribute> for model::MissingAttribute {
    fn from(m: wit::MissingAttribute) -> Self {
        model::MissingAttribute { key: m.key, purpose: m.purpose, hint: m.hint, required: m.required }
    }
}

impl From<wit::CheckReport> for model::CheckReport {
    fn from(r: wit::CheckReport) -> Self {
        model::CheckReport {
            account: r.account,
            readable: r.readable.into_iter().map(|a| model::SourceAttribute { key: a.key, label: a.label }).collect(),
            missing: r.missing.into_iter().map(Into::into).collect(),
            warnings: r.warnings,
        }
    }
}

impl From<wit::Page> for model::Page {
    fn from(p: wit::Page) -> Self {
        model::Page {
            records: p
                .records
                .into_iter()
                .map(|r| model::RawRecord { source_id: r.source_id.into(), payload: r.payload })
                .collect(),
            next_cursor: p.next_cursor,
            total: p.total,
        }
    }
}

impl From<wit::Retry> for model::Retry {
    fn from(r: wit::Retry) -> Self {
        model::Retry { after_seconds: r.after_seconds, message: r.message }
    }
}

impl From<wit::ConnectorError> for model::ConnectorError {
    fn from(e: wit::ConnectorError) -> Self {
        use model::ConnectorError as M;
        match e {
            wit::ConnectorError::CredentialsRejected(m) => M::CredentialsRejected(m),
            wit::ConnectorError::PermissionDenied(missing) => {
                M::PermissionDenied(missing.into_iter().map(Into::into).collect())
            }
            wit::ConnectorError::RateLimited(r) => M::RateLimited(r.into()),
            wit::ConnectorError::TemporarilyUnavailable(r) => M::TemporarilyUnavailable(r.into()),
            wit::ConnectorError::Unreachable(m) => M::Unreachable(m),
            wit::ConnectorError::InvalidSettings(m) => M::InvalidSettings(m),
            wit::ConnectorError::BadResponse(m) => M::BadResponse(m),
        }
    }
}

impl From<wit::Gender> for model::Gender {
    fn from(g: wit::Gender) -> Self {
        match g {
            wit::Gender::Male => model::Gender::Male,
            wit::Gender::Female => model::Gender::Female,
            wit::Gender::Diverse => model::Gender::Diverse,
        }
    }
}

impl From<wit::PersonStatus> for model::PersonStatus {
    fn from(s: wit::PersonStatus) -> Self {
        match s {
            wit::PersonStatus::Active => model::PersonStatus::Active,
            wit::PersonStatus::Onboarding => model::PersonStatus::Onboarding,
            wit::PersonStatus::Leave => model::PersonStatus::Leave,
            wit::PersonStatus::Inactive => model::PersonStatus::Inactive,
        }
    }
}

impl From<wit::UserStatus> for model::UserStatus {
    fn from(s: wit::UserStatus) -> Self {
        match s {
            wit::UserStatus::Active => model::UserStatus::Active,
            wit::UserStatus::Inactive => model::UserStatus::Inactive,
            wit::UserStatus::PendingStart => model::UserStatus::PendingStart,
        }
    }
}

/// A real calendar day, or why not.
fn real_date(d: Option<wit::Date>, who: &str, field: &str) -> Result<Option<NaiveDate>, String> {
    d.map(|d| {
        NaiveDate::from_ymd_opt(d.year, d.month.into(), d.day.into()).ok_or_else(|| {
            format!("person `{who}` has {field} {}-{}-{}, which is not a calendar date", d.year, d.month, d.day)
        })
    })
    .transpose()
}

impl TryFrom<wit::Person> for model::Person {
    type Error = String;
    fn try_from(p: wit::Person) -> Result<Self, String> {
        Ok(model::Person {
            start_date: real_date(p.start_date, &p.source_id, "start-date")?,
            termination_date: real_date(p.termination_date, &p.source_id, "termination-date")?,
            source_id: p.source_id.into(),
            employee_id: p.employee_id,
            first_name: p.first_name,
            last_name: p.last_name,
            preferred_name: p.preferred_name,
            email: p.email,
            gender: p.gender.map(Into::into),
            status: p.status.into(),
            supervisor_id: p.supervisor_id.map(Into::into),
            job_title: p.job_title,
            department: p.department,
            office: p.office,
            team: p.team,
            custom: p.custom.into_iter().map(|e| model::Entry { key: e.key, value: e.value }).collect(),
            profile_url: p.profile_url,
        })
    }
}

fn model_user_id(id: u64) -> Result<model::UserId, String> {
    i64::try_from(id).map(model::UserId).map_err(|_| format!("user id {id} is out of range"))
}

impl From<wit::Issue> for model::Issue {
    fn from(i: wit::Issue) -> Self {
        model::Issue {
            source_id: i.source_id.map(Into::into),
            name: i.name,
            field: i.field,
            severity: match i.severity {
                wit::Severity::Warning => model::Severity::Warning,
                wit::Severity::Error => model::Severity::Error,
            },
            message: i.message,
        }
    }
}

impl TryFrom<wit::Mapped> for model::Mapped {
    type Error = String;
    fn try_from(m: wit::Mapped) -> Result<Self, String> {
        Ok(model::Mapped {
            people: m.people.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?,
            issues: m.issues.into_iter().map(Into::into).collect(),
        })
    }
}

fn model_changes(changes: Vec<wit::FieldChange>) -> Vec<model::FieldChange> {
    changes.into_iter().map(|c| model::FieldChange { field: c.field, before: c.before, after: c.after }).collect()
}

impl TryFrom<wit::UserUpdate> for model::UserUpdate {
    type Error = String;
    fn try_from(u: wit::UserUpdate) -> Result<Self, String> {
        Ok(model::UserUpdate {
            user_id: model_user_id(u.user_id)?,
            person: u.person.try_into()?,
            changes: model_changes(u.changes),
        })
    }
}

impl TryFrom<wit::Change> for model::Change {
    type Error = String;
    fn try_from(c: wit::Change) -> Result<Self, String> {
        Ok(match c {
            wit::Change::Create(p) => model::Change::Create(p.try_into()?),
            wit::Change::Update(u) => model::Change::Update(u.try_into()?),
            wit::Change::Reactivate(u) => model::Change::Reactivate(u.try_into()?),
            wit::Change::Link(u) => model::Change::Link(u.try_into()?),
            wit::Change::Deactivate(d) => model::Change::Deactivate(model::Deactivation {
                user_id: model_user_id(d.user_id)?,
                reason: match d.reason {
                    wit::DeactivationReason::InactiveInSource => model::DeactivationReason::InactiveInSource,
                    wit::DeactivationReason::MissingFromSource => model::DeactivationReason::MissingFromSource,
                },
                person: d.person.map(TryInto::try_into).transpose()?,
                changes: model_changes(d.changes),
            }),
            wit::Change::Missing(m) => {
                model::Change::Missing(model::MissingUser { user_id: model_user_id(m.user_id)?, runs: m.runs })
            }
        })
    }
}

impl TryFrom<wit::Plan> for model::Plan {
    type Error = String;
    fn try_from(p: wit::Plan) -> Result<Self, String> {
        Ok(model::Plan {
            changes: p.changes.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?,
            issues: p.issues.into_iter().map(Into::into).collect(),
        })
    }
}

impl TryFrom<wit::DirectoryUser> for model::DirectoryUser {
    type Error = String;
    fn try_from(u: wit::DirectoryUser) -> Result<Self, String> {
        Ok(model::DirectoryUser {
            user_id: model_user_id(u.user_id)?,
            source_id: u.source_id.map(Into::into),
            status: u.status.into(),
            missing_runs: u.missing_runs,
            person: u.person.try_into()?,
        })
    }
}

impl From<wit::DiffOptions> for model::DiffOptions {
    fn from(o: wit::DiffOptions) -> Self {
        model::DiffOptions { complete: o.complete, missing_after: o.missing_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_survives_the_round_trip() {
        let mut p = model::Person::new("7", "Ada", "Lovelace");
        p.start_date = NaiveDate::from_ymd_opt(2024, 2, 29);
        p.gender = Some(model::Gender::Female);
        p.status = model::PersonStatus::Leave;
        p.supervisor_id = Some("3".into());
        p.custom = vec![model::Entry::new("level", "L3")];
        let back = model::Person::try_from(wit::Person::from(&p)).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn impossible_dates_and_ids_are_refused_with_the_reason() {
        let mut p = wit::Person::from(&model::Person::new("7", "Ada", "Lovelace"));
        p.start_date = Some(wit::Date { year: 2024, month: 2, day: 30 });
        let err = model::Person::try_from(p).unwrap_err();
        assert_eq!(err, "person `7` has start-date 2024-2-30, which is not a calendar date");
        let change = wit::Change::Missing(wit::MissingUser { user_id: u64::MAX, runs: 1 });
        assert!(model::Change::try_from(change).unwrap_err().contains("out of range"));
    }
}
