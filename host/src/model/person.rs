//! People as a source states them, and the fields the directory keeps.

use std::borrow::{Borrow, Cow};
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The source's stable id for a person: the link between a source and the
/// directory. Opaque to the host; compared exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceId(String);

impl SourceId {
    pub fn new(id: impl Into<String>) -> Self {
        SourceId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for SourceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SourceId {
    fn from(id: &str) -> Self {
        SourceId(id.into())
    }
}

impl From<String> for SourceId {
    fn from(id: String) -> Self {
        SourceId(id)
    }
}

/// A syntactically plausible email address. Compared case-insensitively,
/// displayed as given.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let plausible = text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }) && text.len() <= 254
            && !text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
        if plausible { Ok(Email(text.to_string())) } else { Err(format!("`{text}` is not a valid email address")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key emails are unique by.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0) || self.key() == other.key()
    }
}

impl Eq for Email {}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

/// Gender as the source states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gender {
    Male,
    Female,
    Diverse,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Diverse => "diverse",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "male" => Ok(Gender::Male),
            "female" => Ok(Gender::Female),
            "diverse" => Ok(Gender::Diverse),
            other => Err(format!("unknown gender `{other}` (male, female, diverse)")),
        }
    }
}

/// Employment status as HR systems model it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PersonStatus {
    /// Employed and working.
    Active,
    /// Hired; the start date is still ahead.
    Onboarding,
    /// Employed, on leave.
    Leave,
    /// No longer employed, or never started.
    Inactive,
}

impl PersonStatus {
    pub const ALL: [PersonStatus; 4] =
        [PersonStatus::Active, PersonStatus::Onboarding, PersonStatus::Leave, PersonStatus::Inactive];

    pub fn as_str(self) -> &'static str {
        match self {
            PersonStatus::Active => "active",
            PersonStatus::Onboarding => "onboarding",
            PersonStatus::Leave => "leave",
            PersonStatus::Inactive => "inactive",
        }
    }
}

/// Whether a directory user can sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserStatus {
    Active,
    Inactive,
    /// Created ahead of the start date.
    PendingStart,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
            UserStatus::PendingStart => "pending-start",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "active" => Ok(UserStatus::Active),
            "inactive" => Ok(UserStatus::Inactive),
            "pending-start" => Ok(UserStatus::PendingStart),
            other => Err(format!("unknown user status `{other}` (active, inactive, pending-start)")),
        }
    }
}

/// A key and a value: a setting, or a custom attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Entry {
    pub key: String,
    pub value: String,
}

impl Entry {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Entry { key: key.into(), value: value.into() }
    }
}

/// One field of a directory user, as history, previews and revert name it.
///
/// The one list of fields: diffs, plans, history, revert and pages all go
/// through it, and each field's text form (dates `YYYY-MM-DD`, statuses and
/// genders in kebab-case) is defined once, by the accessors on
/// [`Person`](Person::field) and the directory's profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    FirstName,
    LastName,
    PreferredName,
    Email,
    EmployeeId,
    Gender,
    /// The directory status (`active`, `inactive`, `pending-start`).
    Status,
    /// The reporting line: a supervisor's source id, or a manager's name.
    Manager,
    StartDate,
    TerminationDate,
    JobTitle,
    Department,
    Office,
    Team,
    /// A mapped custom attribute: `custom.KEY`.
    Custom(String),
}

impl Field {
    /// Every field but custom attributes, in display order.
    pub const STANDARD: [Field; 14] = [
        Field::FirstName,
        Field::LastName,
        Field::PreferredName,
        Field::Email,
        Field::EmployeeId,
        Field::Gender,
        Field::Status,
        Field::Manager,
        Field::StartDate,
        Field::TerminationDate,
        Field::JobTitle,
        Field::Department,
        Field::Office,
        Field::Team,
    ];

    /// The stable name used in the contract, history and the API.
    pub fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Field::FirstName => "first-name",
            Field::LastName => "last-name",
            Field::PreferredName => "preferred-name",
            Field::Email => "email",
            Field::EmployeeId => "employee-id",
            Field::Gender => "gender",
            Field::Status => "status",
            Field::Manager => "manager",
            Field::StartDate => "start-date",
            Field::TerminationDate => "termination-date",
            Field::JobTitle => "job-title",
            Field::Department => "department",
            Field::Office => "office",
            Field::Team => "team",
            Field::Custom(key) => return Cow::Owned(format!("custom.{key}")),
        })
    }

    /// What admins read.
    pub fn label(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Field::FirstName => "First name",
            Field::LastName => "Last name",
            Field::PreferredName => "Preferred name",
            Field::Email => "Email",
            Field::EmployeeId => "Employee ID",
            Field::Gender => "Gender",
            Field::Status => "Status",
            Field::Manager => "Manager",
            Field::StartDate => "Start date",
            Field::TerminationDate => "Termination date",
            Field::JobTitle => "Job title",
            Field::Department => "Department",
            Field::Office => "Office",
            Field::Team => "Team",
            Field::Custom(key) => return Cow::Owned(key.clone()),
        })
    }

    /// The field a [`name`](Field::name) names.
    pub fn parse(name: &str) -> Result<Field, String> {
        if let Some(key) = name.strip_prefix("custom.") {
            return Ok(Field::Custom(key.into()));
        }
        Field::STANDARD
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| format!("unknown field `{name}`; fields are {} and custom.KEY", Field::names()))
    }

    fn names() -> String {
        Field::STANDARD.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
    }

    /// Fields an admin cannot leave empty.
    pub fn required(&self) -> bool {
        matches!(self, Field::FirstName | Field::LastName | Field::Email | Field::Status)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// As its name, in history, the API and the database.
impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = Cow::<str>::deserialize(deserializer)?;
        Field::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// The canonical person every connector maps its records to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub source_id: SourceId,
    /// The employee number shown to people.
    pub employee_id: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: Option<String>,
    /// The work email as the source has it; the host checks it where it
    /// uses it (a person with an unusable email is reported, not created).
    pub email: Option<String>,
    pub gender: Option<Gender>,
    pub status: PersonStatus,
    /// The supervisor's source id.
    pub supervisor_id: Option<SourceId>,
    pub start_date: Option<NaiveDate>,
    pub termination_date: Option<NaiveDate>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office: Option<String>,
    pub team: Option<String>,
    /// Mapped custom attributes, sorted by key.
    pub custom: Vec<Entry>,
    /// A link to the person's profile in the source.
    pub profile_url: Option<String>,
}

impl Person {
    /// A person with a name and nothing else, active.
    pub fn new(source_id: impl Into<SourceId>, first_name: &str, last_name: &str) -> Self {
        Person {
            source_id: source_id.into(),
            employee_id: None,
            first_name: first_name.into(),
            last_name: last_name.into(),
            preferred_name: None,
            email: None,
            gender: None,
            status: PersonStatus::Active,
            supervisor_id: None,
            start_date: None,
            termination_date: None,
            job_title: None,
            department: None,
            office: None,
            team: None,
            custom: Vec::new(),
            profile_url: None,
        }
    }

    /// A field's text. `Status` is the source's status; the directory
    /// status it becomes depends on the day (`rules::status_of`).
    pub fn field(&self, field: &Field) -> Option<String> {
        let date = |d: &Option<NaiveDate>| d.map(|d| d.to_string());
        match field {
            Field::FirstName => Some(self.first_name.clone()),
            Field::LastName => Some(self.last_name.clone()),
            Field::PreferredName => self.preferred_name.clone(),
            Field::Email => self.email.clone(),
            Field::EmployeeId => self.employee_id.clone(),
            Field::Gender => self.gender.map(|g| g.as_str().into()),
            Field::Status => Some(self.status.as_str().into()),
            Field::Manager => self.supervisor_id.as_ref().map(|s| s.to_string()),
            Field::StartDate => date(&self.start_date),
            Field::TerminationDate => date(&self.termination_date),
            Field::JobTitle => self.job_title.clone(),
            Field::Department => self.department.clone(),
            Field::Office => self.office.clone(),
            Field::Team => self.team.clone(),
            Field::Custom(key) => self.custom.iter().find(|e| &e.key == key).map(|e| e.value.clone()),
        }
    }

    /// How admins find this person: see [`display_name`].
    pub fn display_name(&self) -> String {
        display_name(&self.first_name, &self.last_name, self.preferred_name.as_deref())
    }
}

/// How a person is named on pages, in emails and in history: the preferred
/// name (or the first name) with the last name — unless the preferred name
/// already carries the last name ("Kasia Nowak"), which is then not repeated.
pub fn display_name(first: &str, last: &str, preferred: Option<&str>) -> String {
    let given = preferred.map(str::trim).filter(|p| !p.is_empty()).unwrap_or(first.trim());
    let last = last.trim();
    let (given_lower, last_lower) = (given.to_lowercase(), last.to_lowercase());
    let repeats_last = !last.is_empty()
        && (given_lower.ends_with(&format!(" {last_lower}"))
            || given_lower.split_whitespace().any(|w| w == last_lower));
    if repeats_last { given.to_string() } else { format!("{given} {last}").trim().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_name_parses_back_to_its_field() {
        for field in Field::STANDARD.into_iter().chain([Field::Custom("level".into())]) {
            assert_eq!(Field::parse(&field.name()), Ok(field.clone()));
        }
        let err = Field::parse("salary").unwrap_err();
        assert!(err.contains("unknown field `salary`") && err.contains("job-title"), "{err}");
    }

    #[test]
    fn a_persons_fields_have_one_text_form() {
        let mut p = Person::new("7", "Ada", "Lovelace");
        p.start_date = NaiveDate::from_ymd_opt(2024, 3, 1);
        p.gender = Some(Gender::Diverse);
        p.supervisor_id = Some("3".into());
        p.custom = vec![Entry::new("level", "L3")];
        assert_eq!(p.field(&Field::StartDate).as_deref(), Some("2024-03-01"));
        assert_eq!(p.field(&Field::Gender).as_deref(), Some("diverse"));
        assert_eq!(p.field(&Field::Status).as_deref(), Some("active"));
        assert_eq!(p.field(&Field::Manager).as_deref(), Some("3"));
        assert_eq!(p.field(&Field::Custom("level".into())).as_deref(), Some("L3"));
        assert_eq!(p.field(&Field::Office), None);
    }

    #[test]
    fn emails_compare_case_insensitively_and_reject_junk() {
        assert_eq!(Email::parse("Ada@Example.com").unwrap(), Email::parse("ada@example.COM").unwrap());
        assert_eq!(Email::parse(" Zoë@例え.jp ").unwrap().key(), "zoë@例え.jp");
        for bad in ["", "ada", "ada@", "@x.io", "a b@x.io", "<script>@x.io", "a@x"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names_never_repeat_the_last_name() {
        assert_eq!(display_name("Katarzyna", "Nowak", Some("Kasia")), "Kasia Nowak");
        assert_eq!(display_name("Katarzyna", "Nowak", Some("Kasia Nowak")), "Kasia Nowak");
        assert_eq!(display_name("Katarzyna", "Nowak", Some("kasia NOWAK")), "kasia NOWAK");
        assert_eq!(display_name("Jan", "van der Berg", Some("Jan van der Berg")), "Jan van der Berg");
        assert_eq!(display_name("Ada", "Lovelace", None), "Ada Lovelace");
        assert_eq!(display_name("Ada", "Lovelace", Some(" ")), "Ada Lovelace");
        assert_eq!(display_name("Nowakowski", "Nowak", None), "Nowakowski Nowak", "a prefix is not the name");
        assert_eq!(display_name("", "Cher", None), "Cher");
        assert_eq!(display_name("X", "Cher", Some("Cher")), "Cher");
    }
}
