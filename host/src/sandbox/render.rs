//! Employees rendered exactly as Personio's v1 API shows them: attribute
//! objects, localised labels, nested units, the date and tag encodings seen
//! in the wild.

use chrono::{DateTime, NaiveDate};
use serde_json::{Map, Value, json};

use super::company::{Email, Employee, Unit};

/// Label language of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    De,
}

/// One attribute Personio can return.
pub struct AttributeDef {
    pub key: &'static str,
    en: &'static str,
    de: &'static str,
    pub kind: &'static str,
    universal_id: Option<&'static str>,
}

impl AttributeDef {
    pub fn label(&self, language: Language) -> &'static str {
        match language {
            Language::En => self.en,
            Language::De => self.de,
        }
    }

    /// The entry of `/company/employees/attributes`.
    pub fn describe(&self, language: Language) -> Value {
        let options: Vec<&str> = if self.kind == "tags" { vec!["Rust", "SQL", "Negotiation", "Excel"] } else { vec![] };
        json!({"key": self.key, "label": self.label(language), "type": self.kind, "universal_id": self.universal_id, "options": options})
    }
}

const fn def(
    key: &'static str,
    en: &'static str,
    de: &'static str,
    kind: &'static str,
    universal_id: Option<&'static str>,
) -> AttributeDef {
    AttributeDef { key, en, de, kind, universal_id }
}

/// Every attribute the sandbox serves.
pub const ATTRIBUTES: &[AttributeDef] = &[
    def("id", "ID", "ID", "integer", Some("id")),
    def("first_name", "First name", "Vorname", "standard", Some("first_name")),
    def("last_name", "Last name", "Nachname", "standard", Some("last_name")),
    def("preferred_name", "Name (preferred)", "Name (bevorzugt)", "standard", Some("preferred_name")),
    def("email", "Email", "E-Mail", "standard", Some("email")),
    def("gender", "Gender", "Geschlecht", "standard", Some("gender")),
    def("status", "Status", "Status", "standard", Some("status")),
    def("position", "Position", "Position", "standard", Some("position")),
    def("supervisor", "Supervisor", "Vorgesetzte*r", "standard", Some("supervisor")),
    def("employment_type", "Employment type", "Beschäftigungsart", "standard", Some("employment_type")),
    def("weekly_working_hours", "Weekly hours", "Wochenstunden", "standard", Some("weekly_working_hours")),
    def("hire_date", "Hire date", "Eintrittsdatum", "date", Some("hire_date")),
    def("termination_date", "Termination date", "Kündigungsdatum", "date", Some("termination_date")),
    def("created_at", "created_at", "created_at", "date", Some("created_at")),
    def("last_modified_at", "Last modified", "Zuletzt geändert", "date", Some("last_modified_at")),
    def("subcompany", "Subcompany", "Subunternehmen", "standard", Some("subcompany")),
    def("office", "Workplace", "Arbeitsort", "standard", Some("office")),
    def("department", "Department", "Abteilung", "standard", Some("department")),
    def("team", "Team", "Team", "standard", Some("team")),
    def("dynamic_1001", "Cost center code", "Kostenstellen-Code", "standard", None),
    def("dynamic_1002", "Skills", "Fähigkeiten", "tags", None),
    def("dynamic_1003", "Employee number", "Personalnummer", "standard", Some("employee_number")),
];

/// How much of an employee to render.
pub struct View<'a> {
    pub language: Language,
    /// Older API responses: only `label` and `value`.
    pub legacy: bool,
    /// Whether an attribute is whitelisted and requested.
    pub include: &'a dyn Fn(&str) -> bool,
    pub company: &'a str,
}

/// `{"type": "Employee", "attributes": {…}}`.
pub fn employee(e: &Employee, view: &View<'_>) -> Value {
    let mut attributes = Map::new();
    for def in ATTRIBUTES {
        if def.key != "id" && !(view.include)(def.key) {
            continue;
        }
        let value = value_of(e, def.key, view.company);
        let mut attribute = Map::new();
        attribute.insert("label".into(), json!(def.label(view.language)));
        attribute.insert("value".into(), value);
        if !view.legacy {
            attribute.insert("type".into(), json!(def.kind));
            attribute.insert("universal_id".into(), json!(def.universal_id));
        }
        attributes.insert(def.key.into(), Value::Object(attribute));
    }
    json!({"type": "Employee", "attributes": attributes})
}

fn value_of(e: &Employee, key: &str, company: &str) -> Value {
    match key {
        "id" => json!(e.id),
        "first_name" => json!(e.first_name),
        "last_name" => json!(e.last_name),
        "preferred_name" => json!(e.preferred_name.clone().unwrap_or_default()),
        "email" => match &e.email {
            Email::Address(a) => json!(a),
            Email::Empty => json!(""),
            Email::Null => Value::Null,
        },
        "gender" => json!(e.gender),
        "status" => json!(e.status.as_str()),
        "position" => json!(e.position),
        "supervisor" => match e.supervisor {
            None => Value::Null,
            Some(id) => {
                json!({"type": "Employee", "attributes": {"id": {"label": "ID", "value": id, "type": "integer", "universal_id": "id"}}})
            }
        },
        "employment_type" => json!(if e.id.is_multiple_of(17) { "external" } else { "internal" }),
        // Personio sends this number as a string.
        "weekly_working_hours" => json!(if e.id.is_multiple_of(9) { "30" } else { "40" }),
        "hire_date" => json!(date(e.hire_date, e.id)),
        "termination_date" => e.termination_date.map_or(Value::Null, |d| json!(date(d, e.id))),
        "created_at" => json!(timestamp(e.created)),
        "last_modified_at" => json!(timestamp(e.last_modified)),
        "subcompany" => unit(&Some(Unit { id: 7033, name: company.into() }), "Subcompany"),
        "office" => unit(&e.office, "Office"),
        "department" => unit(&e.department, "Department"),
        "team" => unit(&e.team, "Team"),
        "dynamic_1001" => json!(e.cost_center),
        "dynamic_1002" => tags(&e.skills, e.id),
        "dynamic_1003" => json!(format!("E-{:05}", e.id)),
        _ => Value::Null,
    }
}

fn unit(unit: &Option<Unit>, kind: &str) -> Value {
    match unit {
        None => Value::Null,
        Some(u) => json!({"type": kind, "attributes": {"id": u.id, "name": u.name}}),
    }
}

/// Dates as local midnights, in the three encodings Personio has used.
fn date(d: NaiveDate, id: u64) -> String {
    match id % 3 {
        0 => format!("{d}T00:00:00+01:00"),
        1 => format!("{d}T00:00:00+0100"),
        _ => d.to_string(),
    }
}

fn timestamp(unix: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(3600).expect("valid offset");
    DateTime::from_timestamp(unix, 0).expect("valid time").with_timezone(&offset).to_rfc3339()
}

/// Tags in the three encodings seen: array, comma list, JSON in a string.
fn tags(tags: &[String], id: u64) -> Value {
    match id % 3 {
        0 => json!(tags),
        1 => json!(tags.join(",")),
        _ => json!(serde_json::to_string(tags).expect("tags serialise")),
    }
}
