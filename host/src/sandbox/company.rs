//! Deterministic fictional companies: the people the sandbox serves.

use chrono::{Duration, NaiveDate};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Personio employment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Onboarding,
    Leave,
    Inactive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Onboarding => "onboarding",
            Status::Leave => "leave",
            Status::Inactive => "inactive",
        }
    }
}

/// A department, office or team: Personio's `{"id", "name"}` objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub id: u64,
    pub name: String,
}

/// How an employee's email attribute looks; Personio has all of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Email {
    Address(String),
    Empty,
    Null,
}

/// One employee as the sandbox stores it.
#[derive(Debug, Clone)]
pub struct Employee {
    pub id: u64,
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: Option<String>,
    pub email: Email,
    pub gender: Option<&'static str>,
    pub status: Status,
    pub position: String,
    pub supervisor: Option<u64>,
    pub hire_date: NaiveDate,
    pub termination_date: Option<NaiveDate>,
    pub department: Option<Unit>,
    pub office: Option<Unit>,
    pub team: Option<Unit>,
    pub cost_center: String,
    pub skills: Vec<String>,
    /// Seconds since the Unix epoch; drives `updated_since`.
    pub last_modified: i64,
    pub created: i64,
}

const FIRST: &[(&str, &str)] = &[
    ("Jörg", "male"),
    ("Zoë", "female"),
    ("Łukasz", "male"),
    ("Renée", "female"),
    ("Søren", "male"),
    ("José", "male"),
    ("Çağla", "female"),
    ("Ngozi", "female"),
    ("Aiko", "female"),
    ("Siobhán", "female"),
    ("Anna", "female"),
    ("Lukas", "male"),
    ("Mia", "female"),
    ("Noah", "male"),
    ("Emma", "female"),
    ("Leon", "male"),
    ("Sofia", "female"),
    ("Elias", "male"),
    ("Hannah", "female"),
    ("Paul", "male"),
    ("Amélie", "female"),
    ("Mateo", "male"),
    ("Ines", "female"),
    ("Kai", "diverse"),
    ("Alex", "diverse"),
    ("Fatima", "female"),
    ("Omar", "male"),
    ("Priya", "female"),
    ("Wei", "male"),
    ("Olga", "female"),
    ("Björn", "male"),
    ("Małgorzata", "female"),
    ("Dmitri", "male"),
    ("Chloé", "female"),
    ("Yusuf", "male"),
];
const LAST: &[&str] = &[
    "Müller",
    "Schröder",
    "García",
    "Nowak",
    "O'Brien",
    "Kowalczyk",
    "Åström",
    "Nguyễn",
    "Schmidt",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Rossi",
    "Dubois",
    "Jansen",
    "Novák",
    "Öztürk",
    "Smith",
    "Santos",
    "Fernández",
    "Kim",
    "Tanaka",
    "Ivanova",
    "Larsen",
    "Virtanen",
    "Horváth",
    "Papadopoulos",
    "Zimmermann",
    "Krüger",
    "Lefèvre",
    "Silva",
    "Andersson",
];
const DEPARTMENTS: &[(&str, &[&str], &[&str])] = &[
    (
        "Engineering",
        &["Platform", "Payments", "Mobile", "Data"],
        &["Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager", "QA Engineer"],
    ),
    ("Sales", &["DACH", "EMEA", "Inside Sales"], &["Account Executive", "Sales Development Rep", "Sales Manager"]),
    ("Marketing", &["Brand", "Growth"], &["Marketing Manager", "Content Writer", "Growth Analyst"]),
    ("Customer Success", &["Support", "Onboarding"], &["Support Agent", "Customer Success Manager"]),
    ("Finance", &["Accounting", "Controlling"], &["Accountant", "Controller", "Finance Manager"]),
    ("People", &["Recruiting", "People Ops"], &["Recruiter", "People Partner", "HR Generalist"]),
    ("Operations", &["Facilities", "IT"], &["Office Manager", "IT Administrator", "Operations Lead"]),
    ("Product", &["Core", "Design"], &["Product Manager", "Product Designer", "UX Researcher"]),
];
const OFFICES: &[&str] = &["Berlin", "München", "Madrid", "London", "Remote"];
const SKILLS: &[&str] = &["Rust", "SQL", "Negotiation", "Excel", "Figma", "German", "Spanish", "Leadership", "Python"];

/// The reference "today" and the email domain of a generated company.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompanySpec {
    pub people: usize,
    pub seed: u64,
    pub today: NaiveDate,
    pub domain: String,
}

/// Lowercase ASCII for email local parts: `Jörg Åström` → `joerg.astroem`.
pub fn ascii_fold(text: &str) -> String {
    let mut out = String::new();
    for c in text.to_lowercase().chars() {
        match c {
            'ä' | 'æ' => out.push_str("ae"),
            'ö' | 'ø' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'å' | 'á' | 'à' | 'â' | 'ã' => out.push('a'),
            'é' | 'è' | 'ê' | 'ë' | 'ễ' => out.push('e'),
            'í' | 'ì' | 'î' | 'ï' => out.push('i'),
            'ó' | 'ò' | 'ô' | 'õ' => out.push('o'),
            'ú' | 'ù' | 'û' => out.push('u'),
            'ç' => out.push('c'),
            'ğ' => out.push('g'),
            'ł' => out.push('l'),
            'ń' | 'ñ' => out.push('n'),
            'ś' | 'š' => out.push('s'),
            'ž' | 'ź' | 'ż' => out.push('z'),
            'ý' => out.push('y'),
            'ř' => out.push('r'),
            'č' => out.push('c'),
            'ě' => out.push('e'),
            'ą' => out.push('a'),
            'ę' => out.push('e'),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}

/// Generates a company: a reporting tree rooted at the first employee, a mix
/// of statuses, a few people without email, non-ASCII names.
pub fn generate(spec: &CompanySpec) -> Vec<Employee> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut used_emails = std::collections::HashSet::new();
    let mut people: Vec<Employee> = Vec::with_capacity(spec.people);
    let base_time = spec.today.and_hms_opt(6, 0, 0).expect("valid time").and_utc().timestamp();
    for i in 0..spec.people {
        let id = 1000 + i as u64;
        let (first, gender) = *FIRST.choose(&mut rng).expect("names");
        let last = *LAST.choose(&mut rng).expect("names");
        let dep_index = if i == 0 { 7 } else { rng.random_range(0..DEPARTMENTS.len()) };
        let (dep, teams, titles) = DEPARTMENTS[dep_index];
        let team_index = rng.random_range(0..teams.len());
        // Managers are drawn from earlier people, biased towards the top,
        // so the tree is acyclic and of realistic depth.
        let supervisor = (i > 0).then(|| {
            let r: f64 = rng.random();
            1000 + (r * r * r * i as f64) as u64
        });
        let roll: f64 = rng.random();
        let status = match roll {
            r if r < 0.06 => Status::Inactive,
            r if r < 0.10 => Status::Leave,
            r if r < 0.15 && i > 0 => Status::Onboarding,
            _ => Status::Active,
        };
        let hire_date = match status {
            Status::Onboarding => spec.today + Duration::days(rng.random_range(3..90)),
            _ => spec.today - Duration::days(rng.random_range(30..3650)),
        };
        let termination_date =
            (status == Status::Inactive).then(|| spec.today - Duration::days(rng.random_range(1..365)));
        let email = if i > 0 && rng.random_bool(0.02) {
            if rng.random_bool(0.5) { Email::Empty } else { Email::Null }
        } else {
            let stem = format!("{}.{}", ascii_fold(first), ascii_fold(last));
            let mut candidate = format!("{stem}@{}", spec.domain);
            let mut n = 2;
            while !used_emails.insert(candidate.clone()) {
                candidate = format!("{stem}{n}@{}", spec.domain);
                n += 1;
            }
            Email::Address(candidate)
        };
        let gender = if rng.random_bool(0.05) { None } else { Some(gender) };
        let office_index = rng.random_range(0..OFFICES.len());
        let skill_count = rng.random_range(0..3);
        let skills = SKILLS.choose_multiple(&mut rng, skill_count).map(|s| s.to_string()).collect();
        let last_modified = base_time - rng.random_range(86_400..86_400 * 400);
        people.push(Employee {
            id,
            first_name: first.into(),
            last_name: last.into(),
            preferred_name: rng.random_bool(0.1).then(|| first.chars().take(3).collect()),
            email,
            gender,
            status,
            position: if i == 0 {
                "Chief Executive Officer".into()
            } else {
                titles.choose(&mut rng).expect("titles").to_string()
            },
            supervisor,
            hire_date,
            termination_date,
            department: Some(Unit { id: 281_500 + dep_index as u64, name: dep.into() }),
            office: Some(Unit { id: 7_000 + office_index as u64, name: OFFICES[office_index].into() }),
            team: Some(Unit { id: 5_000 + dep_index as u64 * 10 + team_index as u64, name: teams[team_index].into() }),
            cost_center: format!("CC-{}", 100 + dep_index),
            skills,
            last_modified,
            created: last_modified - rng.random_range(0..86_400 * 30),
        });
    }
    people
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(people: usize, seed: u64) -> CompanySpec {
        CompanySpec {
            people,
            seed,
            today: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            domain: "acme.example".into(),
        }
    }

    #[test]
    fn same_seed_same_company_other_seed_other_company() {
        let a = generate(&spec(200, 7));
        let b = generate(&spec(200, 7));
        let c = generate(&spec(200, 8));
        let names = |p: &[Employee]| {
            p.iter().map(|e| format!("{} {} {:?}", e.first_name, e.last_name, e.supervisor)).collect::<Vec<_>>()
        };
        assert_eq!(names(&a), names(&b));
        assert_ne!(names(&a), names(&c));
    }

    #[test]
    fn reporting_lines_form_a_tree() {
        let people = generate(&spec(2000, 1));
        assert_eq!(people[0].supervisor, None);
        for e in &people[1..] {
            let s = e.supervisor.expect("everyone but the CEO has a manager");
            assert!(s < e.id, "managers come earlier, so there are no cycles");
        }
    }

    #[test]
    fn the_mix_is_realistic() {
        let people = generate(&spec(5000, 3));
        let count = |s| people.iter().filter(|e| e.status == s).count();
        for s in [Status::Active, Status::Onboarding, Status::Leave, Status::Inactive] {
            assert!(count(s) > 50, "{s:?}: {}", count(s));
        }
        assert!(
            people.iter().any(|e| e.email != Email::Address(String::new()) && !matches!(e.email, Email::Address(_)))
        );
        assert!(people.iter().any(|e| !e.first_name.is_ascii() || !e.last_name.is_ascii()));
        let emails: std::collections::HashSet<_> = people
            .iter()
            .filter_map(|e| match &e.email {
                Email::Address(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(
            emails.len(),
            people.iter().filter(|e| matches!(e.email, Email::Address(_))).count(),
            "emails are unique"
        );
        assert!(
            people
                .iter()
                .filter(|e| e.status == Status::Onboarding)
                .all(|e| e.hire_date > NaiveDate::from_ymd_opt(2026, 11, 25).unwrap())
        );
    }

    #[test]
    fn folding_makes_ascii_local_parts() {
        assert_eq!(ascii_fold("Jörg"), "joerg");
        assert_eq!(ascii_fold("O'Brien"), "obrien");
        assert_eq!(ascii_fold("Łukasz"), "lukasz");
        assert_eq!(ascii_fold("Nguyễn"), "nguyen");
    }
}
