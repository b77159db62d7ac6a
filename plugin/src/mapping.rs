//! Raw Personio employees → canonical people. Pure and deterministic.

use serde_json::Value;

use crate::attributes::Attributes;
use crate::hrsync::connector::types::{Entry, Gender, Issue, Mapped, Person, PersonStatus, RawRecord, Severity};
use crate::settings::Settings;

/// The standard attributes the mapping reads; requested with `attributes[]`.
pub const STANDARD_ATTRIBUTES: [&str; 14] = [
    "id",
    "first_name",
    "last_name",
    "preferred_name",
    "email",
    "gender",
    "status",
    "position",
    "supervisor",
    "hire_date",
    "termination_date",
    "department",
    "office",
    "team",
];

/// Personio status values (case-insensitive).
pub fn parse_status(value: &str) -> Option<PersonStatus> {
    match value.trim().to_ascii_lowercase().as_str() {
        "active" => Some(PersonStatus::Active),
        "onboarding" => Some(PersonStatus::Onboarding),
        "leave" => Some(PersonStatus::Leave),
        "inactive" => Some(PersonStatus::Inactive),
        _ => None,
    }
}

fn parse_gender(value: &str) -> Option<Gender> {
    match value.trim().to_lowercase().as_str() {
        "male" | "m" | "männlich" => Some(Gender::Male),
        "female" | "f" | "weiblich" => Some(Gender::Female),
        "diverse" | "divers" | "d" | "non-binary" => Some(Gender::Diverse),
        _ => None,
    }
}

/// A plausible email address: one `@`, a dotted domain, no spaces.
pub fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

/// Maps every record; unmappable records are left out and reported.
pub fn map_records(settings: &Settings, records: &[RawRecord]) -> Mapped {
    let mut mapped = Mapped { people: Vec::with_capacity(records.len()), issues: Vec::new() };
    for record in records {
        if let Some(person) = map_record(settings, record, &mut mapped.issues) {
            mapped.people.push(person);
        }
    }
    mapped
}

struct Reporter<'a> {
    issues: &'a mut Vec<Issue>,
    source_id: &'a str,
    name: Option<String>,
}

impl Reporter<'_> {
    fn report(&mut self, severity: Severity, field: Option<&str>, message: String) {
        self.issues.push(Issue {
            source_id: Some(self.source_id.to_string()),
            name: self.name.clone(),
            field: field.map(Into::into),
            severity,
            message,
        });
    }
}

fn map_record(settings: &Settings, record: &RawRecord, issues: &mut Vec<Issue>) -> Option<Person> {
    let mut out = Reporter { issues, source_id: &record.source_id, name: None };
    let payload: Value = match serde_json::from_str(&record.payload) {
        Ok(v) => v,
        Err(e) => {
            out.report(Severity::Error, None, format!("the record is not valid JSON ({e}); it was skipped"));
            return None;
        }
    };
    let Some(a) = Attributes::of_employee(&payload) else {
        out.report(Severity::Error, None, "the record has no `attributes` object; it was skipped".into());
        return None;
    };
    match a.text("id") {
        Some(id) if id == record.source_id => {}
        other => {
            out.report(
                Severity::Error,
                None,
                format!("the record's id ({other:?}) does not match its source id; it was skipped"),
            );
            return None;
        }
    }

    let first_name = a.text("first_name").unwrap_or_default();
    let last_name = a.text("last_name").unwrap_or_default();
    out.name = Some(format!("{first_name} {last_name}").trim().to_string()).filter(|n| !n.is_empty());
    if first_name.is_empty() && last_name.is_empty() {
        out.report(
            Severity::Error,
            Some("first-name"),
            "the person has neither first nor last name (is `first_name` whitelisted for this credential?); skipped"
                .into(),
        );
        return None;
    }

    let status = match a.text("status") {
        Some(s) => match parse_status(&s) {
            Some(status) => status,
            None => {
                out.report(
                    Severity::Error,
                    Some("status"),
                    format!("unknown status `{s}` (expected active, onboarding, leave or inactive); skipped"),
                );
                return None;
            }
        },
        None => {
            out.report(
                Severity::Warning,
                Some("status"),
                "no status (whitelist `status` for the API credential); treated as active".into(),
            );
            PersonStatus::Active
        }
    };

    let email = match a.text("email") {
        Some(e) if is_plausible_email(&e) => Some(e),
        Some(e) => {
            out.report(Severity::Warning, Some("email"), format!("`{e}` is not a valid email address; ignored"));
            None
        }
        None => {
            out.report(
                Severity::Warning,
                Some("email"),
                "no work email in Personio: add one there, or the person cannot be created or matched".into(),
            );
            None
        }
    };

    let gender = a.text("gender").and_then(|g| {
        let parsed = parse_gender(&g);
        if parsed.is_none() {
            out.report(Severity::Warning, Some("gender"), format!("unknown gender `{g}`; left empty"));
        }
        parsed
    });

    let mut date = |key: &str, field: &str| match a.date(key) {
        Ok(d) => d,
        Err(e) => {
            out.report(Severity::Warning, Some(field), format!("{key}: {e}; left empty"));
            None
        }
    };
    let start_date = date("hire_date", "start-date");
    let termination_date = date("termination_date", "termination-date");

    let supervisor_id = a.reference_id("supervisor").filter(|s| {
        let own = *s == record.source_id;
        if own {
            out.report(Severity::Warning, Some("supervisor"), "the person is their own supervisor; ignored".into());
        }
        !own
    });

    let custom = settings
        .custom
        .iter()
        .filter_map(|key| a.custom_text(key).map(|value| Entry { key: key.clone(), value }))
        .collect();

    let profile_url =
        settings.subdomain.as_ref().map(|sub| format!("https://{sub}.personio.de/staff/details/{}", record.source_id));

    Some(Person {
        source_id: record.source_id.clone(),
        employee_id: a.text(&settings.employee_id),
        first_name,
        last_name,
        preferred_name: a.text("preferred_name"),
        email,
        gender,
        status,
        supervisor_id,
        start_date,
        termination_date,
        job_title: a.text("position"),
        department: a.text(&settings.department),
        office: a.text("office"),
        team: a.text("team"),
        custom,
        profile_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hrsync::connector::types::Date;
    use serde_json::json;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let entries: Vec<Entry> =
            pairs.iter().map(|(k, v)| Entry { key: k.to_string(), value: v.to_string() }).collect();
        Settings::parse(&entries).unwrap()
    }

    fn record(id: &str, attributes: Value) -> RawRecord {
        RawRecord { source_id: id.into(), payload: json!({"type": "Employee", "attributes": attributes}).to_string() }
    }

    fn attr(value: Value) -> Value {
        json!({"label": "x", "value": value})
    }

    fn full() -> Value {
        let fixture = include_str!("../fixtures/employee-full.json");
        serde_json::from_str(fixture).unwrap()
    }

    #[test]
    fn a_full_record_maps_every_field() {
        let s = settings(&[
            ("company-subdomain", "acme"),
            ("custom-attributes", "dynamic_1002,dynamic_1001"),
            ("employee-id-attribute", "dynamic_1003"),
        ]);
        let employee = full();
        let rec = RawRecord { source_id: "1042".into(), payload: employee.to_string() };
        let m = map_records(&s, &[rec]);
        assert_eq!(m.issues, vec![]);
        let p = &m.people[0];
        assert_eq!(p.source_id, "1042");
        assert_eq!(p.employee_id.as_deref(), Some("E-1042"));
        assert_eq!((p.first_name.as_str(), p.last_name.as_str()), ("Zoë", "Åström"));
        assert_eq!(p.preferred_name.as_deref(), Some("Zo"));
        assert_eq!(p.email.as_deref(), Some("zoe.astrom@acme.example"));
        assert_eq!(p.gender, Some(Gender::Female));
        assert_eq!(p.status, PersonStatus::Active);
        assert_eq!(p.supervisor_id.as_deref(), Some("7"));
        assert_eq!(p.start_date, Some(Date { year: 2019, month: 4, day: 1 }));
        assert_eq!(p.termination_date, None);
        assert_eq!(p.job_title.as_deref(), Some("Staff Engineer"));
        assert_eq!(p.department.as_deref(), Some("Engineering"));
        assert_eq!(p.office.as_deref(), Some("Berlin"));
        assert_eq!(p.team.as_deref(), Some("Platform"));
        assert_eq!(
            p.custom,
            vec![
                Entry { key: "dynamic_1001".into(), value: "CC-100".into() },
                Entry { key: "dynamic_1002".into(), value: "Rust, WebAssembly".into() },
            ]
        );
        assert_eq!(p.profile_url.as_deref(), Some("https://acme.personio.de/staff/details/1042"));
    }

    #[test]
    fn department_can_come_from_team_or_a_custom_attribute() {
        let employee = full();
        let rec = RawRecord { source_id: "1042".into(), payload: employee.to_string() };
        let team = map_records(&settings(&[("department-attribute", "team")]), std::slice::from_ref(&rec));
        assert_eq!(team.people[0].department.as_deref(), Some("Platform"));
        let custom = map_records(&settings(&[("department-attribute", "dynamic_1001")]), &[rec]);
        assert_eq!(custom.people[0].department.as_deref(), Some("CC-100"));
    }

    #[test]
    fn missing_email_is_reported_but_the_person_is_kept() {
        let m = map_records(
            &settings(&[]),
            &[record(
                "1",
                json!({"id": attr(json!(1)), "first_name": attr(json!("A")), "status": attr(json!("active")), "email": attr(json!(""))}),
            )],
        );
        assert_eq!(m.people.len(), 1);
        assert_eq!(m.people[0].email, None);
        assert_eq!(m.issues[0].field.as_deref(), Some("email"));
        assert_eq!(m.issues[0].severity, Severity::Warning);
    }

    #[test]
    fn invalid_email_and_hostile_text_are_not_trusted_as_email() {
        let m = map_records(
            &settings(&[]),
            &[record(
                "1",
                json!({"id": attr(json!(1)), "first_name": attr(json!("<script>alert(1)</script>")), "status": attr(json!("active")), "email": attr(json!("<b>@x.io"))}),
            )],
        );
        assert_eq!(m.people[0].first_name, "<script>alert(1)</script>");
        assert_eq!(m.people[0].email, None);
        assert!(m.issues[0].message.contains("not a valid email"));
    }

    #[test]
    fn unknown_status_skips_the_record_and_says_why() {
        let m = map_records(
            &settings(&[]),
            &[record(
                "1",
                json!({"id": attr(json!(1)), "first_name": attr(json!("A")), "status": attr(json!("fired"))}),
            )],
        );
        assert!(m.people.is_empty());
        assert_eq!(m.issues[0].severity, Severity::Error);
        assert!(m.issues[0].message.contains("unknown status `fired`"));
        assert_eq!(m.issues[0].name.as_deref(), Some("A"));
    }

    #[test]
    fn absent_status_is_a_warning_and_defaults_to_active() {
        let m =
            map_records(&settings(&[]), &[record("1", json!({"id": attr(json!(1)), "last_name": attr(json!("B"))}))]);
        assert_eq!(m.people[0].status, PersonStatus::Active);
        assert!(m.issues.iter().any(|i| i.field.as_deref() == Some("status")));
    }

    #[test]
    fn unparseable_dates_are_reported_not_guessed() {
        let m = map_records(
            &settings(&[]),
            &[record(
                "1",
                json!({"id": attr(json!(1)), "first_name": attr(json!("A")), "status": attr(json!("inactive")),
                "hire_date": attr(json!("01.02.2020")), "termination_date": attr(json!("2024-06-30T00:00:00+0200"))}),
            )],
        );
        let p = &m.people[0];
        assert_eq!(p.start_date, None);
        assert_eq!(p.termination_date, Some(Date { year: 2024, month: 6, day: 30 }));
        assert!(m.issues.iter().any(|i| i.field.as_deref() == Some("start-date") && i.message.contains("01.02.2020")));
    }

    #[test]
    fn mismatched_ids_and_broken_payloads_are_skipped() {
        let m = map_records(
            &settings(&[]),
            &[
                record("2", json!({"id": attr(json!(1)), "first_name": attr(json!("A"))})),
                RawRecord { source_id: "3".into(), payload: "{not json".into() },
                RawRecord { source_id: "4".into(), payload: "[]".into() },
            ],
        );
        assert!(m.people.is_empty());
        assert_eq!(m.issues.len(), 3);
        assert!(m.issues.iter().all(|i| i.severity == Severity::Error));
    }

    #[test]
    fn self_supervision_is_dropped() {
        let m = map_records(
            &settings(&[]),
            &[record(
                "5",
                json!({"id": attr(json!(5)), "first_name": attr(json!("A")), "status": attr(json!("active")),
                "email": attr(json!("a@x.io")), "supervisor": attr(json!({"type": "Employee", "attributes": {"id": attr(json!(5))}}))}),
            )],
        );
        assert_eq!(m.people[0].supervisor_id, None);
        assert_eq!(m.issues[0].field.as_deref(), Some("supervisor"));
    }

    #[test]
    fn mapping_is_deterministic() {
        let rec = RawRecord { source_id: "1042".into(), payload: full().to_string() };
        let s = settings(&[("custom-attributes", "dynamic_1001")]);
        assert_eq!(map_records(&s, std::slice::from_ref(&rec)), map_records(&s, &[rec]));
    }

    #[test]
    fn email_plausibility() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "zoë@例え.jp"] {
            assert!(is_plausible_email(ok), "{ok}");
        }
        for bad in ["", "a", "a@b", "@b.co", "a@b@c.co", "a b@c.co", "a@.co", "a@co."] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }
}
