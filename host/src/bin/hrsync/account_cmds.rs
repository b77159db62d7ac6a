//! Commands on accounts and the audit log: `hrsync admin …` (also how an
//! operator gets back in when nobody can sign in), `hrsync audit`, and
//! `hrsync tenant …` for the companies of a PostgreSQL deployment.

use anyhow::Context;
use clap::{Args, Subcommand};
use hrsync::accounts::{Accounts, Role};
use hrsync::audit::{Action, Audit, Event, Query};

use crate::Global;

/// Where a new password comes from when no prompt can ask for it.
const NEW_PASSWORD_ENV: &str = "HRSYNC_NEW_PASSWORD";

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Add an account (password from HRSYNC_NEW_PASSWORD, else generated and printed once).
    Add {
        username: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "viewer", value_parser = Role::parse)]
        role: Role,
    },
    /// List accounts with their role and state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: it cannot sign in; its sessions and tokens stop.
    Disable { username: String },
    /// Enable a disabled account again.
    Enable { username: String },
    /// Set a new password (from HRSYNC_NEW_PASSWORD, else generated and printed once); its sessions end.
    ResetPassword { username: String },
    /// Change an account's role.
    Role {
        username: String,
        #[arg(value_parser = Role::parse)]
        role: Role,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Add a company with its first admin account (password from
    /// HRSYNC_NEW_PASSWORD, else generated and printed once).
    Add {
        /// Lower-case letters, digits and dashes, e.g. `acme-gmbh`.
        slug: String,
        /// The company's name.
        #[arg(long)]
        name: String,
        /// The first admin's username (unique across tenants; an email address works).
        #[arg(long)]
        admin: String,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a tenant: its accounts cannot sign in, its sessions and
    /// tokens stop, its integrations are not run. Nothing is deleted.
    Disable { slug: String },
    /// Enable a disabled tenant again.
    Enable { slug: String },
}

#[derive(Args)]
pub struct AuditArgs {
    /// Only this account's entries.
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (sign-in, settings-changed, import, token-created, …).
    #[arg(long, value_parser = Action::parse)]
    action: Option<Action>,
    /// Only entries since this day (YYYY-MM-DD) or instant (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u64,
    #[arg(long)]
    json: bool,
}

/// The accounts and audit log of the tenant commands act for (the
/// database migrated first).
fn open(global: &Global) -> anyhow::Result<(Accounts, Audit)> {
    let (database, tenant) = global.database()?;
    database.accounts_and_audit(tenant)
}

pub fn tenant(global: &Global, command: TenantCommand) -> anyhow::Result<()> {
    use hrsync::model::TenantId;
    use hrsync::tenancy::{add_tenant, set_tenant_disabled};
    let (database, _) = global.database()?;
    let pg = database.platform()?;
    // Tenant changes are the platform's: the default tenant's log keeps them.
    let (_, platform_audit) = database.accounts_and_audit(TenantId::DEFAULT)?;
    let log = |action, slug: &str, detail: Option<String>| {
        platform_audit.record(Event {
            actor: operator(),
            address: "cli".into(),
            action,
            target: Some(format!("tenant {slug}")),
            detail,
        })
    };
    match command {
        TenantCommand::Add { slug, name, admin } => {
            let (password, generated) = new_password();
            let tenant = add_tenant(pg, &slug, &name, &admin, &password)?;
            let (_, audit) = database.accounts_and_audit(tenant.id)?;
            record(&audit, Action::AccountCreated, admin.trim(), Some("admin".into()));
            log(Action::TenantAdded, &tenant.slug, Some(tenant.name.clone()));
            println!("Added tenant `{}` ({}) with the admin `{}`.", tenant.slug, tenant.name, admin.trim());
            if generated {
                println!("Initial password (shown once): {password}");
            }
        }
        TenantCommand::List { json } => {
            let list = pg.tenants()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<6} {:<24} {:<32} STATE", "ID", "SLUG", "NAME");
                for t in list {
                    let state = if t.disabled_at.is_some() { "disabled" } else { "enabled" };
                    println!("{:<6} {:<24} {:<32} {state}", t.id.0, t.slug, t.name);
                }
            }
        }
        TenantCommand::Disable { slug } => {
            let tenant = set_tenant_disabled(pg, &slug, true)?;
            log(Action::TenantDisabled, &tenant.slug, None);
            println!("Disabled tenant `{slug}`: its accounts cannot sign in and its integrations do not run.");
        }
        TenantCommand::Enable { slug } => {
            let tenant = set_tenant_disabled(pg, &slug, false)?;
            log(Action::TenantEnabled, &tenant.slug, None);
            println!("Enabled tenant `{slug}`.");
        }
    }
    Ok(())
}

/// Who runs the command, for the audit log.
fn operator() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

fn record(audit: &Audit, action: Action, username: &str, detail: Option<String>) {
    audit.record(Event {
        actor: operator(),
        address: "cli".into(),
        action,
        target: Some(format!("account {username}")),
        detail,
    });
}

/// The password to set: from the environment, or a new one to print once.
fn new_password() -> (String, bool) {
    match std::env::var(NEW_PASSWORD_ENV) {
        Ok(p) => (p, false),
        Err(_) => (hrsync::accounts::random_token("")[..24].to_string(), true),
    }
}

pub fn admin(global: &Global, command: AdminCommand) -> anyhow::Result<()> {
    let (accounts, audit) = open(global)?;
    match command {
        AdminCommand::Add { username, role } => {
            let (password, generated) = new_password();
            accounts.create_account(&username, &password, role)?;
            record(&audit, Action::AccountCreated, &username, Some(role.as_str().into()));
            println!("Added `{username}` ({}).", role.as_str());
            if generated {
                println!("Initial password (shown once): {password}");
            }
        }
        AdminCommand::List { json } => {
            let list = accounts.accounts()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<24} {:<9} STATE", "USERNAME", "ROLE");
                for a in list {
                    let state =
                        a.disabled_at.map_or("enabled".to_string(), |d| format!("disabled {}", d.format("%Y-%m-%d")));
                    println!("{:<24} {:<9} {state}", a.username, a.role.as_str());
                }
            }
        }
        AdminCommand::Disable { username } => {
            accounts.set_disabled(&username, true)?;
            record(&audit, Action::AccountDisabled, &username, None);
            println!("Disabled `{username}`: its sessions ended and its tokens stopped working.");
        }
        AdminCommand::Enable { username } => {
            accounts.set_disabled(&username, false)?;
            record(&audit, Action::AccountEnabled, &username, None);
            println!("Enabled `{username}`.");
        }
        AdminCommand::ResetPassword { username } => {
            let (password, generated) = new_password();
            accounts.reset_password(&username, &password)?;
            record(&audit, Action::PasswordReset, &username, None);
            println!("Reset the password of `{username}`; its sessions ended.");
            if generated {
                println!("New password (shown once): {password}");
            }
        }
        AdminCommand::Role { username, role } => {
            accounts.set_role(&username, role)?;
            record(&audit, Action::RoleChanged, &username, Some(role.as_str().into()));
            println!("`{username}` is now {}.", role.as_str());
        }
    }
    Ok(())
}

pub fn audit(global: &Global, args: AuditArgs) -> anyhow::Result<()> {
    let (_, audit) = open(global)?;
    let since = args
        .since
        .as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).or_else(|_| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
            })
        })
        .transpose()
        .with_context(|| "--since takes a day (2026-12-01) or an RFC 3339 instant".to_string())?;
    let query =
        Query { actor: args.actor, action: args.action, since, until: None, offset: 0, limit: args.limit.max(1) };
    let (entries, total) = audit.entries(&query)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"total": total, "entries": entries}))?);
        return Ok(());
    }
    println!("{:<20} {:<20} {:<16} {:<20} {:<18} DETAIL", "WHEN", "WHO", "FROM", "WHAT", "ON");
    for e in &entries {
        println!(
            "{:<20} {:<20} {:<16} {:<20} {:<18} {}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.address,
            e.action,
            e.target.as_deref().unwrap_or(""),
            e.detail.as_deref().unwrap_or("")
        );
    }
    if total > entries.len() as u64 {
        println!("… {} more (raise --limit or filter)", total - entries.len() as u64);
    }
    Ok(())
}
