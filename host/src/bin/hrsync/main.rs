//! The `hrsync` command line.

mod account_cmds;
mod directory_cmds;
mod people_cmds;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use hrsync::connectors;
use hrsync::model::{Entry, Severity};
use hrsync::runtime::egress::Grants;
use hrsync::runtime::{Connector, Limits, Runtime};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, RateLimit, Sandbox, SandboxConfig};
use hrsync::sync::{self, FetchOptions, Fetched};

mod exit;

#[derive(Parser)]
#[command(
    name = "hrsync",
    version,
    about = "Import employees and reporting lines from HR systems into a user directory."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// `--config`'s long help: every key the file may hold (unknown keys are
/// refused when the file is read).
const CONFIG_HELP: &str = "Read settings from this TOML file; env vars and flags override it. Every key is optional:
  bind = \"127.0.0.1:8080\"            address of the web server
  data_dir = \"hrsync-data\"           database, key file, connector cache (relative to the file)
  database_url = \"postgres://…\"      PostgreSQL shared by replicas, with tenants [default: SQLite in data_dir]
  connectors_dir = \"DIR\"             extra connectors [default: DATA_DIR/connectors]
  public_url = \"https://…\"           where people reach hrsync, for links in emails
  company_name = \"Acme\"              the company in invitation emails
  alert_emails = [\"it@acme.example\"] who hears when automatic imports keep failing
  requests_per_minute = 240          pace of requests to each source; 0 turns pacing off
  trusted_proxies = [\"10.0.0.1\"]     proxies whose X-Forwarded-For/-Proto are believed
  [smtp]                             outgoing mail; without it mail stays in the outbox
  host = \"smtp.acme.example\"
  port = 587
  security = \"starttls\"              starttls | tls | none
  username = \"hrsync\"                the password only from HRSYNC_SMTP_PASSWORD
  from = \"hrsync <people@acme.example>\"
  ca_file = \"ca.pem\"                 an extra CA for a relay with a private certificate";

#[derive(Args)]
struct Global {
    /// Read settings from this TOML file; env vars and flags override it (--help lists its keys).
    #[arg(long, env = "HRSYNC_CONFIG", value_name = "FILE", global = true, long_help = CONFIG_HELP)]
    config: Option<PathBuf>,
    /// Where hrsync keeps its directory database, key file and connector cache [default: hrsync-data].
    #[arg(long = "data-dir", env = "HRSYNC_DATA_DIR", value_name = "DIR", global = true)]
    data_dir_arg: Option<PathBuf>,
    /// A PostgreSQL database shared by replicas, with tenants
    /// (postgres://user:password@host/db) [default: SQLite in the data directory].
    #[arg(long = "database-url", env = hrsync::tenancy::DATABASE_URL_ENV, value_name = "URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// The tenant (company) a command acts for, by slug; only a PostgreSQL
    /// database has others than `default`.
    #[arg(long, env = "HRSYNC_TENANT", value_name = "SLUG", global = true, default_value = "default")]
    tenant: String,
    /// Load this connector component (.wasm) in addition to the bundled ones.
    #[arg(long = "connector", value_name = "PATH.wasm", global = true)]
    connectors: Vec<PathBuf>,
    /// Load every .wasm in this directory [default: DATA_DIR/connectors].
    #[arg(long, value_name = "DIR", global = true)]
    connectors_dir: Option<PathBuf>,
    /// Also show other libraries' warnings and hrsync's debug messages
    /// (HRSYNC_LOG, e.g. `debug`, sets the filter exactly).
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
    /// The data directory after flags, env and config file.
    #[arg(skip)]
    data_dir: PathBuf,
    /// The config file's contents, if one was given.
    #[arg(skip)]
    file: hrsync::config::FileConfig,
}

impl Global {
    /// Applies the config file under the flags and env vars.
    fn resolve(&mut self) -> anyhow::Result<()> {
        if let Some(path) = &self.config {
            self.file = hrsync::config::FileConfig::load(path)?;
        }
        self.data_dir = self
            .data_dir_arg
            .clone()
            .or(self.file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(hrsync::config::DEFAULT_DATA_DIR));
        if self.connectors_dir.is_none() {
            self.connectors_dir = self.file.connectors_dir.clone();
        }
        if self.database_url.is_none() {
            self.database_url = self.file.database_url.clone();
        }
        Ok(())
    }

    /// The database (migrated) and the tenant commands act for.
    fn database(&self) -> anyhow::Result<(hrsync::tenancy::Database, hrsync::model::TenantId)> {
        let secrets = hrsync::secrets::SecretBox::open(&self.data_dir)?;
        let database = hrsync::tenancy::Database::open(self.database_url.as_deref(), &self.data_dir, secrets)?;
        let tenant = database.tenant(self.tenant.trim())?;
        Ok((database, tenant))
    }

    /// The web server's address: flag or env, else the config file, else loopback.
    fn bind(&self, arg: Option<SocketAddr>) -> SocketAddr {
        arg.or(self.file.bind).unwrap_or_else(|| hrsync::config::DEFAULT_BIND.parse().expect("default address"))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Personio sandbox alone and print its URL and credentials.
    Sandbox(SandboxArgs),
    /// List loaded connectors with their WIT version.
    Connectors {
        #[arg(long)]
        json: bool,
    },
    /// "Test connection": authenticate and report readable and missing attributes.
    Check(SourceArgs),
    /// Tools for connector authors.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// Fetch and map every person from the source; print a summary.
    Fetch(FetchArgs),
    /// Start the sandbox, import its company and serve the admin API.
    Demo(DemoArgs),
    /// Serve the admin API.
    Serve(ServeArgs),
    /// Configure and list integrations.
    Integration {
        #[command(subcommand)]
        command: directory_cmds::IntegrationCommand,
    },
    /// Show what an import would change, per person and field (stored as a preview).
    Preview(directory_cmds::RunArgs),
    /// Import: apply the changes in one transaction.
    Import(directory_cmds::ImportArgs),
    /// List runs, or show one run's changes per person.
    History {
        /// A run id.
        run: Option<i64>,
        /// Every recorded change to this user instead.
        #[arg(long)]
        user: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Stop a running preview, import or revert — of this or another
    /// process — and wait until it has stopped; nothing of it is applied.
    Cancel {
        /// The run id (`hrsync history` lists runs).
        run: i64,
        #[arg(long)]
        json: bool,
    },
    /// Restore the values a run changed (for everyone, or one user).
    Revert(directory_cmds::RevertArgs),
    /// List directory users.
    Users {
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u64,
        #[arg(long)]
        json: bool,
    },
    /// Add, change and upload people no integration manages.
    User {
        #[command(subcommand)]
        command: people_cmds::UserCommand,
    },
    /// Values kept against the source when imports run.
    Override {
        #[command(subcommand)]
        command: people_cmds::OverrideCommand,
    },
    /// Accounts of the admin pages and API — the way back in when nobody can sign in.
    Admin {
        #[command(subcommand)]
        command: account_cmds::AdminCommand,
    },
    /// The audit log: who did what, when and from where.
    Audit(account_cmds::AuditArgs),
    /// Companies served by one PostgreSQL deployment (platform operators).
    Tenant {
        #[command(subcommand)]
        command: account_cmds::TenantCommand,
    },
}

#[derive(Args)]
struct SandboxArgs {
    /// Number of employees of the generated company.
    #[arg(long, default_value_t = 200)]
    people: usize,
    #[arg(long, default_value_t = 8081)]
    port: u16,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Rate limit of the employee endpoints as PER_MINUTE/PER_SECOND (Personio's), or `off`.
    #[arg(long, default_value = "300/15", value_parser = parse_rate_limit)]
    rate_limit: RateLimitArg,
}

/// `--rate-limit`: limits, or none.
#[derive(Clone)]
struct RateLimitArg(Option<RateLimit>);

fn parse_rate_limit(text: &str) -> Result<RateLimitArg, String> {
    if text == "off" {
        return Ok(RateLimitArg(None));
    }
    let parsed = text.split_once('/').and_then(|(m, s)| Some((m.trim().parse().ok()?, s.trim().parse().ok()?)));
    match parsed {
        Some((per_minute, per_second)) if per_minute > 0 && per_second > 0 => {
            Ok(RateLimitArg(Some(RateLimit { per_minute, per_second })))
        }
        _ => Err(format!("`{text}` is not PER_MINUTE/PER_SECOND (e.g. 300/15) or `off`")),
    }
}

#[derive(Args)]
struct SourceArgs {
    /// Connector id.
    #[arg(long, default_value = "personio")]
    connector_id: String,
    /// The source's address: sets the connector's `url` (or `*-url`, e.g.
    /// Personio's `api-base-url`) setting and grants its origin.
    #[arg(long)]
    url: Option<String>,
    /// The connector's `client-id` setting.
    #[arg(long, env = "HRSYNC_CLIENT_ID")]
    client_id: Option<String>,
    /// The connector's `client-secret` setting. Prefer the environment
    /// variable: arguments show up in process lists.
    #[arg(long, env = "HRSYNC_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Any connector setting, as KEY=VALUE (secrets rather as
    /// HRSYNC_SETTING_KEY, e.g. HRSYNC_SETTING_PASSWORD).
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Allow outbound HTTP to this origin [default: the connector's declared hosts].
    #[arg(long = "grant", value_name = "ORIGIN")]
    grants: Vec<String>,
    /// Run against a fresh in-process sandbox of this many people instead of a URL.
    #[arg(long, value_name = "PEOPLE", conflicts_with = "url")]
    sandbox: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Run a connector through the contract's rules (load, describe, check,
    /// paging, mapping, diff laws, egress, budgets); exit 1 if any fails.
    Check(ConformanceArgs),
}

#[derive(Args)]
struct ConformanceArgs {
    /// The component to check [default: the loaded connector --connector-id].
    #[arg(value_name = "PATH.wasm")]
    path: Option<PathBuf>,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Args)]
struct FetchArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Incremental fetch: only people changed since this RFC 3339 instant.
    #[arg(long)]
    updated_since: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address of the web pages and API [default: 127.0.0.1:8080].
    #[arg(long, env = "HRSYNC_BIND")]
    bind: Option<SocketAddr>,
}

#[derive(Args)]
struct DemoArgs {
    /// Address of the web pages and API [default: 127.0.0.1:8080].
    #[arg(long, env = "HRSYNC_BIND")]
    bind: Option<SocketAddr>,
    #[arg(long, default_value_t = 200)]
    people: usize,
    /// Exit after the first fetch instead of serving the sandbox.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Other libraries' warnings (wasmtime's HTTP client on a dropped
    // connection, say) are for --verbose: hrsync reports what they mean.
    let default_filter = if cli.global.verbose { "info,hrsync=debug" } else { "error,hrsync=info" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HRSYNC_LOG").unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_) | Command::Sandbox(_)) {
        end_quietly_when_the_reader_goes();
    }
    if let Err(e) = cli.global.resolve() {
        eprintln!("error: {}", render(&e));
        return ExitCode::from(exit::INVALID_INPUT);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", render(&e));
            if let Some(hint) = exit::hint(&e) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(exit::code(&e))
        }
    }
}

/// `hrsync history | head`: Rust ignores SIGPIPE, so writing to a closed
/// pipe fails and `println!` panics. Commands that print and end get the
/// default back and end as any Unix tool does; servers keep ignoring it.
fn end_quietly_when_the_reader_goes() {
    #[cfg(unix)]
    // SAFETY: called before any other thread exists; only changes a signal
    // disposition back to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// An error and its causes, each said once: most messages already carry
/// their cause, which the chain would otherwise repeat.
fn render(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sandbox(args) => serve_sandbox(args).await,
        Command::Connectors { json } => list_connectors(&cli.global, json).await,
        Command::Check(args) => check(&cli.global, args).await,
        Command::Connector { command: ConnectorCommand::Check(args) } => conformance(&cli.global, args).await,
        Command::Fetch(args) => fetch(&cli.global, args).await,
        Command::Demo(args) => demo(&cli.global, args).await,
        // No connectors needed: these work even when none loads.
        Command::Admin { command } => account_cmds::admin(&cli.global, command),
        Command::Audit(args) => account_cmds::audit(&cli.global, args),
        Command::Tenant { command } => account_cmds::tenant(&cli.global, command),
        Command::Serve(args) => {
            let (runtime, loaded) = runtime_and_connectors(&cli.global).await?;
            let dir = directory_cmds::open(&cli.global, runtime, loaded)?;
            serve_web(&cli.global, dir, cli.global.bind(args.bind)).await
        }
        command => directory_command(&cli.global, command).await,
    }
}

async fn directory_command(global: &Global, command: Command) -> anyhow::Result<()> {
    let (runtime, loaded) = runtime_and_connectors(global).await?;
    let dir = directory_cmds::open(global, runtime, loaded)?;
    match command {
        Command::Integration { command: directory_cmds::IntegrationCommand::Add(args) } => {
            let id = directory_cmds::add_integration(&dir, args)?;
            println!("Added integration {id}. Next: hrsync preview --integration {id}");
            Ok(())
        }
        Command::Integration { command: directory_cmds::IntegrationCommand::List { json } } => {
            directory_cmds::list_integrations(&dir, json)
        }
        Command::Integration { command: directory_cmds::IntegrationCommand::Set(args) } => {
            directory_cmds::set_integration(&dir, args).map(|_| ())
        }
        Command::Preview(args) => directory_cmds::preview(&dir, args).await,
        Command::Import(args) => directory_cmds::import(&dir, args).await,
        Command::History { run, user, json } => directory_cmds::history(&dir, run, user, json),
        Command::Revert(args) => directory_cmds::revert(&dir, args).await,
        Command::Cancel { run, json } => directory_cmds::cancel(&dir, run, json).await,
        Command::Users { search, page, json } => directory_cmds::users(&dir, search, page, json),
        Command::User { command } => people_cmds::user(&dir, command),
        Command::Override { command } => people_cmds::overrides(&dir, command),
        Command::Sandbox(_)
        | Command::Connectors { .. }
        | Command::Check(_)
        | Command::Connector { .. }
        | Command::Fetch(_)
        | Command::Demo(_)
        | Command::Serve(_)
        | Command::Admin { .. }
        | Command::Audit(_)
        | Command::Tenant { .. } => {
            unreachable!("handled in run")
        }
    }
}

async fn runtime_and_connectors(global: &Global) -> anyhow::Result<(Runtime, connectors::Loaded)> {
    let runtime = Runtime::new(Limits::default(), Some(global.data_dir.join("cache")))?;
    let dir = global.connectors_dir.clone().unwrap_or_else(|| global.data_dir.join("connectors"));
    let loaded = connectors::load_all(&runtime, Some(&dir), &global.connectors).await?;
    Ok((runtime, loaded))
}

async fn serve_sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let sandbox = Sandbox::new(SandboxConfig::new(args.people, args.seed));
    sandbox.set_rate_limit(args.rate_limit.0);
    let running = sandbox
        .serve(SocketAddr::new(args.bind, args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}; pick another --port", args.bind, args.port))?;
    println!("Personio sandbox: {} employees at {}", sandbox.len(), running.url);
    println!("  client id:     {DEMO_CLIENT_ID}");
    println!("  client secret: {DEMO_CLIENT_SECRET}");
    println!("  limited credential (German labels, no email/supervisor): sandbox-limited / sandbox-limited-secret");
    println!(
        "  try: hrsync fetch --url {} --client-id {DEMO_CLIENT_ID} --client-secret {DEMO_CLIENT_SECRET}",
        running.url
    );
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}

async fn list_connectors(global: &Global, json: bool) -> anyhow::Result<()> {
    let (_, loaded) = runtime_and_connectors(global).await?;
    if json {
        let mut list: Vec<_> = loaded
            .connectors
            .iter()
            .map(|c| {
                serde_json::json!({
                    "loaded": true, "id": c.info.id, "name": c.info.name, "version": c.info.version,
                    "wit_version": c.wit_version, "origin": c.origin, "sha256": c.digest,
                    "events": c.events.as_ref().map(|e| e.description.clone()),
                    "default_hosts": c.info.default_hosts,
                })
            })
            .collect();
        list.extend(
            loaded.failed.iter().map(|f| serde_json::json!({"loaded": false, "origin": f.origin, "error": f.reason})),
        );
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!("{:<12} {:<12} {:<9} {:<10} ORIGIN", "ID", "NAME", "VERSION", "WIT");
    for c in &loaded.connectors {
        println!("{:<12} {:<12} {:<9} {:<10} {}", c.info.id, c.info.name, c.info.version, c.wit_version, c.origin);
    }
    if !loaded.failed.is_empty() {
        println!("\nNot loaded:");
        for f in &loaded.failed {
            println!("  {}: {}", f.origin, f.reason);
        }
    }
    Ok(())
}

/// Settings and grants for a source command; keeps an in-process sandbox alive.
struct Source {
    connector: Connector,
    settings: Vec<Entry>,
    grants: Grants,
    _sandbox: Option<hrsync::sandbox::Running>,
}

async fn source(loaded: &[Connector], args: &SourceArgs) -> anyhow::Result<Source> {
    let connector = loaded
        .iter()
        .find(|c| c.info.id == args.connector_id)
        .with_context(|| {
            let ids: Vec<&str> = loaded.iter().map(|c| c.info.id.as_str()).collect();
            format!("no connector `{}` is loaded; loaded: {}", args.connector_id, ids.join(", "))
        })?
        .clone();
    let mut url = args.url.clone();
    let mut running = None;
    let (mut id, mut secret) = (args.client_id.clone(), args.client_secret.clone());
    if let Some(people) = args.sandbox {
        let sandbox = Sandbox::new(SandboxConfig::new(people, 42));
        let r = sandbox.serve("127.0.0.1:0".parse()?).await?;
        url = Some(r.url.clone());
        id = id.or(Some(DEMO_CLIENT_ID.into()));
        secret = secret.or(Some(DEMO_CLIENT_SECRET.into()));
        running = Some(r);
    }
    let given = GivenSettings {
        url: url.as_deref(),
        client_id: id,
        client_secret: secret,
        pairs: &args.settings,
        grants: &args.grants,
    };
    let (settings, grants) = given.resolve(&connector)?;
    let grants = Grants::parse(&grants).map_err(anyhow::Error::msg)?;
    let settings = settings.into_iter().map(|(key, value)| Entry { key, value }).collect();
    Ok(Source { connector, settings, grants, _sandbox: running })
}

/// Connector settings and grants as given on the command line.
///
/// Everything is a connector setting from its schema: `--setting KEY=VALUE`,
/// or `HRSYNC_SETTING_KEY` in the environment (for secrets: arguments show
/// up in process lists). `--url`, `--client-id` and `--client-secret` are
/// shorthands for the settings of that kind a connector declares.
struct GivenSettings<'a> {
    /// `--url`: the connector's address setting (`url`, or a key ending in
    /// `-url` such as Personio's `api-base-url`); its origin is granted by default.
    url: Option<&'a str>,
    /// `--client-id`: the `client-id` setting.
    client_id: Option<String>,
    /// `--client-secret`: the `client-secret` setting.
    client_secret: Option<String>,
    /// `--setting KEY=VALUE`.
    pairs: &'a [String],
    /// `--grant ORIGIN`.
    grants: &'a [String],
}

/// The environment variable a setting may come from: `HRSYNC_SETTING_` and
/// the key in upper snake case (`client-secret` → `HRSYNC_SETTING_CLIENT_SECRET`).
fn setting_env(key: &str) -> String {
    format!("HRSYNC_SETTING_{}", key.to_uppercase().replace('-', "_"))
}

impl GivenSettings<'_> {
    /// Checks every key against the connector's schema; the grants are the
    /// given ones, else `--url`'s origin, else the connector's declared hosts.
    fn resolve(self, connector: &Connector) -> anyhow::Result<(BTreeMap<String, String>, Vec<String>)> {
        let info = &connector.info;
        let known: Vec<&str> = info.settings.iter().map(|s| s.key.as_str()).collect();
        let declared = |flag: &str, key: Option<&str>| {
            key.filter(|k| known.contains(k)).map(str::to_string).with_context(|| {
                format!(
                    "connector `{}` has no setting for {flag}; give its settings with --setting KEY=VALUE: {}",
                    info.id,
                    known.join(", ")
                )
            })
        };
        let mut settings = BTreeMap::new();
        for spec in &info.settings {
            if let Ok(value) = std::env::var(setting_env(&spec.key)) {
                settings.insert(spec.key.clone(), value);
            }
        }
        if let Some(url) = self.url {
            let key = info.settings.iter().map(|s| s.key.as_str()).find(|k| *k == "url" || k.ends_with("-url"));
            settings.insert(declared("--url", key)?, url.to_string());
        }
        if let Some(id) = self.client_id {
            settings.insert(declared("--client-id", Some("client-id"))?, id);
        }
        if let Some(secret) = self.client_secret {
            settings.insert(declared("--client-secret", Some("client-secret"))?, secret);
        }
        for pair in self.pairs {
            let (k, v) =
                pair.split_once('=').with_context(|| format!("--setting `{pair}` must look like KEY=VALUE"))?;
            settings.insert(k.trim().to_string(), v.to_string());
        }
        if let Some(unknown) = settings.keys().find(|k| !known.contains(&k.as_str())) {
            bail!("connector `{}` has no setting `{unknown}`; its settings are: {}", info.id, known.join(", "));
        }
        let grants = if !self.grants.is_empty() {
            self.grants.to_vec()
        } else if let Some(u) = self.url {
            vec![
                url::Url::parse(u).with_context(|| format!("--url `{u}` is not a URL"))?.origin().ascii_serialization(),
            ]
        } else {
            info.default_hosts.clone()
        };
        Grants::parse(&grants).map_err(anyhow::Error::msg)?;
        Ok((settings, grants))
    }
}

async fn check(global: &Global, args: SourceArgs) -> anyhow::Result<()> {
    let (runtime, loaded) = runtime_and_connectors(global).await?;
    let src = source(&loaded.connectors, &args).await?;
    let mut session = runtime.session(&src.connector, src.grants.clone()).await?;
    let report = session.check(&src.settings).await?;
    if args.json {
        let missing: Vec<_> = report
            .missing
            .iter()
            .map(|m| serde_json::json!({"key": m.key, "purpose": m.purpose, "hint": m.hint, "required": m.required}))
            .collect();
        let readable: Vec<_> =
            report.readable.iter().map(|a| serde_json::json!({"key": a.key, "label": a.label})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": report.missing.iter().all(|m| !m.required),
                "account": report.account, "readable": readable, "missing": missing, "warnings": report.warnings,
            }))?
        );
    } else {
        println!("Connected. The credential can read {} attributes.", report.readable.len());
        for m in &report.missing {
            let tag = if m.required { "MISSING (required)" } else { "missing" };
            println!("  {tag}: {} — needed for {}. {}", m.key, m.purpose, m.hint);
        }
        for w in &report.warnings {
            println!("  warning: {w}");
        }
    }
    if report.missing.iter().any(|m| m.required) {
        std::process::exit(exit::SOURCE_FAILED.into());
    }
    Ok(())
}

/// `hrsync connector check`: the conformance report; exit 1 on a failure.
async fn conformance(global: &Global, args: ConformanceArgs) -> anyhow::Result<()> {
    use hrsync::conformance::{self, Target};
    let (runtime, loaded) = runtime_and_connectors(global).await?;
    let mut loaded = loaded.connectors;
    let mut source_args = args.source;
    let (name, bytes) = match &args.path {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            (path.display().to_string(), bytes)
        }
        None => match loaded.iter().find(|c| c.info.id == source_args.connector_id) {
            Some(c) if c.origin.starts_with("bundled:") => {
                let (_, bytes) = connectors::BUNDLED.iter().find(|(o, _)| *o == c.origin).expect("a bundled connector");
                (c.origin.clone(), bytes.to_vec())
            }
            Some(c) => {
                (c.origin.clone(), std::fs::read(&c.origin).with_context(|| format!("cannot read {}", c.origin))?)
            }
            None => bail!("no connector `{}` is loaded; give a PATH.wasm", source_args.connector_id),
        },
    };
    // Settings are resolved against the connector's own schema, if it loads.
    let target = match runtime.load(&name, &bytes).await {
        Ok(connector) => {
            source_args.connector_id = connector.info.id.clone();
            loaded.retain(|c| c.info.id != connector.info.id);
            loaded.push(connector);
            let src = source(&loaded, &source_args).await?;
            let grants = src.grants.origins().iter().map(|o| o.to_string()).collect();
            (Target { settings: src.settings.clone(), grants }, Some(src))
        }
        Err(_) => (Target { settings: Vec::new(), grants: Vec::new() }, None),
    };
    let (target, _keep_sandbox) = target;
    let report = conformance::run(&runtime, &name, &bytes, &target).await;
    if source_args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}

async fn fetch(global: &Global, args: FetchArgs) -> anyhow::Result<()> {
    let (runtime, loaded) = runtime_and_connectors(global).await?;
    let src = source(&loaded.connectors, &args.source).await?;
    let options = FetchOptions { updated_since: args.updated_since.clone(), ..FetchOptions::default() };
    let started = Instant::now();
    let fetched = fetch_with_progress(&runtime, &src, &options).await?;
    print_summary(&fetched, started.elapsed(), args.source.json)
}

async fn fetch_with_progress(runtime: &Runtime, src: &Source, options: &FetchOptions) -> anyhow::Result<Fetched> {
    let mut session = runtime.session(&src.connector, src.grants.clone()).await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"));
    let result = sync::fetch_all(&mut session, &src.settings, options, |p| {
        match p.total {
            Some(t) => bar.set_message(format!("fetched {} of {t} people ({} pages)", p.records, p.pages)),
            None => bar.set_message(format!("fetched {} people ({} pages)", p.records, p.pages)),
        }
        bar.tick();
    })
    .await;
    bar.finish_and_clear();
    Ok(result?)
}

fn print_summary(fetched: &Fetched, elapsed: std::time::Duration, json: bool) -> anyhow::Result<()> {
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &fetched.people {
        *by_status.entry(p.status.as_str()).or_default() += 1;
    }
    let errors = fetched.issues.iter().filter(|i| i.severity == Severity::Error).count();
    if json {
        let issues: Vec<_> = fetched
            .issues
            .iter()
            .map(|i| {
                serde_json::json!({"source_id": i.source_id, "name": i.name, "field": i.field,
                "severity": i.severity, "message": i.message})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "people": fetched.people.len(), "records": fetched.records, "pages": fetched.pages,
                "by_status": by_status, "with_manager": fetched.people.iter().filter(|p| p.supervisor_id.is_some()).count(),
                "retries": fetched.retries, "elapsed_ms": elapsed.as_millis() as u64, "issues": issues,
            }))?
        );
        return Ok(());
    }
    println!(
        "Fetched {} people in {} pages ({:.2} s, {} retries).",
        fetched.people.len(),
        fetched.pages,
        elapsed.as_secs_f64(),
        fetched.retries
    );
    let counts: Vec<String> = by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!("  by status: {}", counts.join(", "));
    println!("  with a manager: {}", fetched.people.iter().filter(|p| p.supervisor_id.is_some()).count());
    println!("  issues: {} ({errors} errors)", fetched.issues.len());
    for i in fetched.issues.iter().take(10) {
        let who = i.name.clone().or(i.source_id.as_ref().map(|s| s.to_string())).unwrap_or_default();
        println!("    - {who}: {}", i.message);
    }
    if fetched.issues.len() > 10 {
        println!("    … and {} more (use --json for all)", fetched.issues.len() - 10);
    }
    Ok(())
}

async fn demo(global: &Global, args: DemoArgs) -> anyhow::Result<()> {
    use hrsync::directory::IntegrationConfig;
    use hrsync::sync::engine::RunRequest;

    let sandbox = Sandbox::new(SandboxConfig::new(args.people, 42));
    let running = sandbox.serve("127.0.0.1:0".parse()?).await.context("starting the Personio sandbox")?;
    println!("hrsync demo: a Personio sandbox with {} employees at {}", sandbox.len(), running.url);
    let (runtime, loaded) = runtime_and_connectors(global).await?;
    let c =
        loaded.connectors.iter().find(|c| c.info.id == "personio").context("the Personio connector is not loaded")?;
    println!("Loaded connector {} {} (WIT {}), sandboxed.", c.info.name, c.info.version, c.wit_version);
    let dir = directory_cmds::open(global, runtime, loaded)?;

    // One demo integration, pointed at this run's sandbox.
    const NAME: &str = "Personio sandbox (demo)";
    const DEMO_COMPANY: &str = "Acme Demo GmbH";
    let mut config = IntegrationConfig::new("personio", NAME);
    config.settings = BTreeMap::from([
        ("api-base-url".to_string(), running.url.clone()),
        ("client-id".to_string(), DEMO_CLIENT_ID.to_string()),
        ("client-secret".to_string(), DEMO_CLIENT_SECRET.to_string()),
        ("company-subdomain".to_string(), "acme".to_string()),
        // v2 reads one request per person (their employment) where v1 reads
        // a hundred people a request; the demo's first import stays instant.
        ("api-version".to_string(), "v1".to_string()),
    ]);
    config.secret_keys.insert("client-secret".into());
    config.grants = vec![running.url.clone()];
    config.secrets_for = config.grants.clone();
    // The demo shows automation too: changes made in the sandbox arrive by
    // themselves, and new people's invitations appear on the Emails page.
    config.auto_import = true;
    config.send_emails = true;
    config.interval_minutes = 5;
    if dir.engine.company_name()?.is_none() {
        dir.store.set_company_name(DEMO_COMPANY)?;
    }
    let integration = match dir.store.integrations()?.into_iter().find(|i| i.config.name == NAME) {
        Some(existing) => {
            dir.store.update_integration(existing.id, &config)?;
            existing.id
        }
        None => dir.store.create_integration(&config)?,
    };
    let started = Instant::now();
    let report =
        dir.engine.import(&RunRequest { actor: Some("demo".into()), ..RunRequest::manual(integration) }).await?;
    let c = &report.run.counts;
    println!(
        "Imported in {:.2} s (run {}): {} created, {} updated, {} deactivated, {} unchanged, {} issues.",
        started.elapsed().as_secs_f64(),
        report.run.id,
        c.created,
        c.updated,
        c.deactivated,
        c.unchanged,
        c.issues
    );
    let (users, total) = dir.store.users(&hrsync::directory::UserQuery { limit: 8, ..Default::default() })?;
    println!("\nThe directory now has {total} users, for example:");
    for u in users {
        let manager = match u.manager_id {
            Some(m) => dir.store.user(m)?.profile.display_name(),
            None => "—".into(),
        };
        println!(
            "  {:<26} {:<24} {:<18} {:<13} reports to {manager}",
            u.profile.display_name(),
            u.profile.job_title.as_deref().unwrap_or(""),
            u.profile.department.as_deref().unwrap_or(""),
            u.profile.status.as_str()
        );
    }
    if args.once {
        running.stop().await;
        return Ok(());
    }
    let data = global.data_dir.display();
    println!(
        "\nThe sandbox keeps serving at {url}. Change the company there and open the integration's Preview tab (or run `hrsync --data-dir {data} preview`); automatic imports every 5 minutes apply it by themselves, and a new hire's invitation appears on the Emails page:\n  curl -X PATCH {url}/_sandbox/employees/1001 -H 'content-type: application/json' -d '{{\"last_name\":\"Renamed\"}}'\n  curl -X POST {url}/_sandbox/employees -H 'content-type: application/json' -d '{{\"first_name\":\"Grace\",\"last_name\":\"Hopper\",\"email\":\"grace.hopper@acme.example\"}}'\nThe import above is run {run} in the History tab (`hrsync --data-dir {data} history {run}`).",
        url = running.url,
        run = report.run.id,
    );
    let result = serve_web(global, dir, global.bind(args.bind)).await;
    running.stop().await;
    result
}

/// Serves the admin pages and API until Ctrl-C, with automatic imports and
/// mail delivery; creates and prints the first admin's initial password if
/// there is no admin yet.
async fn serve_web(global: &Global, mut dir: directory_cmds::Directory, bind: SocketAddr) -> anyhow::Result<()> {
    use hrsync::accounts::{ADMIN_PASSWORD_ENV, FIRST_ADMIN};
    use hrsync::schedule::{Schedulers, SystemClock};
    use std::sync::Arc;

    let file = &global.file;
    let smtp = file.smtp(|k| std::env::var(k).ok()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut alert_to = Vec::new();
    for address in &file.alert_emails {
        alert_to.push(
            hrsync::directory::Email::parse(address).map_err(|e| anyhow::anyhow!("alert_emails: `{address}`: {e}"))?,
        );
    }
    for wider in hrsync::data_dir::exposure(&global.data_dir) {
        tracing::warn!("the data directory is not private: {wider}");
        eprintln!("warning: {wider}");
    }
    let (accounts, audit) = dir.database.accounts_and_audit(dir.tenant)?;
    let (accounts, audit) = (Arc::new(accounts), Arc::new(audit));
    let given = std::env::var(ADMIN_PASSWORD_ENV).ok();
    match accounts.ensure_admin(given.as_deref())? {
        Some(password) => println!(
            "Created the admin account `{FIRST_ADMIN}` with the initial password: {password}\n(set {ADMIN_PASSWORD_ENV} to choose it instead)"
        ),
        None if given.is_some() => println!("Admin `{FIRST_ADMIN}` uses the password from {ADMIN_PASSWORD_ENV}."),
        None => {}
    }
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}; pick another --bind"))?;
    let addr = listener.local_addr()?;
    let public_url =
        std::env::var("HRSYNC_PUBLIC_URL").ok().or(file.public_url.clone()).unwrap_or_else(|| format!("http://{addr}"));
    dir.engine.invite = hrsync::mail::Invite {
        company: file.company_name.clone(),
        public_url: public_url.clone(),
        ..Default::default()
    };
    dir.engine.pace = file.pace();
    let engine = Arc::new(dir.engine);

    // Scheduler and courier stop with the server.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.changed().await;
        }
    };
    let webhooks = Arc::new(hrsync::webhooks::Webhooks::new(engine.clone(), &public_url));
    let default = hrsync::tenancy::Scope { tenant: dir.tenant, engine: engine.clone(), accounts, audit, webhooks };
    let tenancy = Arc::new(hrsync::tenancy::Tenancy::of(&dir.database, default));
    let mut schedulers = Schedulers::new(tenancy.clone(), Arc::new(SystemClock), rand::random());
    schedulers.alert_to = alert_to;
    schedulers.public_url = public_url.clone();
    let scheduling = tokio::spawn(schedulers.run_forever(shutdown()));
    let mail = match &smtp {
        Some(settings) => {
            let courier = hrsync::mail::Courier::new(dir.database.outbox(), settings)?;
            tokio::spawn(courier.run(engine.mail_queued.clone(), shutdown()));
            format!("sent through {}", settings.host)
        }
        None => "kept in the outbox (no SMTP configured; see the Emails page)".to_string(),
    };
    println!(
        "\nhrsync is serving (Ctrl-C stops it):\n  data         {database}\n  admin pages  http://{addr}/  (sign in as `{FIRST_ADMIN}`)\n  JSON API     http://{addr}/api/v1  (OpenAPI: /api/v1/openapi.json)\n  health       http://{addr}/healthz, /readyz, /metrics\n  emails       {mail}\n  links in emails point to {public_url}",
        database = dir.database.describe()
    );
    let mut state = hrsync::web::AppState::for_tenancy(tenancy);
    state.smtp = smtp.is_some();
    state.trusted_proxies = file.trusted_proxies.clone();
    state.https = public_url.starts_with("https://");
    // Deliveries from sources that push changes become runs within seconds.
    tokio::spawn(state.tenancy.clone().process_deliveries_forever(shutdown()));
    hrsync::web::serve(listener, state, async move {
        stop_requested().await;
        let _ = stop.send(true);
    })
    .await?;
    // Automatic runs in progress finish before the process ends: an
    // upgrade's restart should not leave a claimed run to wait for its
    // claim to lapse. Past the grace period it is left to the lease.
    if tokio::time::timeout(SHUTDOWN_GRACE, scheduling).await.is_err() {
        tracing::warn!(
            "stopping with automatic runs in progress; another replica retries them when their claim lapses"
        );
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM as container runtimes and service managers stop a
/// process.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// How long `serve` waits, when stopped, for automatic runs in progress.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(60);
