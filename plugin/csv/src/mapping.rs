//! CSV rows → canonical people, with an issue for each row or field that
//! cannot be used. Pure and deterministic.

use hrsync_connector_kit::dates;
use hrsync_connector_kit::types::{Issue, Mapped, Person, PersonStatus, RawRecord, Severity};
use serde_json::Value;

use crate::settings::{Settings, status};

fn issue(record: &RawRecord, name: Option<String>, field: Option<&str>, severity: Severity, message: String) -> Issue {
    Issue { source_id: Some(record.source_id.clone()), name, field: field.map(Into::into), severity, message }
}

/// Maps every record; error records and unusable rows become issues.
pub fn map_records(settings: &Settings, records: &[RawRecord]) -> Mapped {
    let mut mapped = Mapped { people: Vec::with_capacity(records.len()), issues: Vec::new() };
    for record in records {
        if let Some(p) = map_one(settings, record, &mut mapped.issues) {
            mapped.people.push(p);
        }
    }
    mapped
}

fn map_one(settings: &Settings, record: &RawRecord, issues: &mut Vec<Issue>) -> Option<Person> {
    let payload: Value = serde_json::from_str(&record.payload).unwrap_or(Value::Null);
    let line = payload.get("row").and_then(Value::as_u64).unwrap_or(0);
    if let Some(error) = payload.get("error").and_then(Value::as_str) {
        issues.push(issue(record, None, None, Severity::Error, format!("row {line} {error}; the row was skipped")));
        return None;
    }
    let values = payload.get("values").and_then(Value::as_object)?;
    let cell = |key: &str| -> Option<String> {
        values
            .get(settings.column(key))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let first_name = cell("first-name-column").unwrap_or_default();
    let last_name = cell("last-name-column").unwrap_or_default();
    let name = Some(format!("{first_name} {last_name}").trim().to_string()).filter(|n| !n.is_empty());
    if name.is_none() {
        issues.push(issue(
            record,
            None,
            Some("name"),
            Severity::Error,
            format!("row {line} has no name; the row was skipped"),
        ));
        return None;
    }
    let mut email = cell("email-column");
    if let Some(e) = &email
        && (!e.contains('@') || e.contains(char::is_whitespace))
    {
        issues.push(issue(
            record,
            name.clone(),
            Some("email"),
            Severity::Warning,
            format!("row {line}: `{e}` is not an email address"),
        ));
        email = None;
    }
    let status = match cell("status-column") {
        None => PersonStatus::Active,
        Some(text) => {
            match status(&text) {
                Some(s) => s,
                None => {
                    issues.push(issue(
                    record,
                    name.clone(),
                    Some("status"),
                    Severity::Error,
                    format!("row {line}: status `{text}` is not active, onboarding, leave or inactive; the row was skipped"),
                ));
                    return None;
                }
            }
        }
    };
    let mut date = |key: &str, field: &str| {
        cell(key).and_then(|text| match dates::parse(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                issues.push(issue(
                    record,
                    name.clone(),
                    Some(field),
                    Severity::Warning,
                    format!("row {line}: {field} {e}"),
                ));
                None
            }
        })
    };
    let start_date = date("start-date-column", "start-date");
    let termination_date = date("termination-date-column", "termination-date");
    Some(Person {
        source_id: record.source_id.clone(),
        employee_id: cell("employee-id-column"),
        first_name,
        last_name,
        preferred_name: None,
        email,
        gender: None,
        status,
        supervisor_id: cell("manager-column"),
        start_date,
        termination_date,
        job_title: cell("job-title-column"),
        department: cell("department-column"),
        office: None,
        team: None,
        custom: Vec::new(),
        profile_url: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse;
    use hrsync_connector_kit::types::{Date, Entry};

    fn settings() -> Settings {
        Settings::parse(&[Entry { key: "url".into(), value: "https://x/p.csv".into() }]).unwrap()
    }

    #[test]
    fn rows_map_to_people_and_bad_values_to_issues() {
        let text = "id,first_name,last_name,email,status,manager_id,start_date,job_title\n\
                    1,Ada,Lovelace,ada@acme.example,active,,2020-01-15,CEO\n\
                    2,Grace,Hopper,not-an-email,Leave,1,31.02.2021,CTO\n\
                    3,Alan,Turing,alan@acme.example,retired,1,,\n\
                    4,,,nobody@acme.example,active,,,\n\
                    5,Short\n";
        let t = parse(&settings(), text).unwrap();
        let m = map_records(&settings(), &t.records);
        let ids: Vec<&str> = m.people.iter().map(|p| p.source_id.as_str()).collect();
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(m.people[0].start_date, Some(Date { year: 2020, month: 1, day: 15 }));
        assert_eq!(m.people[1].status, PersonStatus::Leave);
        assert_eq!(m.people[1].supervisor_id.as_deref(), Some("1"));
        assert_eq!(m.people[1].email, None, "an invalid email is dropped, with an issue");
        assert_eq!(m.people[1].start_date, None);
        let messages: Vec<&str> = m.issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(messages.len(), 5, "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("`not-an-email` is not an email")));
        assert!(messages.iter().any(|m| m.contains("31.02.2021")));
        assert!(messages.iter().any(|m| m.contains("status `retired`")));
        assert!(messages.iter().any(|m| m.contains("row 5 has no name")));
        assert!(messages.iter().any(|m| m.contains("row 6 has 2 fields")));
    }

    #[test]
    fn mapping_is_deterministic() {
        let t = parse(&settings(), "id,first_name,last_name,email\n1,Ada,Lovelace,ada@x.io\n").unwrap();
        assert_eq!(map_records(&settings(), &t.records), map_records(&settings(), &t.records));
    }
}
