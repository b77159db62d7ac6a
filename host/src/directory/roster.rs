//! An existing directory from a CSV file: the users a performance app had
//! before any HR system was connected, uploaded so a sync can adopt them by
//! email.
//!
//! A roster is checked as a whole before anything is written: every line
//! gets an outcome (new, updated, unchanged, or an error saying what to
//! fix), and it is written — in one transaction — only when no line has an
//! error. People an integration manages are refused: the HR system owns them.

use std::collections::HashMap;

use serde::Serialize;

use super::{Email, Field, Profile, RosterManager, RosterRow, User};

/// Columns a roster may have: field names (`first-name`), their labels
/// ("First name") or snake case, and `manager-email`.
const MANAGER_EMAIL: &str = "manager-email";

/// What the upload would do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineAction {
    Create,
    Update,
    Unchanged,
    Error,
}

/// One line of the file and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RosterLine {
    /// The line in the file (the header is line 1).
    pub line: u64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub action: LineAction,
    /// For errors: what is wrong and what to do.
    pub message: Option<String>,
}

/// A checked roster: an outcome per line, and the writes when no line failed.
#[derive(Debug, Clone, Default)]
pub struct RosterPlan {
    pub lines: Vec<RosterLine>,
    pub rows: Vec<RosterRow>,
}

impl RosterPlan {
    pub fn errors(&self) -> usize {
        self.lines.iter().filter(|l| l.action == LineAction::Error).count()
    }

    pub fn count(&self, action: LineAction) -> usize {
        self.lines.iter().filter(|l| l.action == action).count()
    }
}

/// The column a header names.
fn column(header: &str) -> Result<Option<Field>, String> {
    let key = header.trim().to_lowercase().replace(['_', ' '], "-");
    if key == MANAGER_EMAIL {
        return Ok(None);
    }
    let field = Field::STANDARD
        .into_iter()
        .find(|f| f.name() == key || f.label().to_lowercase().replace(' ', "-") == key)
        .ok_or_else(|| {
            let names: Vec<String> =
                Field::STANDARD.iter().filter(|f| **f != Field::Manager).map(|f| f.name().into_owned()).collect();
            format!("unknown column \"{}\"; columns are {}, {MANAGER_EMAIL}", header.trim(), names.join(", "))
        })?;
    if field == Field::Manager {
        return Err(format!("the manager is given by email: name the column \"{MANAGER_EMAIL}\""));
    }
    Ok(Some(field))
}

/// Checks `csv` against the directory (`users`: everyone in it).
pub fn plan(csv: &str, users: &[User]) -> Result<RosterPlan, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(csv.as_bytes());
    let headers = reader.headers().map_err(|e| format!("the file is not CSV: {e}"))?.clone();
    let columns: Vec<Option<Field>> = headers.iter().map(column).collect::<Result<_, _>>()?;
    for required in [Field::Email, Field::FirstName, Field::LastName] {
        if !columns.contains(&Some(required.clone())) {
            return Err(format!("the file needs a \"{}\" column", required.name()));
        }
    }
    let manager_column = headers.iter().position(|h| column(h).ok() == Some(None));
    let by_email: HashMap<String, &User> = users.iter().map(|u| (u.profile.email.key(), u)).collect();

    let mut plan = RosterPlan::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut managers: Vec<Option<(u64, String)>> = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                plan.lines.push(error_line(line, None, format!("unreadable: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let value = |i: usize| record.get(i).filter(|v| !v.is_empty()).map(String::from);
        let email_text = columns.iter().position(|c| *c == Some(Field::Email)).and_then(value);
        let outcome = (|| {
            let email = Email::parse(email_text.as_deref().unwrap_or(""))
                .map_err(|e| format!("email: {e}; every line needs a work email"))?;
            if let Some(first) = seen.insert(email.key(), line) {
                return Err(format!("{email} is also on line {first}; each person once"));
            }
            let existing = by_email.get(&email.key()).copied();
            if existing.is_some_and(|u| u.managed_by.is_some()) {
                return Err(format!(
                    "{email} is managed by an integration, so the HR system owns their values; leave them out of the file"
                ));
            }
            let mut profile = match existing {
                Some(u) => u.profile.clone(),
                None => Profile::new(email.clone(), "", ""),
            };
            for (i, field) in columns.iter().enumerate() {
                if let Some(field) = field {
                    let text = match field {
                        // An empty status leaves it as it is (new people: active).
                        Field::Status if value(i).is_none() => continue,
                        Field::Status => value(i).map(|s| status_word(&s)),
                        _ => value(i),
                    };
                    profile.set_field(field, text).map_err(|e| format!("{}: {e}", field.label()))?;
                }
            }
            if profile.first_name.is_empty() || profile.last_name.is_empty() {
                return Err("first and last name are required".into());
            }
            Ok((existing, profile))
        })();
        match outcome {
            Ok((existing, profile)) => {
                let unchanged = existing.is_some_and(|u| u.profile == profile);
                let action = match existing {
                    None => LineAction::Create,
                    Some(_) if unchanged => LineAction::Unchanged,
                    Some(_) => LineAction::Update,
                };
                plan.lines.push(RosterLine {
                    line,
                    email: Some(profile.email.to_string()),
                    name: Some(profile.display_name()),
                    action,
                    message: None,
                });
                managers.push(manager_column.and_then(value).map(|m| (line, m)));
                plan.rows.push(RosterRow { existing: existing.map(|u| u.id), profile, manager: None });
            }
            Err(message) => plan.lines.push(error_line(line, email_text, message)),
        }
    }
    resolve_managers(&mut plan, managers, &by_email);
    if plan.errors() > 0 {
        plan.rows.clear();
    }
    Ok(plan)
}

/// Managers by email: a user in the directory or another line of the file.
fn resolve_managers(plan: &mut RosterPlan, managers: Vec<Option<(u64, String)>>, by_email: &HashMap<String, &User>) {
    let rows_by_email: HashMap<String, usize> =
        plan.rows.iter().enumerate().map(|(i, r)| (r.profile.email.key(), i)).collect();
    let line_of: HashMap<u64, usize> = plan.lines.iter().enumerate().map(|(i, l)| (l.line, i)).collect();
    for (row, manager) in managers.into_iter().enumerate() {
        let Some((line, text)) = manager else { continue };
        let at = line_of[&line];
        let key = Email::parse(&text).map(|e| e.key()).unwrap_or_default();
        let resolved = match (rows_by_email.get(&key), by_email.get(&key)) {
            (Some(&r), _) if r == row => Err("a person cannot be their own manager".to_string()),
            (Some(&r), _) => Ok(RosterManager::Row(r)),
            (None, Some(u)) => Ok(RosterManager::User(u.id)),
            (None, None) => Err(format!("manager {text} is neither in the directory nor in the file")),
        };
        match resolved {
            Ok(m) => {
                let r = &mut plan.rows[row];
                if plan.lines[at].action == LineAction::Unchanged && !same_manager(r, m, by_email) {
                    plan.lines[at].action = LineAction::Update;
                }
                r.manager = Some(m);
            }
            Err(message) => {
                let l = &mut plan.lines[at];
                l.action = LineAction::Error;
                l.message = Some(format!("{MANAGER_EMAIL}: {message}"));
            }
        }
    }
}

/// Whether `m` is the manager the row's user already has.
fn same_manager(row: &RosterRow, m: RosterManager, by_email: &HashMap<String, &User>) -> bool {
    let current = by_email.get(&row.profile.email.key()).and_then(|u| u.manager_id);
    matches!(m, RosterManager::User(id) if Some(id) == current)
}

/// A status as admins write it ("Starts later", "Active") in the
/// directory's words.
fn status_word(text: &str) -> String {
    match text.trim().to_lowercase().as_str() {
        "starts later" => "pending-start".into(),
        other => other.replace(' ', "-"),
    }
}

fn error_line(line: u64, email: Option<String>, message: String) -> RosterLine {
    RosterLine { line, email, name: None, action: LineAction::Error, message: Some(message) }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::directory::{IntegrationId, UserId};

    fn user(id: i64, email: &str, managed: bool) -> User {
        User {
            id: UserId(id),
            profile: Profile::new(Email::parse(email).unwrap(), "Old", "Name"),
            manager_id: None,
            managed_by: managed.then(|| (IntegrationId(1), "7".into())),
            missing_runs: 0,
            informed_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn every_line_gets_an_outcome_and_an_error_blocks_the_whole_file() {
        let users = [user(1, "kept@x.io", false), user(2, "owned@x.io", true), user(3, "boss@x.io", false)];
        let csv = "Email,First name,last_name,job-title,manager-email\n\
                   new@x.io,Ada,Lovelace,CTO,boss@x.io\n\
                   kept@x.io,Renamed,Name,,\n\
                   KEPT@x.io,Dup,Line,,\n\
                   owned@x.io,Own,Ed,,\n\
                   not-an-email,A,B,,\n\
                   two@x.io,Two,Reports,,new@x.io\n\
                   three@x.io,No,Boss,,ghost@x.io\n";
        let plan = plan(csv, &users).unwrap();
        let actions: Vec<(u64, LineAction)> = plan.lines.iter().map(|l| (l.line, l.action)).collect();
        assert_eq!(
            actions,
            [
                (2, LineAction::Create),
                (3, LineAction::Update),
                (4, LineAction::Error),
                (5, LineAction::Error),
                (6, LineAction::Error),
                (7, LineAction::Create),
                (8, LineAction::Error),
            ]
        );
        let message = |line: u64| plan.lines.iter().find(|l| l.line == line).unwrap().message.clone().unwrap();
        assert!(message(4).contains("also on line 3"), "{}", message(4));
        assert!(message(5).contains("HR system owns"), "{}", message(5));
        assert!(message(6).starts_with("email:"), "{}", message(6));
        assert!(message(8).contains("ghost@x.io"), "{}", message(8));
        assert!(plan.rows.is_empty(), "nothing is written while a line is wrong");
    }

    #[test]
    fn a_clean_file_resolves_managers_within_it_and_in_the_directory() {
        let users = [user(3, "boss@x.io", false)];
        let csv = "email,first-name,last-name,manager-email,Status\na@x.io,A,One,boss@x.io,Starts later\nb@x.io,B,Two,a@x.io,\n";
        let plan = plan(csv, &users).unwrap();
        assert_eq!(plan.errors(), 0);
        assert_eq!(plan.rows[0].manager, Some(RosterManager::User(UserId(3))));
        assert_eq!(plan.rows[1].manager, Some(RosterManager::Row(0)));
        assert_eq!(plan.rows[0].profile.status, crate::directory::UserStatus::PendingStart);
        assert!(super::plan("email,first-name\n", &users).unwrap_err().contains("last-name"));
        assert!(super::plan("email,first-name,last-name,salary\n", &users).unwrap_err().contains("unknown column"));
    }
}
