//! The CSV connector's settings: where the file is, how to authenticate,
//! and which column holds what.

use hrsync_connector_kit::settings::{get, required};
use hrsync_connector_kit::types::{ConnectorError, Entry, PersonStatus, SettingKind, SettingSpec};

/// A field of a person and the column it comes from by default.
pub struct Column {
    pub key: &'static str,
    pub label: &'static str,
    pub default: &'static str,
    pub required: bool,
}

/// The column settings, in form order.
pub const COLUMNS: [Column; 11] = [
    Column { key: "id-column", label: "Person id column", default: "id", required: true },
    Column { key: "first-name-column", label: "First name column", default: "first_name", required: true },
    Column { key: "last-name-column", label: "Last name column", default: "last_name", required: true },
    Column { key: "email-column", label: "Email column", default: "email", required: true },
    Column { key: "status-column", label: "Status column", default: "status", required: false },
    Column { key: "manager-column", label: "Manager id column", default: "manager_id", required: false },
    Column { key: "job-title-column", label: "Job title column", default: "job_title", required: false },
    Column { key: "department-column", label: "Department column", default: "department", required: false },
    Column { key: "start-date-column", label: "Start date column", default: "start_date", required: false },
    Column {
        key: "termination-date-column",
        label: "Termination date column",
        default: "termination_date",
        required: false,
    },
    Column { key: "employee-id-column", label: "Employee ID column", default: "employee_id", required: false },
];

const STATUS_NAMES: [&str; 4] = ["active", "onboarding", "leave", "inactive"];

/// The settings schema `describe` returns.
pub fn specs() -> Vec<SettingSpec> {
    let spec =
        |key: &str, label: &str, kind, required, default: Option<&str>, choices: &[&str], help: &str| SettingSpec {
            key: key.into(),
            label: label.into(),
            kind,
            required,
            default_value: default.map(Into::into),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            help: help.into(),
        };
    let mut specs = vec![
        spec(
            "url",
            "Export URL",
            SettingKind::Text,
            true,
            None,
            &[],
            "The HTTPS address the CSV is published at. Grant its origin below.",
        ),
        spec(
            "auth",
            "Authentication",
            SettingKind::Choice,
            false,
            Some("none"),
            &["none", "basic", "bearer"],
            "How the address is protected.",
        ),
        spec("username", "Username", SettingKind::Text, false, None, &[], "For basic authentication."),
        spec("password", "Password", SettingKind::Secret, false, None, &[], "For basic authentication."),
        spec("token", "Bearer token", SettingKind::Secret, false, None, &[], "For bearer authentication."),
        spec(
            "delimiter",
            "Delimiter",
            SettingKind::Choice,
            false,
            Some("comma"),
            &["comma", "semicolon", "tab"],
            "What separates the columns.",
        ),
        spec(
            "import-statuses",
            "Import people with status",
            SettingKind::MultiChoice,
            false,
            Some("active,onboarding,leave"),
            &STATUS_NAMES,
            "New directory users are created only for these statuses. Without a status column everyone is active.",
        ),
    ];
    for c in &COLUMNS {
        specs.push(spec(
            c.key,
            c.label,
            SettingKind::Attribute,
            false,
            Some(c.default),
            &[],
            "The column's header. Test the connection to pick from the file's headers.",
        ));
    }
    specs
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub auth: Auth,
    pub delimiter: u8,
    pub statuses: Vec<PersonStatus>,
    /// Header of each column setting, by setting key.
    pub columns: Vec<(&'static str, String)>,
}

impl Settings {
    pub fn parse(entries: &[Entry]) -> Result<Self, ConnectorError> {
        let invalid = |m: String| ConnectorError::InvalidSettings(m);
        let url = required(entries, "url", "Export URL")?.to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid(format!("`url` must be an https:// address, not `{url}`")));
        }
        let auth = match get(entries, "auth").unwrap_or("none") {
            "none" => Auth::None,
            "basic" => Auth::Basic {
                username: required(entries, "username", "Username")?.to_string(),
                password: required(entries, "password", "Password")?.to_string(),
            },
            "bearer" => Auth::Bearer(required(entries, "token", "Bearer token")?.to_string()),
            other => return Err(invalid(format!("`auth` must be none, basic or bearer, not `{other}`"))),
        };
        let delimiter = match get(entries, "delimiter").unwrap_or("comma") {
            "comma" => b',',
            "semicolon" => b';',
            "tab" => b'\t',
            other => return Err(invalid(format!("`delimiter` must be comma, semicolon or tab, not `{other}`"))),
        };
        let mut statuses = Vec::new();
        for name in get(entries, "import-statuses").unwrap_or("active,onboarding,leave").split(',').map(str::trim) {
            statuses.push(status(name).ok_or_else(|| {
                invalid(format!("`import-statuses`: `{name}` is not one of {}", STATUS_NAMES.join(", ")))
            })?);
        }
        let columns = COLUMNS.iter().map(|c| (c.key, get(entries, c.key).unwrap_or(c.default).to_string())).collect();
        Ok(Settings { url, auth, delimiter, statuses, columns })
    }

    /// The header configured for a column setting.
    pub fn column(&self, key: &str) -> &str {
        self.columns.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str()).unwrap_or_default()
    }
}

/// A status name as exports write it.
pub fn status(name: &str) -> Option<PersonStatus> {
    match name.trim().to_lowercase().as_str() {
        "active" | "employed" => Some(PersonStatus::Active),
        "onboarding" | "hired" => Some(PersonStatus::Onboarding),
        "leave" | "on leave" => Some(PersonStatus::Leave),
        "inactive" | "terminated" | "left" => Some(PersonStatus::Inactive),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hrsync_connector_kit::settings::entries;

    #[test]
    fn defaults_fill_the_columns_and_auth_needs_its_secret() {
        let s = Settings::parse(&entries(&[("url", "https://hr.acme.example/people.csv")])).unwrap();
        assert_eq!((s.auth.clone(), s.delimiter, s.column("email-column")), (Auth::None, b',', "email"));
        let e =
            Settings::parse(&entries(&[("url", "https://x/p.csv"), ("auth", "basic"), ("username", "u")])).unwrap_err();
        assert!(matches!(e, ConnectorError::InvalidSettings(m) if m.contains("`password`")));
        let e = Settings::parse(&entries(&[("url", "ftp://x/p.csv")])).unwrap_err();
        assert!(matches!(e, ConnectorError::InvalidSettings(m) if m.contains("https://")));
        let s = Settings::parse(&entries(&[("url", "https://x/p.csv"), ("email-column", "Work email")])).unwrap();
        assert_eq!(s.column("email-column"), "Work email");
    }

    #[test]
    fn every_column_setting_is_an_attribute_picker() {
        let specs = specs();
        assert!(COLUMNS.iter().all(|c| specs.iter().any(|s| s.key == c.key && s.kind == SettingKind::Attribute)));
        assert!(specs.iter().any(|s| s.key == "password" && s.kind == SettingKind::Secret));
    }
}
