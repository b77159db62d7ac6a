//! `hrsync user` and `hrsync override`: people no integration manages, an
//! existing directory from a CSV file, and values kept against the source.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::Subcommand;
use hrsync::audit::Action;
use hrsync::directory::edit::UserEdit;
use hrsync::directory::roster::{self, LineAction};
use hrsync::directory::{Field, NewUser, UserId, UserQuery};

use crate::directory_cmds::Directory;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a person no integration manages, e.g.
    /// `--set email=ada@example.com --set first-name=Ada --set last-name=Lovelace`.
    Add {
        /// FIELD=VALUE, by field name (`job-title`, `department`, `status`,
        /// `start-date`, `custom.KEY`, `manager` as a user id); repeat it.
        #[arg(long = "set", value_name = "FIELD=VALUE", required = true)]
        set: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change a person no integration manages; `--set status=inactive`
    /// deactivates, `--set job-title=` empties a field.
    Edit {
        id: i64,
        #[arg(long = "set", value_name = "FIELD=VALUE", required = true)]
        set: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Add and update people from a CSV file (a header line naming the
    /// fields, `manager-email` for managers). Checked line by line first;
    /// nothing is written while a line is wrong.
    Import {
        file: PathBuf,
        /// Only check the file and say what it would do.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum OverrideCommand {
    /// Values kept against the source, and what the source said last.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Keep a person's field at its current value when imports run.
    Keep {
        user: i64,
        /// A field name, e.g. `job-title` or `manager`.
        field: String,
        /// The last day it holds (YYYY-MM-DD); without it, until removed.
        #[arg(long)]
        until: Option<NaiveDate>,
    },
    /// Stop keeping a value: the next import applies the source's.
    Remove { user: i64, field: String },
}

fn edit_of(set: &[String]) -> anyhow::Result<UserEdit> {
    let mut edit = UserEdit::default();
    for pair in set {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("`--set {pair}` needs FIELD=VALUE, e.g. --set job-title=CTO");
        };
        edit.set(name.trim(), value).map_err(anyhow::Error::msg)?;
    }
    Ok(edit)
}

fn actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

fn print_user(dir: &Directory, id: UserId, json: bool, what: &str) -> anyhow::Result<()> {
    let user = dir.store.user(id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&user)?);
    } else {
        println!("{what} user {id}: {} <{}>", user.profile.display_name(), user.profile.email);
    }
    Ok(())
}

pub fn user(dir: &Directory, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { set, json } => {
            let new = edit_of(&set)?.create().map_err(anyhow::Error::msg)?;
            let id = dir.store.create_user(&new)?;
            dir.record(Action::UserCreated, format!("user {id}"), None);
            print_user(dir, id, json, "Added")
        }
        UserCommand::Edit { id, set, json } => {
            let user = dir.store.user(UserId(id))?;
            let base = NewUser { profile: user.profile.clone(), manager_id: user.manager_id };
            let changed = edit_of(&set)?.apply(&base).map_err(anyhow::Error::msg)?;
            dir.store.edit_user(user.id, &changed)?;
            dir.record(Action::UserEdited, format!("user {id}"), None);
            print_user(dir, user.id, json, "Changed")
        }
        UserCommand::Import { file, dry_run, json } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let (everyone, _) = dir.store.users(&UserQuery { limit: u64::MAX >> 1, ..UserQuery::default() })?;
            let plan = roster::plan(&text, &everyone).map_err(anyhow::Error::msg)?;
            let write = !dry_run && plan.errors() == 0;
            if write {
                dir.store.write_roster(&plan.rows)?;
                dir.record(
                    Action::UsersUploaded,
                    file.display().to_string(),
                    Some(format!("{} lines", plan.lines.len())),
                );
            }
            if json {
                let body = serde_json::json!({"lines": plan.lines, "errors": plan.errors(), "applied": write});
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                for l in plan.lines.iter().filter(|l| l.action == LineAction::Error) {
                    eprintln!("line {}: {}", l.line, l.message.as_deref().unwrap_or("wrong"));
                }
                println!(
                    "{} new, {} updated, {} unchanged, {} wrong{}",
                    plan.count(LineAction::Create),
                    plan.count(LineAction::Update),
                    plan.count(LineAction::Unchanged),
                    plan.errors(),
                    if write { "; saved" } else { "; nothing was written" }
                );
            }
            if plan.errors() > 0 {
                bail!("{} lines of {} are wrong; fix them and import the file again", plan.errors(), file.display());
            }
            Ok(())
        }
    }
}

pub fn overrides(dir: &Directory, command: OverrideCommand) -> anyhow::Result<()> {
    match command {
        OverrideCommand::List { json } => {
            let list = dir.store.overrides(None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("No values are kept.");
            }
            for o in &list {
                let says = match &o.source {
                    None => "not seen by an import yet".to_string(),
                    Some(s) if s.differs => format!("the source says {}", s.value.as_deref().unwrap_or("(empty)")),
                    Some(_) => "the source agrees".to_string(),
                };
                let until = o.until.map(|d| format!(" until {d}")).unwrap_or_default();
                println!(
                    "user {} {}: kept {} ({says}; by {}{until})",
                    o.user_id,
                    o.field,
                    o.value.as_deref().unwrap_or("(empty)"),
                    o.kept_by.as_deref().unwrap_or("?")
                );
            }
            Ok(())
        }
        OverrideCommand::Keep { user, field, until } => {
            let field = Field::parse(&field).map_err(anyhow::Error::msg)?;
            let kept = dir.store.keep(UserId(user), &field, Some(&actor()), until)?;
            dir.record(Action::ValueKept, format!("user {user}"), Some(field.label().into_owned()));
            println!("Kept {field} of user {user} at {}.", kept.value.as_deref().unwrap_or("(empty)"));
            Ok(())
        }
        OverrideCommand::Remove { user, field } => {
            let field = Field::parse(&field).map_err(anyhow::Error::msg)?;
            if !dir.store.unkeep(UserId(user), &field)? {
                bail!("user {user} has no kept {field}; `hrsync override list` lists kept values");
            }
            dir.record(Action::OverrideRemoved, format!("user {user}"), Some(field.label().into_owned()));
            println!("No longer keeping {field} of user {user}: the next import applies the source's value.");
            Ok(())
        }
    }
}
