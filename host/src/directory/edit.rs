//! Hand edits of users no integration manages: the same field names every
//! surface uses (`job-title`, `status`, `custom.KEY`), and the manager by
//! user id. The API takes them as a JSON object, the pages as a form and
//! the CLI as `--set FIELD=VALUE`.

use super::{Email, Field, NewUser, Profile, UserId};

/// What to change: fields by name (`None` empties one) and the manager.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserEdit {
    pub fields: Vec<(Field, Option<String>)>,
    /// `Some(None)` removes the manager.
    pub manager: Option<Option<UserId>>,
}

impl UserEdit {
    /// Adds `name=value` (empty `value`: empty the field); the manager is
    /// `manager` or `manager-id`, a user id.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let value = Some(value.trim()).filter(|v| !v.is_empty()).map(String::from);
        if matches!(name, "manager" | "manager-id" | "manager_id") {
            let id = value
                .map(|v| v.parse::<i64>().map(UserId))
                .transpose()
                .map_err(|_| "the manager is a user id (`hrsync users` lists them)".to_string())?;
            self.manager = Some(id);
            return Ok(());
        }
        let field = Field::parse(&name.replace('_', "-"))?;
        self.fields.push((field, value));
        Ok(())
    }

    /// From a JSON object of field names to strings (or `null`), and
    /// `manager_id`.
    pub fn from_json(body: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let mut edit = UserEdit::default();
        for (key, value) in body {
            let text = match value {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                other => return Err(format!("`{key}` must be a string or null, not {other}")),
            };
            edit.set(key, &text).map_err(|e| format!("`{key}`: {e}"))?;
        }
        Ok(edit)
    }

    /// `base` with the edit applied; an error says which field is wrong.
    pub fn apply(&self, base: &NewUser) -> Result<NewUser, String> {
        let mut user = base.clone();
        for (field, value) in &self.fields {
            user.profile.set_field(field, value.clone()).map_err(|e| format!("{}: {e}", field.label()))?;
        }
        if let Some(manager) = self.manager {
            user.manager_id = manager;
        }
        Ok(user)
    }

    /// A new user from the edit: email, first and last name are required.
    pub fn create(&self) -> Result<NewUser, String> {
        let given = |f: Field| self.fields.iter().any(|(g, v)| *g == f && v.is_some());
        if let Some(missing) = [Field::Email, Field::FirstName, Field::LastName].into_iter().find(|f| !given(f.clone()))
        {
            return Err(format!("{} is required for a new user", missing.label()));
        }
        let placeholder = Email::parse("new@user.invalid").expect("a valid address");
        self.apply(&NewUser { profile: Profile::new(placeholder, "-", "-"), manager_id: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_names_fields_as_everywhere_and_says_what_is_wrong() {
        let mut edit = UserEdit::default();
        edit.set("email", "ada@x.io").unwrap();
        edit.set("first_name", "Ada").unwrap();
        edit.set("last-name", "Lovelace").unwrap();
        edit.set("job-title", "CTO").unwrap();
        edit.set("manager", "7").unwrap();
        let user = edit.create().unwrap();
        assert_eq!(user.profile.display_name(), "Ada Lovelace");
        assert_eq!(user.profile.job_title.as_deref(), Some("CTO"));
        assert_eq!(user.manager_id, Some(UserId(7)));

        let mut off = UserEdit::default();
        off.set("status", "inactive").unwrap();
        off.set("job-title", "").unwrap();
        let after = off.apply(&user).unwrap();
        assert_eq!(after.profile.status, crate::directory::UserStatus::Inactive);
        assert_eq!(after.profile.job_title, None);
        assert_eq!(after.manager_id, Some(UserId(7)), "untouched");

        assert!(UserEdit::default().set("salary", "1").unwrap_err().contains("unknown field"));
        let mut bad = UserEdit::default();
        bad.set("start-date", "tomorrow").unwrap();
        assert!(bad.apply(&user).unwrap_err().starts_with("Start date"));
        assert!(UserEdit::default().create().unwrap_err().contains("Email is required"));
        let json = serde_json::json!({"status": "active", "manager_id": null, "team": 3});
        let edit = UserEdit::from_json(json.as_object().unwrap()).unwrap();
        assert_eq!(edit.manager, Some(None));
        assert!(UserEdit::from_json(serde_json::json!({"team": [1]}).as_object().unwrap()).is_err());
    }
}
