//! Personio's webhooks (contract 0.4.0 `hr-events`): what a delivery is
//! about. Deliveries are "dataless": they name the person (or the
//! employment and its person), and the host fetches them with
//! `fetch-people`. Pure: no I/O.

use serde_json::Value;

use crate::hrsync::connector::types::ConnectorError;
use hrsync_connector_kit::events::Event;

/// The events a subscription asks for: every person and employment change.
pub const EVENTS: [&str; 6] = [
    "person.created",
    "person.updated",
    "person.deleted",
    "employment.created",
    "employment.updated",
    "employment.deleted",
];

/// Reads one delivery's body: `{company_id, event_name, occurred_at, payload, meta?}`.
pub fn handle(body: &str) -> Result<Event, ConnectorError> {
    let delivery: Value = serde_json::from_str(body)
        .map_err(|e| ConnectorError::BadResponse(format!("a webhook delivery that is not JSON ({e})")))?;
    let Some(name) = delivery.get("event_name").and_then(Value::as_str) else {
        return Ok(Event::Ignored("a delivery without `event_name`".into()));
    };
    let payload = delivery.get("payload");
    let id_at = |pointer: &str| payload.and_then(|p| p.pointer(pointer)).and_then(crate::attributes::id_of);
    let person = match name.split_once('.') {
        Some(("person", _)) => id_at("/id"),
        // An employment names its person; a bare employment id cannot be
        // traced without another request, and the daily run covers it.
        Some(("employment", _)) => id_at("/person/id").or_else(|| id_at("/person_id")),
        _ => return Ok(Event::Ignored(format!("`{name}` is not about people"))),
    };
    let Some(person) = person else {
        return Ok(Event::Ignored(format!("`{name}` names no person")));
    };
    Ok(match name {
        "person.deleted" => Event::Deleted(vec![person]),
        // A removed employment changes its person (their latest employment).
        _ => Event::Changed(vec![person]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_name_the_person_they_are_about() {
        let person = |event: &str, payload: &str| {
            handle(&format!(
                r#"{{"company_id":1,"event_name":"{event}","occurred_at":"2026-01-01T00:00:00Z","payload":{payload}}}"#
            ))
        };
        assert_eq!(person("person.updated", r#"{"id":"1042"}"#).unwrap(), Event::Changed(vec!["1042".into()]));
        assert_eq!(person("person.created", r#"{"id":1042}"#).unwrap(), Event::Changed(vec!["1042".into()]));
        assert_eq!(person("person.deleted", r#"{"id":"7"}"#).unwrap(), Event::Deleted(vec!["7".into()]));
        let employment = r#"{"id":"c85d978e","person":{"id":"3003"}}"#;
        assert_eq!(person("employment.updated", employment).unwrap(), Event::Changed(vec!["3003".into()]));
        assert_eq!(person("employment.deleted", employment).unwrap(), Event::Changed(vec!["3003".into()]));
        assert!(matches!(person("employment.updated", r#"{"id":"c85d978e"}"#).unwrap(), Event::Ignored(_)));
        assert!(matches!(person("absence.created", r#"{"id":"1"}"#).unwrap(), Event::Ignored(_)));
        assert!(matches!(handle(r#"{"hello":1}"#).unwrap(), Event::Ignored(_)));
        assert!(matches!(handle("<html>"), Err(ConnectorError::BadResponse(_))));
    }
}
