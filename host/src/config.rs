//! The server's configuration file (`hrsync --config hrsync.toml serve`).
//!
//! Precedence, lowest first: built-in defaults, this file, environment
//! variables, command-line flags. Unknown keys are errors, so a typo never
//! silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::mail::{Security, SmtpSettings};

/// The default address of the web server: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "hrsync-data";

/// What a configuration file may set; everything is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address of the web server, e.g. `0.0.0.0:8080`.
    pub bind: Option<SocketAddr>,
    /// A PostgreSQL database several replicas share, with tenants
    /// (`postgres://user:password@host:5432/hrsync`; `HRSYNC_DATABASE_URL`
    /// overrides it). Without it: SQLite in the data directory, one company.
    pub database_url: Option<String>,
    /// Where the database, key file, connector cache and connectors live.
    /// Relative paths are taken from the file's directory.
    pub data_dir: Option<PathBuf>,
    /// Extra connectors are loaded from here [default: DATA_DIR/connectors].
    pub connectors_dir: Option<PathBuf>,
    /// Where people reach hrsync, for links in emails [default: http://BIND].
    pub public_url: Option<String>,
    /// The company name in invitation emails.
    pub company_name: Option<String>,
    /// Who is alerted when automatic imports keep failing or are blocked.
    #[serde(default)]
    pub alert_emails: Vec<String>,
    /// Outgoing mail; without it, mail stays in the outbox (Emails page).
    pub smtp: Option<SmtpSettings>,
    /// Requests a minute hrsync sends to each integration's source
    /// [default: 240, 80 % of Personio's 300]; 0 turns pacing off.
    pub requests_per_minute: Option<u32>,
    /// Reverse proxies in front of hrsync whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed (client addresses for the sign-in
    /// throttle and the audit log; HTTPS for Secure cookies and HSTS). From
    /// anyone else, those headers are ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// The default pace: 80 % of Personio's documented 300 requests a minute,
/// in bursts of at most 10 (Personio allows 15 a second).
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 240;
pub const PACE_BURST: u32 = 10;

impl FileConfig {
    /// Requests a minute and burst, or `None` for no pacing.
    pub fn pace(&self) -> Option<(u32, u32)> {
        match self.requests_per_minute.unwrap_or(DEFAULT_REQUESTS_PER_MINUTE) {
            0 => None,
            n => Some((n, PACE_BURST.min(n))),
        }
    }
}

impl FileConfig {
    /// Reads and checks `path`; errors name the file and the problem.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))?;
        let mut config = Self::parse(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for dir in [&mut config.data_dir, &mut config.connectors_dir].into_iter().flatten() {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        Ok(config)
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| {
            format!(
                "{} (keys: bind, data_dir, connectors_dir, public_url, company_name, alert_emails, requests_per_minute, \
                 trusted_proxies, [smtp] host, port, security = starttls|tls|none, username, from, ca_file)",
                e.message().trim_end()
            )
        })
    }

    /// SMTP settings from the file, overridden by `HRSYNC_SMTP_*` variables;
    /// the password only ever comes from `HRSYNC_SMTP_PASSWORD`.
    pub fn smtp(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<SmtpSettings>, String> {
        let mut smtp = self.smtp.clone();
        if let Some(host) = env("HRSYNC_SMTP_HOST") {
            let from = env("HRSYNC_SMTP_FROM").or(smtp.as_ref().map(|s| s.from.clone()));
            let from = from.ok_or("HRSYNC_SMTP_HOST is set but not HRSYNC_SMTP_FROM (the sender address)")?;
            let base = smtp.take();
            smtp = Some(SmtpSettings {
                host,
                from,
                port: base.as_ref().and_then(|b| b.port),
                security: base.as_ref().map_or(Security::default(), |b| b.security),
                username: base.as_ref().and_then(|b| b.username.clone()),
                ca_file: base.and_then(|b| b.ca_file),
                password: None,
            });
        }
        let Some(mut smtp) = smtp else { return Ok(None) };
        if let Some(port) = env("HRSYNC_SMTP_PORT") {
            smtp.port = Some(port.parse().map_err(|_| format!("HRSYNC_SMTP_PORT `{port}` is not a port number"))?);
        }
        if let Some(security) = env("HRSYNC_SMTP_SECURITY") {
            smtp.security = match security.as_str() {
                "starttls" => Security::Starttls,
                "tls" => Security::Tls,
                "none" => Security::None,
                other => return Err(format!("HRSYNC_SMTP_SECURITY `{other}` is not starttls, tls or none")),
            };
        }
        if let Some(user) = env("HRSYNC_SMTP_USERNAME") {
            smtp.username = Some(user);
        }
        if let Some(from) = env("HRSYNC_SMTP_FROM") {
            smtp.from = from;
        }
        if let Some(ca) = env("HRSYNC_SMTP_CA_FILE") {
            smtp.ca_file = Some(ca.into());
        }
        smtp.password = env("HRSYNC_SMTP_PASSWORD");
        Ok(Some(smtp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = FileConfig::parse("bind = \"0.0.0.0:9000\"\ndata_dir = \"/var/lib/hrsync\"\n").unwrap();
        assert_eq!(c.bind, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/var/lib/hrsync")));
        assert!(FileConfig::parse("").unwrap().bind.is_none());
    }

    #[test]
    fn typos_and_bad_values_are_errors_that_say_what_is_allowed() {
        let e = FileConfig::parse("bnd = \"0.0.0.0:9000\"").unwrap_err();
        assert!(e.contains("bnd") && e.contains("keys: bind"), "{e}");
        let e = FileConfig::parse("bind = \"localhost\"").unwrap_err();
        assert!(e.contains("socket address"), "{e}");
    }

    #[test]
    fn smtp_comes_from_the_file_and_the_environment_but_the_password_only_from_the_environment() {
        let file =
            FileConfig::parse("[smtp]\nhost = \"mail.acme.example\"\nfrom = \"hr@acme.example\"\nusername = \"hr\"\n")
                .unwrap();
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let s = file.smtp(env(&[("HRSYNC_SMTP_PASSWORD", "pw"), ("HRSYNC_SMTP_PORT", "2525")])).unwrap().unwrap();
        assert_eq!((s.host.as_str(), s.port, s.password.as_deref()), ("mail.acme.example", Some(2525), Some("pw")));
        assert_eq!(s.security, Security::Starttls);
        assert!(FileConfig::parse("[smtp]\nhost = \"x\"\nfrom = \"a@b.c\"\npassword = \"leak\"\n").is_err());
        let none = FileConfig::default();
        assert!(none.smtp(env(&[])).unwrap().is_none());
        let e = none.smtp(env(&[("HRSYNC_SMTP_HOST", "localhost")])).unwrap_err();
        assert!(e.contains("HRSYNC_SMTP_FROM"), "{e}");
        let s = none
            .smtp(env(&[
                ("HRSYNC_SMTP_HOST", "localhost"),
                ("HRSYNC_SMTP_FROM", "a@b.c"),
                ("HRSYNC_SMTP_SECURITY", "none"),
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(s.security, Security::None);
        assert!(
            none.smtp(env(&[("HRSYNC_SMTP_HOST", "h"), ("HRSYNC_SMTP_FROM", "a@b.c"), ("HRSYNC_SMTP_PORT", "x")]))
                .is_err()
        );
    }

    #[test]
    fn relative_directories_are_taken_from_the_file() {
        let dir = std::env::temp_dir().join(format!("hrsync-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hrsync.toml");
        std::fs::write(&file, "data_dir = \"data\"\n").unwrap();
        assert_eq!(FileConfig::load(&file).unwrap().data_dir, Some(dir.join("data")));
        assert!(FileConfig::load(&dir.join("missing.toml")).unwrap_err().to_string().contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
