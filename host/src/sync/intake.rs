//! What the host accepts from a connector: people with bounded fields and
//! real dates, a bounded list of issues, and a digest of each person that
//! ties the people a plan names to the people the fetch returned.
//!
//! The limits are the contract's (the guide states them); a value over its
//! limit is cut, not refused, so a runaway job title does not keep a person
//! out of the directory — and because the cut happens before the diff sees
//! the person, the directory and the source compare equal on the next run.

use sha2::{Digest as _, Sha256};

use crate::model::{Field, Issue, Person, Severity, SourceId};

/// Bytes of one standard text field (names, email, job title, department…).
pub const FIELD_BYTES: usize = 1 << 10;
/// Bytes of all custom attributes of one person, keys and values together.
pub const CUSTOM_BYTES: usize = 64 << 10;
/// Bytes of a source id (and of a supervisor's source id).
pub const SOURCE_ID_BYTES: usize = 256;
/// Bytes of a paging cursor.
pub const CURSOR_BYTES: usize = 4 << 10;
/// Bytes of an issue's message; of its name and field.
pub const ISSUE_MESSAGE_BYTES: usize = 1 << 10;
/// Issues kept per run; more are counted, not kept.
pub const MAX_ISSUES: usize = 10_000;

/// A person's fingerprint: equal people, equal digests.
pub type PersonDigest = [u8; 32];

/// Cuts `text` to at most `max` bytes at a character boundary.
fn cut(text: &mut String, max: usize) -> Option<usize> {
    if text.len() <= max {
        return None;
    }
    let original = text.len();
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    Some(original)
}

/// Bounds a mapped person's fields; returns an issue per field it cut.
pub fn bound_person(person: &mut Person) -> Vec<Issue> {
    let mut issues = Vec::new();
    let name = format!("{} {}", person.first_name, person.last_name);
    let mut note = |field: &str, was: usize, limit: usize| {
        issues.push(Issue {
            source_id: Some(person_id_for_issue(&person.source_id)),
            name: Some(name.chars().take(200).collect()),
            field: Some(field.into()),
            severity: Severity::Warning,
            message: format!(
                "{field} is {was} bytes long; only the first {limit} are kept (the limit for a field). Shorten it in the source."
            ),
        });
    };
    for (field, value) in [(Field::FirstName, &mut person.first_name), (Field::LastName, &mut person.last_name)] {
        if let Some(was) = cut(value, FIELD_BYTES) {
            note(&field.name(), was, FIELD_BYTES);
        }
    }
    for (field, value) in [
        (Field::PreferredName.name(), &mut person.preferred_name),
        (Field::Email.name(), &mut person.email),
        (Field::EmployeeId.name(), &mut person.employee_id),
        (Field::JobTitle.name(), &mut person.job_title),
        (Field::Department.name(), &mut person.department),
        (Field::Office.name(), &mut person.office),
        (Field::Team.name(), &mut person.team),
        // Not a directory field: a link for admins.
        ("profile-url".into(), &mut person.profile_url),
    ] {
        if let Some(v) = value
            && let Some(was) = cut(v, FIELD_BYTES)
        {
            note(&field, was, FIELD_BYTES);
        }
    }
    if let Some(s) = &person.supervisor_id
        && s.as_str().len() > SOURCE_ID_BYTES
    {
        note(&Field::Manager.name(), s.as_str().len(), SOURCE_ID_BYTES);
        person.supervisor_id = None;
    }
    let mut used = 0;
    let total: usize = person.custom.iter().map(|e| e.key.len() + e.value.len()).sum();
    if total > CUSTOM_BYTES {
        person.custom.retain(|e| {
            used += e.key.len() + e.value.len();
            used <= CUSTOM_BYTES
        });
        note("custom attributes", total, CUSTOM_BYTES);
    }
    issues
}

fn person_id_for_issue(id: &SourceId) -> SourceId {
    SourceId::new(id.as_str().chars().take(SOURCE_ID_BYTES).collect::<String>())
}

/// Bounds an issue's texts.
pub fn bound_issue(issue: &mut Issue) {
    cut(&mut issue.message, ISSUE_MESSAGE_BYTES);
    for text in [&mut issue.name, &mut issue.field].into_iter().flatten() {
        cut(text, SOURCE_ID_BYTES);
    }
    if let Some(id) = &mut issue.source_id
        && id.as_str().len() > SOURCE_ID_BYTES
    {
        *id = person_id_for_issue(id);
    }
}

/// The bytes a person takes, roughly: what the run's data limit counts.
pub fn person_bytes(p: &Person) -> usize {
    let opt = |v: &Option<String>| v.as_ref().map_or(0, String::len);
    p.source_id.as_str().len()
        + p.first_name.len()
        + p.last_name.len()
        + p.supervisor_id.as_ref().map_or(0, |s| s.as_str().len())
        + [&p.employee_id, &p.preferred_name, &p.email, &p.job_title, &p.department, &p.office]
            .into_iter()
            .map(opt)
            .sum::<usize>()
        + opt(&p.team)
        + opt(&p.profile_url)
        + p.custom.iter().map(|e| e.key.len() + e.value.len()).sum::<usize>()
        + 64
}

/// A digest over every field of a person, each length-prefixed so no two
/// different people share an encoding.
pub fn digest(p: &Person) -> PersonDigest {
    let mut h = Sha256::new();
    let mut text = |t: Option<&str>| match t {
        None => h.update([0u8]),
        Some(t) => {
            h.update([1u8]);
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
    };
    text(Some(p.source_id.as_str()));
    text(p.employee_id.as_deref());
    text(Some(&p.first_name));
    text(Some(&p.last_name));
    text(p.preferred_name.as_deref());
    text(p.email.as_deref());
    text(p.gender.map(|g| g.as_str()));
    text(Some(p.status.as_str()));
    text(p.supervisor_id.as_ref().map(SourceId::as_str));
    let date = |d: &Option<chrono::NaiveDate>| d.map(|d| d.to_string());
    text(date(&p.start_date).as_deref());
    text(date(&p.termination_date).as_deref());
    text(p.job_title.as_deref());
    text(p.department.as_deref());
    text(p.office.as_deref());
    text(p.team.as_deref());
    text(p.profile_url.as_deref());
    h.update((p.custom.len() as u64).to_le_bytes());
    for e in &p.custom {
        h.update((e.key.len() as u64).to_le_bytes());
        h.update(e.key.as_bytes());
        h.update((e.value.len() as u64).to_le_bytes());
        h.update(e.value.as_bytes());
    }
    h.finalize().into()
}

/// Issues of one run, bounded in number and size.
#[derive(Debug, Default, Clone)]
pub struct Issues {
    kept: Vec<Issue>,
    dropped: usize,
}

impl Issues {
    pub fn push(&mut self, mut issue: Issue) {
        if self.kept.len() >= MAX_ISSUES {
            self.dropped += 1;
            return;
        }
        bound_issue(&mut issue);
        self.kept.push(issue);
    }

    pub fn extend(&mut self, issues: impl IntoIterator<Item = Issue>) {
        for i in issues {
            self.push(i);
        }
    }

    /// The kept issues, with one more saying how many were not kept.
    pub fn into_vec(mut self) -> Vec<Issue> {
        if self.dropped > 0 {
            self.kept.push(Issue {
                source_id: None,
                name: None,
                field: None,
                severity: Severity::Warning,
                message: format!(
                    "{} more issues were reported and not kept (at most {MAX_ISSUES} a run)",
                    self.dropped
                ),
            });
        }
        self.kept
    }

    pub fn len(&self) -> usize {
        self.kept.len() + self.dropped
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Issue> {
        self.kept.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entry;

    fn person() -> Person {
        Person { email: Some("ada@x.io".into()), ..Person::new("1", "Ada", "Lovelace") }
    }

    #[test]
    fn over_long_fields_are_cut_and_reported() {
        let mut p = person();
        p.job_title = Some("é".repeat(5 << 20));
        p.custom = (0..100).map(|i| Entry::new(format!("k{i}"), "v".repeat(1000))).collect();
        let issues = bound_person(&mut p);
        assert!(p.job_title.as_ref().unwrap().len() <= FIELD_BYTES);
        assert!(p.custom.iter().map(|e| e.key.len() + e.value.len()).sum::<usize>() <= CUSTOM_BYTES);
        assert!(p.custom.len() > 50, "only what is over the limit goes");
        let fields: Vec<_> = issues.iter().map(|i| i.field.clone().unwrap()).collect();
        assert_eq!(fields, ["job-title", "custom attributes"]);
        assert!(issues[0].message.contains("10485760 bytes"), "{}", issues[0].message);
        let mut ok = person();
        assert!(bound_person(&mut ok).is_empty());
        assert_eq!(ok, person());
    }

    #[test]
    fn digests_tell_people_apart_by_any_field() {
        let a = person();
        assert_eq!(digest(&a), digest(&person()));
        let mut b = person();
        b.start_date = chrono::NaiveDate::from_ymd_opt(2024, 2, 1);
        assert_ne!(digest(&a), digest(&b));
        let mut c = person();
        c.first_name = "Ad".into();
        c.last_name = "aLovelace".into();
        assert_ne!(digest(&a), digest(&c), "fields are length-prefixed");
        let mut d = person();
        d.custom = vec![Entry::new("a", "b")];
        assert_ne!(digest(&a), digest(&d));
    }

    #[test]
    fn issues_are_bounded() {
        let mut issues = Issues::default();
        for _ in 0..MAX_ISSUES + 5 {
            issues.push(Issue {
                source_id: None,
                name: None,
                field: None,
                severity: Severity::Error,
                message: "x".repeat(5000),
            });
        }
        assert_eq!(issues.len(), MAX_ISSUES + 5);
        let kept = issues.into_vec();
        assert_eq!(kept.len(), MAX_ISSUES + 1);
        assert!(kept[0].message.len() <= ISSUE_MESSAGE_BYTES);
        assert!(kept.last().unwrap().message.starts_with("5 more issues"));
    }
}
