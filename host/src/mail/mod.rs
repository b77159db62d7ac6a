//! Email: the messages hrsync sends (invitations with a set-password link,
//! failure alerts), the SMTP settings, and the courier that delivers the
//! transactional outbox.
//!
//! Messages are never sent where they are decided. An import writes its
//! invitations into the `outbox` table in the same transaction that creates
//! the people ([`crate::directory::RunStore::apply`]), so a crash can
//! lose neither the people nor their emails; the [`Courier`] then delivers
//! queued rows over SMTP with retries and back-off. Each row keeps one
//! Message-ID across attempts, so the rare re-send after a crash between the
//! server's acceptance and the database update is recognisably the same
//! message. Without SMTP settings, mail stays queued and is listed on the
//! Emails page.

mod courier;

pub use courier::{Courier, Delivery, Security, SmtpSettings};

use chrono::{DateTime, Utc};
use maud::html;
use serde::Serialize;

use crate::directory::{Email, Profile};

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    Invitation,
    Alert,
}

/// A rendered message, ready for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: MailKind,
    pub to: Email,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// What invitations need to know about the deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    /// Shown in the subject and greeting; without it the words stand alone
    /// ("Your new account", "welcome!").
    pub company: Option<String>,
    /// Where hrsync is reachable for the people invited, e.g.
    /// `https://people.acme.example`; the link is `{public_url}/set-password/{token}`.
    pub public_url: String,
    /// How long a set-password link works.
    pub valid_for: chrono::Duration,
}

impl Default for Invite {
    fn default() -> Self {
        Invite { company: None, public_url: "http://127.0.0.1:8080".into(), valid_for: chrono::Duration::days(7) }
    }
}

impl crate::directory::InvitationWriter for Invite {
    fn valid_for(&self) -> chrono::Duration {
        self.valid_for
    }

    fn write(&self, profile: &Profile, token: &str, expires: DateTime<Utc>) -> Message {
        invitation(profile, self, token, expires)
    }
}

/// An invitation to an example person, for admins to read before any is sent.
pub fn sample_invitation(invite: &Invite) -> Message {
    let email = Email::parse("alex.example@example.com").expect("a valid example address");
    invitation(&Profile::new(email, "Alex", "Example"), invite, "EXAMPLE-LINK", Utc::now() + invite.valid_for)
}

/// The invitation for one person: plain text and HTML, the link in both.
pub fn invitation(profile: &Profile, invite: &Invite, token: &str, expires: DateTime<Utc>) -> Message {
    let link = format!("{}/set-password/{token}", invite.public_url.trim_end_matches('/'));
    let name = profile.preferred_name.as_deref().unwrap_or(&profile.first_name);
    let until = expires.format("%Y-%m-%d %H:%M UTC").to_string();
    let company = invite.company.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let welcome = company.map_or_else(|| "welcome!".to_string(), |c| format!("welcome to {c}!"));
    let text = format!(
        "Hello {name},\n\n{welcome} An account has been created for you ({email}).\n\n\
         Choose your password here:\n{link}\n\n\
         The link works once and until {until}. If it has expired, ask your administrator for a new one.\n",
        email = profile.email,
    );
    // A long unbroken name or address wraps in mail clients too.
    let html = html! {
        div style="overflow-wrap:anywhere;word-break:break-word" {
            p { "Hello " (name) "," }
            p { (welcome) " An account has been created for you (" (profile.email) ")." }
            p { a href=(link) { "Choose your password" } }
            p { small { "The link works once and until " (until) ". If it has expired, ask your administrator for a new one." } }
        }
    };
    Message {
        kind: MailKind::Invitation,
        to: profile.email.clone(),
        subject: match company {
            Some(c) => format!("Your {c} account: choose a password"),
            None => "Your new account: choose a password".into(),
        },
        text,
        html: Some(html.into_string()),
    }
}

/// The one alert of a failure streak or a blocked automatic import.
pub fn alert(to: &Email, integration: &str, problem: &str, link: &str) -> Message {
    let text = format!(
        "Automatic imports of \"{integration}\" need attention:\n\n{problem}\n\n\
         Open the integration to see the run and what to do: {link}\n\
         You get this email once; the next one comes only after imports have worked again.\n"
    );
    Message {
        kind: MailKind::Alert,
        to: to.clone(),
        subject: format!("hrsync: automatic imports of {integration} need attention"),
        text,
        html: None,
    }
}

/// An outbox row as the Emails page and the courier see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailRecord {
    pub id: i64,
    pub kind: MailKind,
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub message_id: String,
    pub state: MailState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl MailRecord {
    /// The text as admins may read it. A set-password link belongs to the
    /// person invited alone: it is hidden once sent, and always when SMTP
    /// delivers the outbox (`smtp`). Only without SMTP, where the Emails
    /// page is how invitations reach people, is a queued link readable.
    pub fn text_for_admins(&self, smtp: bool) -> String {
        const MARK: &str = "/set-password/";
        if !self.hides_link(smtp) {
            return self.text.clone();
        }
        let mut out = String::with_capacity(self.text.len());
        let mut rest = self.text.as_str();
        while let Some(at) = rest.find(MARK) {
            let (head, tail) = rest.split_at(at + MARK.len());
            out.push_str(head);
            out.push_str("(hidden: for the recipient only)");
            rest = tail.trim_start_matches(|c: char| c.is_ascii_hexdigit());
        }
        out.push_str(rest);
        out
    }

    /// This record as admins may see it (see [`Self::text_for_admins`]).
    pub fn for_admins(mut self, smtp: bool) -> Self {
        if self.hides_link(smtp) {
            self.text = self.text_for_admins(smtp);
            self.html = None;
        }
        self
    }

    fn hides_link(&self, smtp: bool) -> bool {
        self.kind == MailKind::Invitation && (smtp || self.state == MailState::Sent)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailState {
    Queued,
    Sending,
    Sent,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(first: &str) -> Profile {
        Profile::new(Email::parse("ada@acme.example").unwrap(), first, "Lovelace")
    }

    #[test]
    fn invitations_carry_the_link_in_both_parts_and_escape_names() {
        let invite = Invite {
            company: Some("Acme".into()),
            public_url: "https://people.acme.example/".into(),
            ..Invite::default()
        };
        let m = invitation(&profile("<b>Ada</b>"), &invite, "tok123", Utc::now());
        assert_eq!(m.to.as_str(), "ada@acme.example");
        assert!(m.subject.contains("Acme"));
        assert!(m.text.contains("https://people.acme.example/set-password/tok123"), "{}", m.text);
        let html = m.html.unwrap();
        assert!(html.contains("href=\"https://people.acme.example/set-password/tok123\""), "{html}");
        assert!(html.contains("&lt;b&gt;Ada&lt;/b&gt;") && !html.contains("<b>Ada"), "{html}");
    }

    #[test]
    fn without_a_company_name_the_invitation_reads_without_one() {
        let m = invitation(&profile("Ada"), &Invite::default(), "tok123", Utc::now());
        assert_eq!(m.subject, "Your new account: choose a password");
        assert!(m.text.contains("Hello Ada,\n\nwelcome! An account has been created"), "{}", m.text);
        assert!(m.html.as_deref().unwrap().contains("welcome! An account"), "{:?}", m.html);
        let named = Invite { company: Some("Acme".into()), ..Invite::default() };
        let m = invitation(&profile("Ada"), &named, "tok123", Utc::now());
        assert_eq!(m.subject, "Your Acme account: choose a password");
        assert!(m.text.contains("welcome to Acme! An account"), "{}", m.text);
    }

    fn record(state: MailState) -> MailRecord {
        MailRecord {
            id: 1,
            kind: MailKind::Invitation,
            recipient: "ada@acme.example".into(),
            subject: "s".into(),
            text: "Choose it here:\nhttps://people.acme.example/set-password/abc123def\n\nBye".into(),
            html: Some("<a href=\"https://people.acme.example/set-password/abc123def\">x</a>".into()),
            message_id: "<1@hrsync>".into(),
            state,
            attempts: 0,
            last_error: None,
            created_at: Utc::now(),
            sent_at: None,
        }
    }

    #[test]
    fn set_password_links_are_hidden_from_admins_unless_the_outbox_is_the_delivery() {
        let queued = record(MailState::Queued);
        assert!(queued.clone().for_admins(false).text.contains("/set-password/abc123def"), "no SMTP: readable");
        for (state, smtp) in [(MailState::Queued, true), (MailState::Sent, false), (MailState::Sent, true)] {
            let shown = record(state).for_admins(smtp);
            assert!(!shown.text.contains("abc123def") && shown.html.is_none(), "{state:?}, smtp {smtp}: {shown:?}");
            assert!(shown.text.contains("/set-password/(hidden: for the recipient only)\n\nBye"), "{}", shown.text);
        }
    }

    #[test]
    fn alerts_name_the_integration_and_the_problem() {
        let to = Email::parse("admin@acme.example").unwrap();
        let m =
            alert(&to, "Personio", "3 automatic runs failed: credentials rejected", "http://x/integrations/1/history");
        assert!(m.subject.contains("Personio") && m.text.contains("credentials rejected") && m.text.contains("once"));
    }
}
