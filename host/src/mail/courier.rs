//! Delivers the outbox over SMTP (lettre): claims due rows with a lease,
//! sends each with its stored Message-ID, and records success or schedules
//! a retry with back-off.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use super::MailRecord;
use crate::directory::DirectoryStore;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine or in tests.
    None,
}

/// Where and how to send mail. The password is never read from a file:
/// it comes from `HRSYNC_SMTP_PASSWORD`, so it is neither stored nor logged.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    pub username: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
    /// The sender, e.g. `hrsync <people@acme.example>`.
    pub from: String,
    /// An extra CA certificate (PEM) to trust, for a relay whose certificate
    /// a private CA issued; public certificates need nothing.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("from", &self.from)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Attempts before a message is given up and shown as failed.
const MAX_ATTEMPTS: u32 = 8;
/// How long a claimed row is reserved for the worker that claimed it.
const LEASE: chrono::Duration = chrono::Duration::minutes(5);
/// The longest one message may take. lettre's async transport bounds only
/// the connect (lettre issue #1027): without this, a relay that stops
/// answering mid-conversation would hold the worker, and every later mail,
/// forever.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// The wait before attempt `n + 1`: 30 s doubling, at most an hour.
pub fn backoff(attempts: u32) -> chrono::Duration {
    let seconds = 30i64.saturating_mul(1 << attempts.min(7).saturating_sub(1)).min(3600);
    chrono::Duration::seconds(seconds)
}

/// What one delivery round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub sent: u32,
    pub retrying: u32,
    pub failed: u32,
}

/// The outbox worker.
pub struct Courier {
    store: Arc<dyn DirectoryStore>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The relay, for messages.
    host: String,
    send_timeout: Duration,
}

impl Courier {
    /// A courier for these settings; errors say which setting is wrong.
    pub fn new(store: Arc<dyn DirectoryStore>, settings: &SmtpSettings) -> anyhow::Result<Self> {
        let from: Mailbox = settings.from.parse().map_err(|e| {
            anyhow::anyhow!("smtp.from `{}` is not an address like `hrsync <people@acme.example>`: {e}", settings.from)
        })?;
        let mut builder = match settings.security {
            Security::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)?,
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)?,
            Security::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host),
        };
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                anyhow::anyhow!("smtp.ca_file {}: {e}; give the path of a PEM certificate", ca.display())
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("smtp.ca_file {} is not a PEM certificate: {e}", ca.display()))?;
            let params = TlsParameters::builder(settings.host.clone()).add_root_certificate(cert).build()?;
            builder = match settings.security {
                Security::Starttls => builder.tls(Tls::Required(params)),
                Security::Tls => builder.tls(Tls::Wrapper(params)),
                Security::None => anyhow::bail!("smtp.ca_file is set but smtp.security is none; use starttls or tls"),
            };
        }
        if let Some(port) = settings.port {
            builder = builder.port(port);
        }
        if let Some(user) = &settings.username {
            let password = settings.password.clone().ok_or_else(|| {
                anyhow::anyhow!("smtp.username is set but HRSYNC_SMTP_PASSWORD is not; set it in the environment")
            })?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let transport = builder.timeout(Some(Duration::from_secs(30))).build();
        Ok(Courier { store, transport, from, host: settings.host.clone(), send_timeout: SEND_TIMEOUT })
    }

    /// Bounds each message by `timeout` instead of [`SEND_TIMEOUT`] (tests).
    pub fn with_send_timeout(self, timeout: Duration) -> Self {
        Courier { send_timeout: timeout, ..self }
    }

    /// Sends every message that is due now; failures are retried later.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> anyhow::Result<Delivery> {
        let store = self.store.clone();
        let due = tokio::task::spawn_blocking(move || store.claim_mail(now, LEASE, 50)).await??;
        // Never start a send the lease could run out under: another worker
        // could then claim and send the same message. What is left stays
        // leased and is claimed again when the lease ends.
        let last_start = std::time::Instant::now() + LEASE.to_std().expect("a positive lease") - self.send_timeout;
        let mut delivery = Delivery::default();
        for mail in due {
            if std::time::Instant::now() >= last_start {
                break;
            }
            let outcome = self.send(&mail).await;
            let store = self.store.clone();
            let id = mail.id;
            match outcome {
                Ok(()) => {
                    tokio::task::spawn_blocking(move || store.mail_sent(id, Utc::now())).await??;
                    delivery.sent += 1;
                }
                Err(e) => {
                    let attempts = mail.attempts + 1;
                    let retry = (attempts < MAX_ATTEMPTS).then(|| now + backoff(attempts));
                    if retry.is_some() {
                        delivery.retrying += 1
                    } else {
                        delivery.failed += 1
                    }
                    tracing::warn!(mail = id, attempts, "sending mail to {} failed: {e}", mail.recipient);
                    let error = e.to_string();
                    tokio::task::spawn_blocking(move || store.mail_failed(id, &error, retry)).await??;
                }
            }
        }
        Ok(delivery)
    }

    async fn send(&self, mail: &MailRecord) -> anyhow::Result<()> {
        let to: Mailbox = mail.recipient.parse()?;
        let builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(mail.message_id.clone()));
        let message = match &mail.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.text.clone(), html.clone()))?,
            None => builder.header(ContentType::TEXT_PLAIN).body(mail.text.clone())?,
        };
        match tokio::time::timeout(self.send_timeout, self.transport.send(message)).await {
            Ok(sent) => sent.map(drop).map_err(Into::into),
            Err(_) => anyhow::bail!(
                "the SMTP server {} did not finish within {} s; it is retried later",
                self.host,
                self.send_timeout.as_secs()
            ),
        }
    }

    /// Delivers until `shutdown` resolves: every few seconds, and at once
    /// when `wake` is notified (an import queued mail).
    pub async fn run(self, wake: Arc<tokio::sync::Notify>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.deliver_due(Utc::now()).await {
                tracing::error!("the mail outbox could not be processed: {e:#}");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_30_seconds_up_to_an_hour() {
        assert_eq!(backoff(1).num_seconds(), 30);
        assert_eq!(backoff(2).num_seconds(), 60);
        assert_eq!(backoff(3).num_seconds(), 120);
        assert_eq!(backoff(20).num_seconds(), 1920);
        assert!(backoff(u32::MAX).num_seconds() <= 3600);
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let s = SmtpSettings {
            host: "smtp.acme.example".into(),
            port: None,
            security: Security::Starttls,
            username: Some("hr".into()),
            password: Some("hunter2".into()),
            from: "hrsync <people@acme.example>".into(),
            ca_file: None,
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && shown.contains("<set>"), "{shown}");
    }
}
