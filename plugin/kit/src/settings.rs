//! Reading the admin's settings. Values arrive as strings keyed by the
//! `setting-spec` keys of `describe`; errors name the setting to fix.

use crate::types::{ConnectorError, Entry};

/// Settings from key/value pairs, as tests and tools build them.
pub fn entries(pairs: &[(&str, &str)]) -> Vec<Entry> {
    pairs.iter().map(|(k, v)| Entry { key: k.to_string(), value: v.to_string() }).collect()
}

/// The value of `key`, trimmed; `None` when absent or empty. The last entry
/// wins if a key repeats.
pub fn get<'a>(settings: &'a [Entry], key: &str) -> Option<&'a str> {
    settings.iter().rev().find(|e| e.key == key).map(|e| e.value.trim()).filter(|v| !v.is_empty())
}

/// The value of a required setting, or `invalid-settings` naming it.
pub fn required<'a>(settings: &'a [Entry], key: &str, label: &str) -> Result<&'a str, ConnectorError> {
    get(settings, key).ok_or_else(|| ConnectorError::InvalidSettings(format!("`{key}` ({label}) is required")))
}

/// A flag setting: "true" or "false" (absent: `default`).
pub fn flag(settings: &[Entry], key: &str, default: bool) -> Result<bool, ConnectorError> {
    match get(settings, key) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ConnectorError::InvalidSettings(format!("`{key}` must be true or false, not `{other}`"))),
    }
}

/// A comma-separated list, trimmed, empty items dropped.
pub fn list(settings: &[Entry], key: &str) -> Vec<String> {
    get(settings, key)
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_and_the_last_one_wins() {
        let s = entries(&[("url", " a "), ("url", "b"), ("empty", "  ")]);
        assert_eq!(get(&s, "url"), Some("b"));
        assert_eq!(get(&s, "empty"), None);
        assert!(
            matches!(required(&s, "empty", "Empty"), Err(ConnectorError::InvalidSettings(m)) if m.contains("`empty` (Empty)"))
        );
    }

    #[test]
    fn flags_and_lists_parse_or_say_what_is_wrong() {
        let s = entries(&[("f", "true"), ("g", "yes"), ("l", "a, b,,c ")]);
        assert!(flag(&s, "f", false).unwrap());
        assert!(!flag(&s, "missing", false).unwrap());
        assert!(flag(&s, "g", false).is_err());
        assert_eq!(list(&s, "l"), ["a", "b", "c"]);
    }
}
