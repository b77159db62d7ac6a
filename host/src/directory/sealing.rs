//! Integration settings at rest, the same in every store: one JSON object
//! of setting key → value, where the values of secret settings are sealed
//! with the data directory's key and nothing marks them but the seal.

use std::collections::BTreeMap;

use super::IntegrationConfig;
use crate::secrets::SecretBox;

/// The settings as stored: secret values sealed.
pub fn seal_settings(secrets: &SecretBox, config: &IntegrationConfig) -> String {
    let sealed: BTreeMap<&String, String> = config
        .settings
        .iter()
        .map(|(k, v)| {
            let value = if config.secret_keys.contains(k) && !v.is_empty() { secrets.seal(v) } else { v.clone() };
            (k, value)
        })
        .collect();
    serde_json::to_string(&sealed).expect("a map of strings serialises")
}

/// Reads stored settings into `config`: sealed values are opened and
/// their keys marked secret. An error names the setting that cannot be
/// opened (another data directory's key, or a damaged value).
pub fn open_settings(secrets: &SecretBox, stored: &str, config: &mut IntegrationConfig) -> Result<(), String> {
    let settings: BTreeMap<String, String> =
        serde_json::from_str(stored).map_err(|e| format!("the stored settings are not a JSON object: {e}"))?;
    for (key, value) in settings {
        if SecretBox::is_sealed(&value) {
            let plain = secrets.open_sealed(&value).map_err(|e| format!("setting `{key}`: {e}"))?;
            config.secret_keys.insert(key.clone());
            config.settings.insert(key, plain);
        } else {
            config.settings.insert(key, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_sealed_and_opened_others_stay_plain() {
        let secrets = SecretBox::from_key(&[7; 32]);
        let mut config = IntegrationConfig::new("personio", "p");
        config.settings.insert("client-id".into(), "abc".into());
        config.settings.insert("client-secret".into(), "s3cret".into());
        config.secret_keys.insert("client-secret".into());
        let stored = seal_settings(&secrets, &config);
        assert!(stored.contains("\"client-id\":\"abc\"") && !stored.contains("s3cret"), "{stored}");

        let mut read = IntegrationConfig::new("personio", "p");
        open_settings(&secrets, &stored, &mut read).unwrap();
        assert_eq!((read.settings, read.secret_keys), (config.settings, config.secret_keys));

        let other = SecretBox::from_key(&[8; 32]);
        let err = open_settings(&other, &stored, &mut IntegrationConfig::new("personio", "p")).unwrap_err();
        assert!(err.contains("client-secret"), "{err}");
    }
}
