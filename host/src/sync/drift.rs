//! Drift: who an import would change differently from the preview it was
//! started from, so a refused import can say, person by person, what moved.

use std::collections::BTreeMap;

use crate::directory::{ChangeRecord, Field};

/// One person whose planned change differs between a preview and the
/// import that followed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Drifted<'a> {
    pub name: &'a str,
    /// What the preview showed for them; `None`: nothing.
    pub previewed: Option<&'a ChangeRecord>,
    /// What the import would have done; `None`: nothing any more.
    pub now: Option<&'a ChangeRecord>,
}

impl Drifted<'_> {
    /// The directory user, when there is one yet.
    pub fn user(&self) -> Option<crate::directory::UserId> {
        self.now.or(self.previewed).and_then(|c| c.user_id)
    }

    /// The fields whose planned values differ, by label.
    pub fn fields(&self) -> Vec<&Field> {
        let planned = |c: Option<&ChangeRecord>| -> BTreeMap<String, (Field, Option<String>)> {
            c.into_iter()
                .flat_map(|c| &c.fields)
                .map(|f| (f.field.name().into_owned(), (f.field.clone(), f.after.clone())))
                .collect()
        };
        let (was, now) = (planned(self.previewed), planned(self.now));
        let mut fields: Vec<&Field> = Vec::new();
        for change in self.previewed.into_iter().chain(self.now).flat_map(|c| &c.fields) {
            let key = change.field.name().into_owned();
            let differs = was.get(&key).map(|v| &v.1) != now.get(&key).map(|v| &v.1);
            if differs && !fields.contains(&&change.field) {
                fields.push(&change.field);
            }
        }
        fields
    }
}

/// Who is planned differently in `now` than in `previewed`, in the order
/// they first appear.
pub fn drifted<'a>(previewed: &'a [ChangeRecord], now: &'a [ChangeRecord]) -> Vec<Drifted<'a>> {
    // The same person across both runs: a user id, else the source's id.
    let key = |c: &ChangeRecord| match (c.user_id, &c.source_id) {
        (Some(u), _) => format!("u{u}"),
        (None, Some(s)) => format!("s{s}"),
        (None, None) => format!("n{}", c.name),
    };
    let was: BTreeMap<String, &ChangeRecord> = previewed.iter().map(|c| (key(c), c)).collect();
    let is: BTreeMap<String, &ChangeRecord> = now.iter().map(|c| (key(c), c)).collect();
    let mut seen = std::collections::HashSet::new();
    previewed
        .iter()
        .chain(now)
        .filter(|c| seen.insert(key(c)))
        .filter_map(|c| {
            let k = key(c);
            let (p, n) = (was.get(&k).copied(), is.get(&k).copied());
            let same = matches!((p, n), (Some(p), Some(n)) if p.kind == n.kind && p.fields == n.fields);
            (!same).then_some(Drifted { name: &c.name, previewed: p, now: n })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{ChangeKind, FieldChange, UserId};

    fn change(user: Option<i64>, source: &str, kind: ChangeKind, title: &str) -> ChangeRecord {
        ChangeRecord {
            user_id: user.map(UserId),
            source_id: Some(source.into()),
            name: format!("Person {source}"),
            kind,
            fields: vec![FieldChange {
                field: Field::JobTitle,
                before: None,
                after: Some(title.into()),
                before_id: None,
                after_id: None,
            }],
        }
    }

    #[test]
    fn people_planned_alike_are_not_drifted_and_the_others_say_how() {
        let previewed = vec![
            change(Some(1), "1", ChangeKind::Update, "Engineer"),
            change(Some(2), "2", ChangeKind::Update, "Designer"),
            change(None, "3", ChangeKind::Create, "Analyst"),
        ];
        let now = vec![
            change(Some(1), "1", ChangeKind::Update, "Engineer"),
            change(Some(2), "2", ChangeKind::Update, "Lead Designer"),
            change(Some(4), "4", ChangeKind::Deactivate, "Writer"),
        ];
        let d = drifted(&previewed, &now);
        let names: Vec<&str> = d.iter().map(|d| d.name).collect();
        assert_eq!(names, ["Person 2", "Person 3", "Person 4"]);
        assert_eq!(d[0].fields(), vec![&Field::JobTitle], "a title planned differently");
        assert_eq!((d[1].previewed.is_some(), d[1].now.is_none()), (true, true), "no longer created");
        assert_eq!((d[2].previewed.is_none(), d[2].user()), (true, Some(UserId(4))), "newly deactivated");
        assert!(drifted(&previewed, &previewed).is_empty());
    }
}
