//! Commands on the directory: integrations, preview, import, history,
//! revert, users.

use hrsync::directory::prelude::*;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::bail;
use clap::{Args, Subcommand};
use hrsync::directory::{
    ChangeKind, ChangeRecord, IntegrationConfig, IntegrationId, IssueRecord, Run, RunId, UserId, UserQuery,
};
use hrsync::runtime::Runtime;
use hrsync::sync::engine::{ProgressFn, RevertRequest, RunRequest};
use hrsync::sync::{RunReport, SyncEngine};

use crate::Global;

#[derive(Subcommand)]
pub enum IntegrationCommand {
    /// Configure a connector instance (e.g. one Personio company).
    Add(AddArgs),
    /// List configured integrations (secrets are never shown).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change an integration's name, automatic imports, password emails,
    /// interval, safeguards or run limits (settings and secrets: the
    /// Configuration tab or the API).
    Set(SetArgs),
}

#[derive(Args)]
pub struct SetArgs {
    /// Integration id [default: the only one].
    #[arg(long)]
    pub integration: Option<i64>,
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub policy: Policy,
}

/// What runs an integration and how far they may go: shared by `add` and
/// `set`; a flag not given leaves the value as it is (or the default).
#[derive(Args)]
pub struct Policy {
    /// Run automatic imports [default: off].
    #[arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new())]
    pub auto_import: Option<bool>,
    /// Send password emails to people automatic imports create [default: off];
    /// needs the company's name (--company-name, or `company_name` in the config file).
    #[arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new())]
    pub send_emails: Option<bool>,
    /// The company's name, as password emails greet new people with it
    /// (shared by every integration).
    #[arg(long, value_name = "NAME")]
    pub company_name: Option<String>,
    /// Minutes between automatic imports, 5 to 1440 [default: 120].
    #[arg(long, value_name = "MINUTES")]
    pub interval: Option<u32>,
    /// Deactivate people missing from this many complete runs in a row [default: 2].
    #[arg(long, value_name = "RUNS")]
    pub missing_after: Option<u32>,
    /// Safeguard: block a run that would deactivate more than this percentage
    /// of the integration's users [default: 20].
    #[arg(long, value_name = "PERCENT")]
    pub max_deactivate_percent: Option<f64>,
    /// Safeguard: block a run that would change more than this percentage of
    /// their emails [default: 20].
    #[arg(long, value_name = "PERCENT")]
    pub max_email_percent: Option<f64>,
    /// Stop a run (applying nothing) after this many pages [default: 10000].
    #[arg(long)]
    pub max_pages: Option<u32>,
    /// Stop a run (applying nothing) after this many records [default: 500000].
    #[arg(long)]
    pub max_records: Option<u32>,
    /// Stop a run (applying nothing) after this many minutes, 1 to 1440 [default: 60].
    #[arg(long, value_name = "MINUTES")]
    pub max_run_minutes: Option<u32>,
}

impl Policy {
    /// Refuses password emails without a company name; stores a new name
    /// (call once the rest of the change is known to be valid).
    fn check_company(
        &self,
        dir: &Directory,
        config: &IntegrationConfig,
        before: Option<&IntegrationConfig>,
    ) -> anyhow::Result<()> {
        if dir.engine.lacks_company_name(config, before, self.company_name.as_deref())? {
            bail!("password emails greet new people with the company's name, and none is set: add --company-name NAME");
        }
        Ok(())
    }

    fn save_company(&self, dir: &Directory) -> anyhow::Result<()> {
        if let Some(name) = &self.company_name {
            dir.store.set_company_name(name)?;
            dir.record(hrsync::audit::Action::CompanyNamed, "company".into(), Some(name.trim().to_string()));
        }
        Ok(())
    }

    fn apply(&self, config: &mut IntegrationConfig) {
        let set = |value: Option<u32>, into: &mut u32| *into = value.unwrap_or(*into);
        config.auto_import = self.auto_import.unwrap_or(config.auto_import);
        config.send_emails = self.send_emails.unwrap_or(config.send_emails);
        set(self.interval, &mut config.interval_minutes);
        set(self.missing_after, &mut config.missing_after);
        config.max_deactivate_share = self.max_deactivate_percent.map_or(config.max_deactivate_share, |p| p / 100.0);
        config.max_email_share = self.max_email_percent.map_or(config.max_email_share, |p| p / 100.0);
        set(self.max_pages, &mut config.limits.max_pages);
        set(self.max_records, &mut config.limits.max_records);
        set(self.max_run_minutes, &mut config.limits.max_minutes);
    }
}

#[derive(Args)]
pub struct AddArgs {
    /// Connector id, as `hrsync connectors` lists it.
    #[arg(long, default_value = "personio")]
    pub connector_id: String,
    #[arg(long)]
    pub name: String,
    /// The source's address: sets the connector's `url` (or `*-url`, e.g.
    /// Personio's `api-base-url`) setting and grants its origin.
    #[arg(long)]
    pub url: Option<String>,
    /// The connector's `client-id` setting.
    #[arg(long, env = "HRSYNC_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The connector's `client-secret` setting. Prefer the environment
    /// variable: arguments show up in process lists.
    #[arg(long, env = "HRSYNC_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Any connector setting, as KEY=VALUE (secrets rather as
    /// HRSYNC_SETTING_KEY, e.g. HRSYNC_SETTING_PASSWORD).
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// Allow outbound HTTP to this origin [default: the connector's hosts, or --url's].
    #[arg(long = "grant", value_name = "ORIGIN")]
    pub grants: Vec<String>,
    #[command(flatten)]
    pub policy: Policy,
}

#[derive(Args)]
pub struct RunArgs {
    /// Integration id [default: the only one].
    #[arg(long)]
    pub integration: Option<i64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Apply without asking.
    #[arg(long)]
    pub yes: bool,
    /// Import what preview N showed; stop if the source changed since.
    #[arg(long, value_name = "N")]
    pub from_preview: Option<i64>,
    /// Apply although the source changed since --from-preview.
    #[arg(long)]
    pub accept_drift: bool,
    /// Apply although the mass-change safeguard tripped.
    #[arg(long = "override")]
    pub override_safeguard: bool,
}

/// `hrsync revert`.
#[derive(Args)]
pub struct RevertArgs {
    /// The run to revert (`hrsync history` lists runs).
    pub run: i64,
    /// Only this user's changes.
    #[arg(long)]
    pub user: Option<i64>,
    /// Keep the restored values with overrides, so the next import does not
    /// undo the revert (`hrsync override list` shows them).
    #[arg(long)]
    pub keep: bool,
    /// Apply without asking.
    #[arg(long)]
    pub yes: bool,
    #[arg(long)]
    pub json: bool,
}

pub struct Directory {
    pub database: hrsync::tenancy::Database,
    pub tenant: hrsync::model::TenantId,
    pub store: Arc<dyn DirectoryStore>,
    pub engine: SyncEngine,
    pub audit: hrsync::audit::Audit,
}

/// Opens the directory in the data directory and the engine over it.
/// Opening changes nothing: runs of other processes keep their leases.
pub fn open(global: &Global, runtime: Runtime, loaded: hrsync::connectors::Loaded) -> anyhow::Result<Directory> {
    let (database, tenant) = global.database()?;
    let store = database.store(tenant);
    let (_, audit) = database.accounts_and_audit(tenant)?;
    let mut engine = SyncEngine::new(Arc::new(runtime), store.clone(), loaded.connectors);
    engine.failed_connectors = loaded.failed;
    engine.invite.company = global.file.company_name.clone();
    // Runs from the command line pace their requests as the server's do.
    engine.pace = global.file.pace();
    Ok(Directory { database, tenant, store, engine, audit })
}

impl Directory {
    /// Adds an audit entry for a command run on this host.
    pub fn record(&self, action: hrsync::audit::Action, target: String, detail: Option<String>) {
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
        self.audit.record(hrsync::audit::Event {
            actor: format!("cli:{user}"),
            address: "cli".into(),
            action,
            target: Some(target),
            detail,
        });
    }

    /// The integration given, or the only one configured.
    pub fn integration(&self, id: Option<i64>) -> anyhow::Result<IntegrationId> {
        if let Some(id) = id {
            return Ok(self.store.integration(IntegrationId(id))?.id);
        }
        let all = self.store.integrations()?;
        match all.as_slice() {
            [one] => Ok(one.id),
            [] => bail!("no integration is configured; add one with `hrsync integration add`"),
            _ => bail!(
                "{} integrations are configured; pick one with --integration (see `hrsync integration list`)",
                all.len()
            ),
        }
    }
}

pub fn add_integration(dir: &Directory, args: AddArgs) -> anyhow::Result<IntegrationId> {
    let connector = dir.engine.connector(&args.connector_id)?.clone();
    let mut config = IntegrationConfig::new(&connector.info.id, &args.name);
    args.policy.apply(&mut config);
    let given = crate::GivenSettings {
        url: args.url.as_deref(),
        client_id: args.client_id,
        client_secret: args.client_secret,
        pairs: &args.settings,
        grants: &args.grants,
    };
    (config.settings, config.grants) = given.resolve(&connector)?;
    config.secrets_for = config.grants.clone();
    config.validate(&connector.info).map_err(anyhow::Error::msg)?;
    args.policy.check_company(dir, &config, None)?;
    args.policy.save_company(dir)?;
    let id = dir.store.create_integration(&config)?;
    dir.record(hrsync::audit::Action::IntegrationCreated, format!("integration {id}"), Some(config.name));
    Ok(id)
}

pub fn set_integration(dir: &Directory, args: SetArgs) -> anyhow::Result<IntegrationId> {
    let id = dir.integration(args.integration)?;
    let before = dir.store.integration(id)?;
    let connector = dir.engine.connector(&before.config.connector_id)?.clone();
    let mut config = before.config.clone();
    if let Some(name) = args.name {
        config.name = name;
    }
    args.policy.apply(&mut config);
    config.validate(&connector.info).map_err(anyhow::Error::msg)?;
    args.policy.check_company(dir, &config, Some(&before.config))?;
    args.policy.save_company(dir)?;
    let changed = config.changed_since(&before.config);
    if changed.is_empty() {
        println!("Integration {id}: nothing changed.");
        return Ok(id);
    }
    dir.store.update_integration(id, &config)?;
    dir.record(hrsync::audit::Action::SettingsChanged, format!("integration {id}"), Some(changed.join(", ")));
    println!("Integration {id}: changed {}.", changed.join(", "));
    Ok(id)
}

pub fn list_integrations(dir: &Directory, json: bool) -> anyhow::Result<()> {
    let all = dir.store.integrations()?;
    if json {
        let list: Vec<_> = all
            .iter()
            .map(|i| {
                // Secret values never leave the store: only whether one is set.
                let settings: serde_json::Map<String, serde_json::Value> = i
                    .config
                    .settings
                    .iter()
                    .map(|(k, v)| {
                        let shown = if i.config.secret_keys.contains(k) {
                            serde_json::json!({"stored": !v.is_empty()})
                        } else {
                            serde_json::json!(v)
                        };
                        (k.clone(), shown)
                    })
                    .collect();
                let c = &i.config;
                serde_json::json!({"id": i.id, "connector": c.connector_id, "name": c.name,
                    "settings": settings, "grants": c.grants, "auto_import": c.auto_import,
                    "send_emails": c.send_emails, "interval_minutes": c.interval_minutes,
                    "missing_after": c.missing_after, "max_deactivate_share": c.max_deactivate_share,
                    "max_email_share": c.max_email_share, "max_pages": c.limits.max_pages,
                    "max_records": c.limits.max_records, "max_run_minutes": c.limits.max_minutes})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!("{:<4} {:<12} {:<24} GRANTS", "ID", "CONNECTOR", "NAME");
    for i in all {
        println!("{:<4} {:<12} {:<24} {}", i.id, i.config.connector_id, i.config.name, i.config.grants.join(", "));
    }
    Ok(())
}

fn progress_bar() -> (indicatif::ProgressBar, ProgressFn) {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"));
    let b = bar.clone();
    let f: ProgressFn = Arc::new(move |p| {
        match p.total {
            Some(t) => b.set_message(format!("fetched {} of {t} people", p.records)),
            None => b.set_message(format!("fetched {} people", p.records)),
        }
        b.tick();
    });
    (bar, f)
}

pub async fn preview(dir: &Directory, args: RunArgs) -> anyhow::Result<()> {
    let integration = dir.integration(args.integration)?;
    dir.record(hrsync::audit::Action::Preview, format!("integration {integration}"), None);
    let (bar, progress) = progress_bar();
    let request = RunRequest { progress: Some(progress), ..RunRequest::manual(integration) };
    let result = dir.engine.preview(&request).await;
    bar.finish_and_clear();
    let report = result?;
    print_report(&report, args.json, "would")?;
    if !args.json {
        println!("\nApply exactly this with: hrsync import --from-preview {}", report.run.id);
    }
    Ok(())
}

pub async fn import(dir: &Directory, args: ImportArgs) -> anyhow::Result<()> {
    let integration = dir.integration(args.run.integration)?;
    let mut from_preview = args.from_preview.map(RunId);
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("import asks for confirmation; pass --yes to apply without asking");
        }
        let (bar, progress) = progress_bar();
        let preview =
            dir.engine.preview(&RunRequest { progress: Some(progress), ..RunRequest::manual(integration) }).await;
        bar.finish_and_clear();
        let preview = preview?;
        print_report(&preview, false, "would")?;
        if !confirm("Apply these changes? Nobody is emailed by a manual import.")? {
            return Ok(());
        }
        from_preview = from_preview.or(Some(preview.run.id));
    }
    let detail = args.override_safeguard.then(|| "despite the safeguard".to_string());
    dir.record(hrsync::audit::Action::Import, format!("integration {integration}"), detail);
    let (bar, progress) = progress_bar();
    let request = RunRequest {
        from_preview,
        accept_drift: args.accept_drift,
        override_safeguard: args.override_safeguard,
        actor: std::env::var("USER").ok(),
        progress: Some(progress),
        ..RunRequest::manual(integration)
    };
    let result = dir.engine.import(&request).await;
    bar.finish_and_clear();
    let report = result?;
    print_report(&report, args.run.json, "did")
}

pub fn history(dir: &Directory, run: Option<i64>, user: Option<i64>, json: bool) -> anyhow::Result<()> {
    if let Some(user) = user {
        let entries = dir.store.user_history(UserId(user))?;
        if json {
            let list: Vec<_> = entries.iter().map(|(r, c)| serde_json::json!({"run": r, "change": c})).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        } else {
            for (run, change) in entries {
                println!("run {run}:");
                print_change(&change);
            }
        }
        return Ok(());
    }
    let Some(run) = run else {
        let runs = dir.store.runs(None, 0, 50)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&runs)?);
            return Ok(());
        }
        println!(
            "{:<5} {:<8} {:<10} {:<10} {:<20} {:>8} {:<10} {:>7} {:>7} {:>7}  DETAIL",
            "RUN", "KIND", "TRIGGER", "STATE", "STARTED", "TOOK", "BY", "NEW", "UPD", "DEACT"
        );
        for r in runs {
            let detail = r.error.clone().unwrap_or_default();
            let took = r.finished_at.map(|f| format!("{:.1}s", (f - r.started_at).num_milliseconds() as f64 / 1000.0));
            println!(
                "{:<5} {:<8} {:<10} {:<10} {:<20} {:>8} {:<10} {:>7} {:>7} {:>7}  {}",
                r.id,
                format!("{:?}", r.kind).to_lowercase(),
                r.trigger.as_str(),
                format!("{:?}", r.state).to_lowercase(),
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                took.unwrap_or_else(|| "—".into()),
                r.actor.as_deref().unwrap_or("—"),
                r.counts.created,
                r.counts.updated,
                r.counts.deactivated,
                detail.chars().take(80).collect::<String>()
            );
        }
        return Ok(());
    };
    let report = RunReport {
        run: dir.store.run(RunId(run))?,
        changes: dir.store.run_changes(RunId(run), None)?,
        issues: dir.store.run_issues(RunId(run))?,
        kept: dir.store.run_kept(RunId(run))?,
    };
    print_report(&report, json, "did")
}

pub async fn revert(dir: &Directory, args: RevertArgs) -> anyhow::Result<()> {
    let RevertArgs { run, user, keep, yes, json } = args;
    let user = user.map(UserId);
    let request = RevertRequest { user, keep, ..RevertRequest::new(RunId(run), std::env::var("USER").ok()) };
    let (plan, preview) = dir.engine.revert(RevertRequest { dry_run: true, ..request.clone() }).await?;
    if plan.changes.is_empty() {
        print_issues(&preview.issues);
        bail!("nothing to revert: every recorded value was changed again since run {run}");
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("revert asks for confirmation; pass --yes to apply without asking");
        }
        print_report(&preview, false, "would")?;
        if !confirm("Restore these values?")? {
            return Ok(());
        }
    }
    dir.record(hrsync::audit::Action::Revert, format!("run {run}"), user.map(|u| format!("user {u}")));
    let (_, report) = dir.engine.revert(request).await?;
    print_report(&report, json, "did")
}

pub async fn cancel(dir: &Directory, run: i64, json: bool) -> anyhow::Result<()> {
    let run = RunId(run);
    dir.engine.cancel(run, std::env::var("USER").ok().as_deref())?;
    dir.record(hrsync::audit::Action::Cancel, format!("run {run}"), None);
    // Its process stops it within a heartbeat or two.
    let deadline =
        std::time::Instant::now() + 3 * hrsync::directory::HEARTBEAT_EVERY + std::time::Duration::from_secs(10);
    let mut ended = dir.store.run(run)?;
    while ended.state.is_live() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        ended = dir.store.run(run)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&ended)?);
        return Ok(());
    }
    match ended.state {
        s if s.is_live() => bail!(
            "run {run} was asked to stop but is still running; its process stops it at its next heartbeat — check with `hrsync history {run}`"
        ),
        hrsync::directory::RunState::Cancelled => println!("Run {run} was cancelled; nothing of it was applied."),
        _ => println!(
            "Run {run} had already ended before it could be stopped: {}.",
            format!("{:?}", ended.state).to_lowercase()
        ),
    }
    Ok(())
}

pub fn users(dir: &Directory, search: Option<String>, page: u64, json: bool) -> anyhow::Result<()> {
    const PAGE: u64 = 50;
    let query = UserQuery { search, offset: page.saturating_sub(1) * PAGE, limit: PAGE, ..UserQuery::default() };
    let (users, total) = dir.store.users(&query)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"total": total, "users": users}))?);
        return Ok(());
    }
    println!("{:<6} {:<28} {:<36} {:<14} {:<20} MANAGER", "ID", "NAME", "EMAIL", "STATUS", "DEPARTMENT");
    for u in &users {
        println!(
            "{:<6} {:<28} {:<36} {:<14} {:<20} {}",
            u.id,
            u.profile.display_name(),
            u.profile.email,
            u.profile.status.as_str(),
            u.profile.department.as_deref().unwrap_or(""),
            u.manager_id.map(|m| m.to_string()).unwrap_or_default()
        );
    }
    println!("page {page} of {} ({total} users)", total.div_ceil(PAGE).max(1));
    Ok(())
}

/// Asks on the terminal; anything but yes changes nothing.
fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("\n{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    let yes = matches!(answer.trim(), "y" | "Y" | "yes");
    if !yes {
        println!("Nothing was changed.");
    }
    Ok(yes)
}

fn paint(code: &str, text: &str) -> String {
    if std::io::stdout().is_terminal() { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
}

fn print_report(report: &RunReport, json: bool, verb: &str) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"run": report.run, "changes": report.changes, "issues": report.issues})
            )?
        );
        return Ok(());
    }
    print_run(&report.run, verb);
    for c in &report.changes {
        print_change(c);
    }
    print_issues(&report.issues);
    Ok(())
}

fn print_run(r: &Run, verb: &str) {
    let c = &r.counts;
    println!(
        "Run {} ({:?}, {:?}): {:?}. It {verb} create {}, update {}, change {} managers, deactivate {}, reactivate {}, link {}; {} missing from the source; {} unchanged; {} issues.",
        r.id,
        r.kind,
        r.trigger,
        r.state,
        c.created,
        c.updated,
        c.manager_changes,
        c.deactivated,
        c.reactivated,
        c.linked,
        c.missing,
        c.unchanged,
        c.issues
    );
    if let Some(e) = &r.error {
        println!("  {}", paint("31", e));
    }
}

fn print_change(c: &ChangeRecord) {
    let (mark, color) = match c.kind {
        ChangeKind::Create => ("+", "32"),
        ChangeKind::Deactivate => ("-", "31"),
        ChangeKind::Missing => ("?", "33"),
        _ => ("~", "36"),
    };
    let who = c.user_id.map(|u| format!(" (user {u})")).unwrap_or_default();
    println!("{} {} {}{who}", paint(color, mark), c.kind.as_str(), c.name);
    for f in &c.fields {
        println!("    {:<18} {} → {}", f.field, f.before.as_deref().unwrap_or("—"), f.after.as_deref().unwrap_or("—"));
    }
}

fn print_issues(issues: &[IssueRecord]) {
    for i in issues.iter().take(20) {
        let who = i.name.clone().or(i.source_id.clone()).unwrap_or_default();
        println!("  {} {who}: {}", paint("33", &format!("[{}]", i.severity)), i.message);
    }
    if issues.len() > 20 {
        println!("  … and {} more issues (use --json for all)", issues.len() - 20);
    }
}
