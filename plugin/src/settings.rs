//! The connector's settings: their schema (shown by the host as a form) and
//! their parsed, validated form.

use crate::hrsync::connector::types::{ConnectorError, Entry, PersonStatus, SettingKind, SettingSpec};

/// Personio's public API origin.
pub const DEFAULT_BASE_URL: &str = "https://api.personio.de";
/// Sent as `X-Personio-App-ID` so Personio can tell integrations apart.
pub const APP_ID: &str = "HRSYNC";

pub const CLIENT_ID: &str = "client-id";
pub const CLIENT_SECRET: &str = "client-secret";
pub const SUBDOMAIN: &str = "company-subdomain";
pub const BASE_URL: &str = "api-base-url";
pub const STATUSES: &str = "import-statuses";
pub const EMPLOYEE_ID: &str = "employee-id-attribute";
pub const DEPARTMENT: &str = "department-attribute";
pub const CUSTOM: &str = "custom-attributes";
pub const API_VERSION: &str = "api-version";

/// Which of Personio's APIs runs read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// v2 when the credential may read persons, else v1.
    Auto,
    /// `/v1/company/employees`.
    V1,
    /// `/v2/persons` and their employments.
    V2,
}

const STATUS_NAMES: [&str; 4] = ["active", "onboarding", "leave", "inactive"];
const DEFAULT_STATUSES: &str = "active,onboarding,leave";

/// The settings schema returned by `describe`.
pub fn specs() -> Vec<SettingSpec> {
    let spec = |key: &str, label: &str, kind, required, default: Option<&str>, help: &str| SettingSpec {
        key: key.into(),
        label: label.into(),
        kind,
        required,
        default_value: default.map(Into::into),
        choices: Vec::new(),
        help: help.into(),
    };
    vec![
        spec(
            CLIENT_ID,
            "Client ID",
            SettingKind::Text,
            true,
            None,
            "In Personio: Settings → Integrations → API credentials → Generate new credential.",
        ),
        spec(
            CLIENT_SECRET,
            "Client secret",
            SettingKind::Secret,
            true,
            None,
            "Shown once by Personio when the credential is created.",
        ),
        spec(
            SUBDOMAIN,
            "Company subdomain",
            SettingKind::Text,
            false,
            None,
            "The `acme` in acme.personio.de; used for links to employee profiles.",
        ),
        spec(
            BASE_URL,
            "API base URL",
            SettingKind::Text,
            false,
            Some(DEFAULT_BASE_URL),
            "Change only to point at a Personio sandbox or proxy.",
        ),
        SettingSpec {
            choices: STATUS_NAMES.iter().map(|s| s.to_string()).collect(),
            ..spec(
                STATUSES,
                "Import people with status",
                SettingKind::MultiChoice,
                false,
                Some(DEFAULT_STATUSES),
                "New directory users are created only for these statuses. People already \
                 imported are always kept up to date, and deactivated when they turn inactive.",
            )
        },
        spec(
            EMPLOYEE_ID,
            "Employee ID attribute",
            SettingKind::Attribute,
            false,
            Some("id"),
            "The Personio attribute shown as employee ID: `id`, or a custom one such as `dynamic_1003`.",
        ),
        spec(
            DEPARTMENT,
            "Department attribute",
            SettingKind::Attribute,
            false,
            Some("department"),
            "Where the department comes from: `department`, `team`, `subcompany` or a custom `dynamic_…` attribute.",
        ),
        spec(
            CUSTOM,
            "Custom attributes",
            SettingKind::AttributeList,
            false,
            None,
            "Comma-separated `dynamic_…` keys to import as custom attributes, e.g. `dynamic_1001, dynamic_1002`.",
        ),
        SettingSpec {
            choices: ["auto", "v1", "v2"].iter().map(|s| s.to_string()).collect(),
            ..spec(
                API_VERSION,
                "Personio API",
                SettingKind::Choice,
                false,
                Some("auto"),
                "auto: API v2 (persons and employments) when the credential may read persons, else v1. \
                 Both give the same people; Test connection says which is used.",
            )
        },
    ]
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub client_id: String,
    pub client_secret: String,
    pub subdomain: Option<String>,
    /// Without a trailing slash.
    pub base_url: String,
    pub statuses: Vec<PersonStatus>,
    pub employee_id: String,
    pub department: String,
    pub custom: Vec<String>,
    pub api_version: ApiVersion,
}

impl Settings {
    /// Parses the host's key/value settings. Credentials are only required
    /// where they are used ([`Settings::credentials`]), so that the pure
    /// `map-fields` and `diff` work without them.
    pub fn parse(entries: &[Entry]) -> Result<Self, ConnectorError> {
        let get =
            |key: &str| entries.iter().rev().find(|e| e.key == key).map(|e| e.value.trim()).filter(|v| !v.is_empty());
        let base_url = get(BASE_URL).unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/').to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(invalid(format!(
                "`{BASE_URL}` must start with https:// (got `{base_url}`); leave it empty for {DEFAULT_BASE_URL}"
            )));
        }
        let statuses = parse_statuses(get(STATUSES).unwrap_or(DEFAULT_STATUSES))?;
        let subdomain =
            get(SUBDOMAIN).map(|s| s.trim_start_matches("https://").split('.').next().unwrap_or_default().to_string());
        if let Some(sub) = &subdomain
            && (sub.is_empty() || !sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(invalid(format!(
                "`{SUBDOMAIN}` must be the company's subdomain, like `acme` for acme.personio.de (got `{sub}`)"
            )));
        }
        let attribute = |key: &str, default: &str| -> Result<String, ConnectorError> {
            let value = get(key).unwrap_or(default);
            if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                Ok(value.to_string())
            } else {
                Err(invalid(format!(
                    "`{key}` must be a Personio attribute key such as `{default}` or `dynamic_1234` (got `{value}`)"
                )))
            }
        };
        let employee_id = attribute(EMPLOYEE_ID, "id")?;
        let department = attribute(DEPARTMENT, "department")?;
        let mut custom = Vec::new();
        for key in get(CUSTOM).unwrap_or_default().split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(format!(
                    "`{CUSTOM}` lists `{key}`, which is not an attribute key; use keys like `dynamic_1001`"
                )));
            }
            if !custom.iter().any(|k| k == key) {
                custom.push(key.to_string());
            }
        }
        custom.sort();
        let api_version = match get(API_VERSION).unwrap_or("auto").to_ascii_lowercase().as_str() {
            "auto" => ApiVersion::Auto,
            "v1" => ApiVersion::V1,
            "v2" => ApiVersion::V2,
            other => return Err(invalid(format!("`{API_VERSION}` is `{other}`; choose auto, v1 or v2"))),
        };
        Ok(Settings {
            client_id: get(CLIENT_ID).unwrap_or_default().to_string(),
            client_secret: get(CLIENT_SECRET).unwrap_or_default().to_string(),
            subdomain,
            base_url,
            statuses,
            employee_id,
            department,
            custom,
            api_version,
        })
    }

    /// The credentials, or an error naming the missing setting.
    pub fn credentials(&self) -> Result<(&str, &str), ConnectorError> {
        for (key, value) in [(CLIENT_ID, &self.client_id), (CLIENT_SECRET, &self.client_secret)] {
            if value.is_empty() {
                return Err(invalid(format!(
                    "`{key}` is empty: create an API credential in Personio (Settings → Integrations → API credentials) and paste it here"
                )));
            }
        }
        Ok((&self.client_id, &self.client_secret))
    }

    /// The attribute keys to request (`attributes[]`): only what is mapped.
    pub fn projection(&self) -> Vec<String> {
        let mut keys: Vec<String> = crate::mapping::STANDARD_ATTRIBUTES.iter().map(|k| k.to_string()).collect();
        for extra in [&self.employee_id, &self.department].into_iter().chain(&self.custom) {
            if !keys.contains(extra) {
                keys.push(extra.clone());
            }
        }
        keys
    }
}

fn parse_statuses(value: &str) -> Result<Vec<PersonStatus>, ConnectorError> {
    let mut out = Vec::new();
    for name in value.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
        let status = crate::mapping::parse_status(&name).ok_or_else(|| {
            invalid(format!("`{STATUSES}` contains `{name}`; choose from {}", STATUS_NAMES.join(", ")))
        })?;
        if !out.contains(&status) {
            out.push(status);
        }
    }
    if out.is_empty() {
        return Err(invalid(format!("`{STATUSES}` is empty; choose at least one of {}", STATUS_NAMES.join(", "))));
    }
    Ok(out)
}

fn invalid(message: String) -> ConnectorError {
    ConnectorError::InvalidSettings(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hrsync_connector_kit::settings::entries;

    #[test]
    fn defaults_apply_to_empty_settings() {
        let s = Settings::parse(&[]).unwrap();
        assert_eq!(s.base_url, DEFAULT_BASE_URL);
        assert_eq!(s.statuses, vec![PersonStatus::Active, PersonStatus::Onboarding, PersonStatus::Leave]);
        assert_eq!(s.employee_id, "id");
        assert_eq!(s.api_version, ApiVersion::Auto);
        assert!(s.credentials().is_err());
    }

    #[test]
    fn trailing_slash_and_subdomain_url_are_normalised() {
        let s = Settings::parse(&entries(&[
            (BASE_URL, "http://127.0.0.1:9000/"),
            (SUBDOMAIN, "acme.personio.de"),
            (CUSTOM, "dynamic_2, dynamic_1,dynamic_2"),
        ]))
        .unwrap();
        assert_eq!(s.base_url, "http://127.0.0.1:9000");
        assert_eq!(s.subdomain.as_deref(), Some("acme"));
        assert_eq!(s.custom, vec!["dynamic_1", "dynamic_2"]);
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (key, value) in [
            (BASE_URL, "ftp://x"),
            (STATUSES, "active,fired"),
            (STATUSES, " , "),
            (EMPLOYEE_ID, "id; drop"),
            (CUSTOM, "dynamic 1"),
            (SUBDOMAIN, "a/b"),
            (API_VERSION, "v3"),
        ] {
            match Settings::parse(&entries(&[(key, value)])) {
                Err(ConnectorError::InvalidSettings(m)) => assert!(m.contains(key), "{m}"),
                other => panic!("{key}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn projection_holds_mapped_attributes_once() {
        let s = Settings::parse(&entries(&[(EMPLOYEE_ID, "dynamic_9"), (DEPARTMENT, "team"), (CUSTOM, "dynamic_9")]))
            .unwrap();
        let p = s.projection();
        assert_eq!(p.iter().filter(|k| *k == "dynamic_9").count(), 1);
        assert!(p.contains(&"team".to_string()) && p.contains(&"email".to_string()));
    }
}
