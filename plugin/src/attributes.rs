//! Tolerant reading of Personio's attribute objects.
//!
//! Personio wraps every attribute as `{"label", "value", "type",
//! "universal_id"}`; older responses carry only `label` and `value`, and an
//! attribute the credential may not read is absent rather than null. Labels
//! are localised and renamed over time, so nothing here ever keys on them.

use serde_json::{Map, Value};

use crate::hrsync::connector::types::Date;

/// The `attributes` object of one employee.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a>(&'a Map<String, Value>);

impl<'a> Attributes<'a> {
    /// Accepts `{"type":"Employee","attributes":{…}}` or a bare attributes object.
    pub fn of_employee(employee: &'a Value) -> Option<Self> {
        match employee.get("attributes") {
            Some(Value::Object(map)) => Some(Self(map)),
            _ => employee.as_object().filter(|m| m.contains_key("id")).map(Self),
        }
    }

    /// Whether the credential returned this attribute at all (null counts as present).
    pub fn is_present(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// The attribute object or bare value, by key or, for custom fields, by `universal_id`.
    fn raw(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).or_else(|| self.0.values().find(|v| v.get("universal_id").and_then(Value::as_str) == Some(key)))
    }

    /// The attribute's value; `None` when absent or null.
    pub fn value(&self, key: &str) -> Option<&'a Value> {
        let raw = self.raw(key)?;
        let value = match raw {
            Value::Object(map) if map.contains_key("value") => &map["value"],
            other => other,
        };
        (!value.is_null()).then_some(value)
    }

    /// A displayable text: trimmed strings, numbers, `name` of nested objects,
    /// tags joined by ", ". Empty strings are `None`.
    pub fn text(&self, key: &str) -> Option<String> {
        text_of(self.value(key)?)
    }

    /// A custom attribute's displayable value: tags (by `type`, or in any of
    /// their encodings) are joined by ", ", everything else as [`Self::text`].
    /// Older responses carry no `type`: there a comma-separated value is
    /// taken for tags too, so one tenant's tags are stored in one form.
    pub fn custom_text(&self, key: &str) -> Option<String> {
        let kind = self.raw(key).and_then(|r| r.get("type")).and_then(Value::as_str);
        let looks_like_tags = match self.value(key)? {
            Value::Array(_) => true,
            Value::String(s) if s.trim_start().starts_with('[') => serde_json::from_str::<Vec<Value>>(s).is_ok(),
            Value::String(s) => kind.is_none() && s.contains(','),
            _ => false,
        };
        if kind == Some("tags") || looks_like_tags {
            let tags = self.tags(key);
            (!tags.is_empty()).then(|| tags.join(", "))
        } else {
            self.text(key)
        }
    }

    /// A date, taking the calendar date as written (never shifted to UTC).
    pub fn date(&self, key: &str) -> Result<Option<Date>, String> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => {
                parse_date(s).map(Some).ok_or_else(|| format!("`{s}` is not a date (expected YYYY-MM-DD…)"))
            }
            Some(other) => Err(format!("`{other}` is not a date (expected a string)")),
        }
    }

    /// The id of a referenced employee (`supervisor`), across the nested shapes:
    /// `{"attributes":{"id":{"value":7}}}`, `{"attributes":{"id":7}}`, `{"id":7}`, `7`.
    pub fn reference_id(&self, key: &str) -> Option<String> {
        let value = self.value(key)?;
        let id = match value {
            Value::Object(map) => {
                let inner = map.get("attributes").unwrap_or(value);
                let id = inner.get("id")?;
                match id {
                    Value::Object(o) => o.get("value")?,
                    other => other,
                }
            }
            other => other,
        };
        id_of(id)
    }

    /// Tags in any of their three encodings: a JSON array, a comma-separated
    /// string, or a string holding a JSON array.
    pub fn tags(&self, key: &str) -> Vec<String> {
        match self.value(key) {
            Some(value) => tags_of(value),
            None => Vec::new(),
        }
    }
}

/// An id given as a number or a numeric/opaque string.
pub fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

fn text_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(map) => {
            let inner = map.get("attributes").unwrap_or(value);
            return inner.get("name").and_then(text_of);
        }
        Value::Array(_) => tags_of(value).join(", "),
        Value::Null => return None,
    };
    (!text.is_empty()).then_some(text)
}

fn tags_of(value: &Value) -> Vec<String> {
    let items: Vec<String> = match value {
        Value::Array(items) => items.iter().filter_map(text_of).collect(),
        Value::String(s) => {
            let s = s.trim();
            match serde_json::from_str::<Value>(s) {
                Ok(inner @ Value::Array(_)) => return tags_of(&inner),
                _ => s.split(',').map(|t| t.trim().to_string()).collect(),
            }
        }
        other => text_of(other).into_iter().collect(),
    };
    items.into_iter().filter(|t| !t.is_empty()).collect()
}

/// Parses `2014-11-09`, `2014-11-09T00:00:00+01:00`, `…+0100`, `…Z`: the date
/// part as written. Personio dates are local midnights; converting to UTC
/// would move them to the previous day.
pub fn parse_date(text: &str) -> Option<Date> {
    let text = text.trim();
    let day = text.split(['T', ' ']).next()?;
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    // Require the time part, when present, to look like one.
    if let Some(rest) = text.get(day.len()..).filter(|r| !r.is_empty()) {
        let time = &rest[1..];
        if !time.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    use chrono::Datelike;
    Some(Date { year: date.year(), month: date.month() as u8, day: date.day() as u8 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn employee(attributes: Value) -> Value {
        json!({"type": "Employee", "attributes": attributes})
    }

    fn d(y: i32, m: u8, day: u8) -> Date {
        Date { year: y, month: m, day }
    }

    #[test]
    fn dates_keep_the_local_day_in_every_shape() {
        assert_eq!(parse_date("2014-11-09T00:00:00+01:00"), Some(d(2014, 11, 9)));
        assert_eq!(parse_date("2012-02-01T00:00:00+0100"), Some(d(2012, 2, 1)));
        assert_eq!(parse_date("2021-01-01"), Some(d(2021, 1, 1)));
        assert_eq!(parse_date("2021-01-01T00:00:00Z"), Some(d(2021, 1, 1)));
        assert_eq!(parse_date("2021-01-01 00:00:00"), Some(d(2021, 1, 1)));
        // Midnight in Berlin is the previous day in UTC: still the 1st.
        assert_eq!(parse_date("2020-03-01T00:00:00+02:00"), Some(d(2020, 3, 1)));
    }

    #[test]
    fn impossible_or_free_text_dates_are_rejected() {
        for bad in ["2024-02-30", "09.11.2014", "next monday", "2024-13-01", "2024-01-01Tnoon", ""] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn attributes_with_and_without_type_and_universal_id() {
        let e = employee(json!({
            "id": {"label": "ID", "value": 12, "type": "integer", "universal_id": "id"},
            "first_name": {"label": "Vorname", "value": " Jörg "},
            "position": {"label": "Position", "value": ""},
            "email": {"label": "E-Mail", "value": null},
        }));
        let a = Attributes::of_employee(&e).unwrap();
        assert_eq!(a.text("id").as_deref(), Some("12"));
        assert_eq!(a.text("first_name").as_deref(), Some("Jörg"));
        assert_eq!(a.text("position"), None);
        assert!(a.is_present("email") && a.text("email").is_none());
        assert!(!a.is_present("status"));
    }

    #[test]
    fn custom_attributes_are_found_by_universal_id() {
        let e = employee(json!({
            "id": {"label": "ID", "value": 1},
            "dynamic_99": {"label": "Kostenstelle", "value": "CC-7", "type": "standard", "universal_id": "cost_center_code"}
        }));
        let a = Attributes::of_employee(&e).unwrap();
        assert_eq!(a.text("cost_center_code").as_deref(), Some("CC-7"));
        assert_eq!(a.text("dynamic_99").as_deref(), Some("CC-7"));
    }

    #[test]
    fn nested_objects_give_their_name() {
        let e = employee(json!({
            "id": {"value": 1},
            "department": {"label": "Abteilung", "value": {"type": "Department", "attributes": {"id": 281521, "name": "Customer Support"}}},
            "office": {"label": "Workplace", "value": {"type": "Office", "attributes": {"id": 1, "name": "Berlin"}}},
            "team": {"label": "Team", "value": null},
        }));
        let a = Attributes::of_employee(&e).unwrap();
        assert_eq!(a.text("department").as_deref(), Some("Customer Support"));
        assert_eq!(a.text("office").as_deref(), Some("Berlin"));
        assert_eq!(a.text("team"), None);
    }

    #[test]
    fn supervisor_in_every_shape() {
        let shapes = [
            json!({"type": "Employee", "attributes": {"id": {"label": "ID", "value": 7, "type": "integer", "universal_id": "id"}}}),
            json!({"type": "Employee", "attributes": {"id": {"label": "ID", "value": 7}, "first_name": {"label": "First name", "value": "Ada"}, "email": {"label": "Email", "value": "ada@x.io"}}}),
            json!({"type": "Employee", "attributes": {"id": 7, "first_name": "Ada"}}),
            json!({"id": "7"}),
            json!(7),
        ];
        for shape in shapes {
            let e = employee(json!({"id": {"value": 1}, "supervisor": {"label": "Supervisor", "value": shape}}));
            assert_eq!(Attributes::of_employee(&e).unwrap().reference_id("supervisor").as_deref(), Some("7"), "{e}");
        }
        let none = employee(json!({"id": {"value": 1}, "supervisor": {"label": "Supervisor", "value": null}}));
        assert_eq!(Attributes::of_employee(&none).unwrap().reference_id("supervisor"), None);
    }

    #[test]
    fn tags_are_stored_in_one_form_whatever_their_encoding() {
        let want = Some("Coaching, Recruiting".to_string());
        for (value, kind) in [
            (json!(["Coaching", "Recruiting"]), Some("tags")),
            (json!("Coaching,Recruiting"), Some("tags")),
            (json!("[\"Coaching\",\"Recruiting\"]"), Some("tags")),
            // Older responses: no `type`.
            (json!("Coaching,Recruiting"), None),
            (json!("Coaching , Recruiting"), None),
            (json!(["Coaching", "Recruiting"]), None),
        ] {
            let mut attribute = json!({"label": "Skills", "value": value});
            if let Some(k) = kind {
                attribute["type"] = json!(k);
            }
            let e = employee(json!({"id": {"value": 1}, "dynamic_2": attribute}));
            assert_eq!(Attributes::of_employee(&e).unwrap().custom_text("dynamic_2"), want, "{attribute}");
        }
        // A typed free-text value keeps its commas as written.
        let e = employee(
            json!({"id": {"value": 1}, "dynamic_3": {"label": "Note", "value": "Berlin,Mitte", "type": "standard"}}),
        );
        assert_eq!(Attributes::of_employee(&e).unwrap().custom_text("dynamic_3").as_deref(), Some("Berlin,Mitte"));
    }

    #[test]
    fn tags_in_three_encodings() {
        let want = vec!["Rust".to_string(), "Go".to_string()];
        for value in [json!(["Rust", "Go"]), json!("Rust, Go"), json!("[\"Rust\",\"Go\"]")] {
            let e =
                employee(json!({"id": {"value": 1}, "dynamic_2": {"label": "Skills", "value": value, "type": "tags"}}));
            assert_eq!(Attributes::of_employee(&e).unwrap().tags("dynamic_2"), want);
        }
        let empty = employee(json!({"id": {"value": 1}, "dynamic_2": {"label": "Skills", "value": ""}}));
        assert!(Attributes::of_employee(&empty).unwrap().tags("dynamic_2").is_empty());
    }

    #[test]
    fn bare_attribute_maps_are_accepted() {
        let bare = json!({"id": 5, "first_name": "Zoë"});
        let a = Attributes::of_employee(&bare).unwrap();
        assert_eq!(a.text("first_name").as_deref(), Some("Zoë"));
        assert!(Attributes::of_employee(&json!({"type": "Employee"})).is_none());
    }
}
