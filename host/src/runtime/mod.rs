//! Loads connector components and runs them sandboxed.
//!
//! One [`Runtime`] owns the wasmtime [`Engine`] and a [`Linker`] with exactly
//! what connectors may import: the `host` interface, WASI with no files, no
//! environment and no sockets, and wasi-http through [`egress`]. Each loaded
//! [`Connector`] is compiled once (and cached on disk) into an `InstancePre`;
//! each run gets a fresh [`Session`] — a new store and instance — so nothing
//! leaks between runs. Every call is bounded in memory, CPU and wall time;
//! a connector that exceeds a bound or traps yields a [`RunError`] that names
//! it, and the host carries on.

mod bindings;
mod cache;
pub mod egress;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use bindings::v0_1_0::hrsync::connector::host::Level;
/// The contract's types, as the host sees them.
pub use bindings::v0_1_0::hrsync::connector::types as wit;
use bindings::{Bindings, Prepared};
use egress::{EgressHooks, EgressLog, Grants, Timeouts};

/// WIT package versions of `hrsync:connector` this host can load.
pub const SUPPORTED_WIT_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];
const EXPORT_PREFIX: &str = "hrsync:connector/hr-source@";
/// Epoch tick: the granularity of CPU accounting and of wall-clock timeouts.
const TICK: Duration = Duration::from_millis(10);

/// Bounds applied to every connector call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory of one instance.
    pub memory_bytes: usize,
    /// Guest execution time of one call (time spent waiting on HTTP excluded).
    pub cpu_per_call: Duration,
    /// Wall-clock time of one call, HTTP included.
    pub wall_per_call: Duration,
    /// Bytes of stdout/stderr and log lines kept per run.
    pub log_bytes: usize,
    /// Outbound HTTP timeouts.
    pub http: Timeouts,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            cpu_per_call: Duration::from_secs(30),
            wall_per_call: Duration::from_secs(120),
            log_bytes: 1 << 20,
            http: Timeouts::default(),
        }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "{name} is not a valid WebAssembly component: {reason}. Build connectors for wasm32-wasip2 (e.g. `cargo build --target wasm32-wasip2`)."
    )]
    InvalidComponent { name: String, reason: String },
    #[error("{name} does not export `hrsync:connector/hr-source`; build it against the `hr-connector` world in wit/")]
    NotAConnector { name: String },
    #[error("{name} targets hrsync:connector@{found}, which this hrsync does not support; supported versions: {}. Rebuild it against one of them or upgrade hrsync.", SUPPORTED_WIT_VERSIONS.join(", "))]
    UnsupportedWit { name: String, found: String },
    #[error("{name} imports something hrsync does not provide: {reason}")]
    Link { name: String, reason: String },
    #[error(
        "{name} exports hr-source, but not as the contract defines it: {reason}. Rebuild it against the WIT in wit/."
    )]
    Exports { name: String, reason: String },
    #[error("{name}: `describe` failed: {source}")]
    Describe { name: String, source: Box<RunError> },
    #[error("{name}: `describe` is invalid: {reason}")]
    InvalidDescription { name: String, reason: String },
}

/// Why a connector call failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The connector reported an error through the contract.
    #[error("connector `{connector}`: {}", explain(error))]
    Source { connector: String, error: wit::ConnectorError },
    #[error("connector `{connector}` crashed: {cause}. This is a bug in the connector; report it to its author.")]
    Trap { connector: String, cause: String },
    #[error(
        "connector `{connector}` ran for more than {budget:?} of CPU in one call and was stopped (an infinite loop?)"
    )]
    CpuExhausted { connector: String, budget: Duration },
    #[error("connector `{connector}` tried to use more than {} MiB of memory and was stopped", limit >> 20)]
    MemoryExhausted { connector: String, limit: usize },
    #[error("connector `{connector}` did not answer within {after:?} and was stopped")]
    Timeout { connector: String, after: Duration },
    #[error("connector `{connector}` returned invalid data: {reason}")]
    InvalidOutput { connector: String, reason: String },
    /// The connector tried an origin the integration has not granted.
    #[error(
        "connector `{connector}` was denied {request}: that origin is not granted to this integration (granted: {granted}). If the connector should reach it, add the origin to the integration's outbound hosts."
    )]
    EgressDenied { connector: String, request: String, granted: String },
    #[error("connector `{connector}` cannot be called again in this run after an earlier failure")]
    Poisoned { connector: String },
}

impl RunError {
    /// A short, stable name for metrics: the contract error's case, or how
    /// the sandbox stopped the connector.
    pub fn kind(&self) -> &'static str {
        use wit::ConnectorError as E;
        match self {
            RunError::Source { error, .. } => match error {
                E::CredentialsRejected(_) => "credentials-rejected",
                E::PermissionDenied(_) => "permission-denied",
                E::RateLimited(_) => "rate-limited",
                E::TemporarilyUnavailable(_) => "temporarily-unavailable",
                E::Unreachable(_) => "unreachable",
                E::InvalidSettings(_) => "invalid-settings",
                E::BadResponse(_) => "bad-response",
            },
            RunError::Trap { .. } => "trap",
            RunError::CpuExhausted { .. } => "cpu-exhausted",
            RunError::MemoryExhausted { .. } => "memory-exhausted",
            RunError::Timeout { .. } => "timeout",
            RunError::InvalidOutput { .. } => "invalid-output",
            RunError::EgressDenied { .. } => "egress-denied",
            RunError::Poisoned { .. } => "poisoned",
        }
    }

    /// The contract error, when the connector reported one.
    pub fn source_error(&self) -> Option<&wit::ConnectorError> {
        match self {
            RunError::Source { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A one-line, admin-readable text for a connector error.
pub fn explain(error: &wit::ConnectorError) -> String {
    use wit::ConnectorError as E;
    match error {
        E::CredentialsRejected(m) => format!("credentials rejected: {m}"),
        E::PermissionDenied(missing) => {
            let keys: Vec<&str> = missing.iter().map(|m| m.key.as_str()).collect();
            format!("permission denied; the credential cannot read: {}", keys.join(", "))
        }
        E::RateLimited(r) => format!("rate limited (retry after {} s): {}", r.after_seconds, r.message),
        E::TemporarilyUnavailable(r) => {
            format!("temporarily unavailable (retry after {} s): {}", r.after_seconds, r.message)
        }
        E::Unreachable(m) => format!("source unreachable: {m}"),
        E::InvalidSettings(m) => format!("invalid settings: {m}"),
        E::BadResponse(m) => format!("bad response from the source: {m}"),
    }
}

/// Stops the epoch ticker thread when the runtime is dropped.
struct Ticker(Arc<AtomicBool>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The wasmtime engine, linker and limits shared by all connectors.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    _ticker: Ticker,
}

/// A loaded, validated connector, ready to run.
#[derive(Clone)]
pub struct Connector {
    /// What `describe` returned.
    pub info: wit::ConnectorInfo,
    /// The `hrsync:connector` version it was built against.
    pub wit_version: String,
    /// Where it came from (a path, or `bundled`).
    pub origin: String,
    /// SHA-256 of the component bytes.
    pub digest: String,
    pre: Prepared<RunState>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("id", &self.info.id).field("origin", &self.origin).finish()
    }
}

impl Runtime {
    /// Creates the engine. `cache_dir` keeps compiled components across restarts.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::v0_1_0::HrConnector::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::v0_2_0::HrConnector::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new().name("hrsync-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
        Ok(Runtime { engine, linker, limits, cache_dir, _ticker: Ticker(stop) })
    }

    /// The content hash that names a component in the cache and in `hrsync connectors`.
    pub fn digest(bytes: &[u8]) -> String {
        cache::digest(bytes)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Validates and prepares a component: it must be a component, export
    /// `hr-source` at a supported version, link against what the host
    /// provides, and describe itself sensibly.
    pub async fn load(&self, name: &str, bytes: &[u8]) -> Result<Connector, LoadError> {
        let digest = cache::digest(bytes);
        let component = cache::compile(&self.engine, self.cache_dir.as_deref(), &digest, bytes)
            .map_err(|reason| LoadError::InvalidComponent { name: name.into(), reason })?;
        let wit_version = self.check_exports(name, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link { name: name.into(), reason: format!("{e:#}") })?;
        let exports = |e: wasmtime::Error| LoadError::Exports { name: name.into(), reason: format!("{e:#}") };
        let pre = match wit_version.as_str() {
            "0.1.0" => Prepared::V0_1_0(bindings::v0_1_0::HrConnectorPre::new(instance_pre).map_err(exports)?),
            _ => Prepared::V0_2_0(bindings::v0_2_0::HrConnectorPre::new(instance_pre).map_err(exports)?),
        };
        let mut connector = Connector { info: placeholder_info(name), wit_version, origin: name.into(), digest, pre };
        let mut session = self
            .session(&connector, Grants::none())
            .await
            .map_err(|e| LoadError::Describe { name: name.into(), source: Box::new(e) })?;
        let info =
            session.describe().await.map_err(|e| LoadError::Describe { name: name.into(), source: Box::new(e) })?;
        validate_info(&info).map_err(|reason| LoadError::InvalidDescription { name: name.into(), reason })?;
        connector.info = info;
        Ok(connector)
    }

    fn check_exports(&self, name: &str, component: &Component) -> Result<String, LoadError> {
        let ty = component.component_type();
        let versions: Vec<String> = ty
            .exports(&self.engine)
            .filter_map(|(export, _)| export.strip_prefix(EXPORT_PREFIX).map(str::to_string))
            .collect();
        match versions.iter().find(|v| SUPPORTED_WIT_VERSIONS.contains(&v.as_str())) {
            Some(v) => Ok(v.clone()),
            None => match versions.first() {
                Some(found) => Err(LoadError::UnsupportedWit { name: name.into(), found: found.clone() }),
                None => Err(LoadError::NotAConnector { name: name.into() }),
            },
        }
    }

    /// A fresh, sandboxed instance for one run.
    pub async fn session(&self, connector: &Connector, grants: Grants) -> Result<Session, RunError> {
        self.paced_session(connector, grants, None).await
    }

    /// A session whose outbound requests wait for `pacer`.
    pub async fn paced_session(
        &self,
        connector: &Connector,
        grants: Grants,
        pacer: Option<Arc<egress::Pacer>>,
    ) -> Result<Session, RunError> {
        let id = connector.info.id.clone();
        let output = MemoryOutputPipe::new(self.limits.log_bytes);
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        let egress_log = Arc::new(Mutex::new(EgressLog::default()));
        let granted = match grants.origins() {
            [] => "none".to_string(),
            origins => origins.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", "),
        };
        let state = RunState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            egress: EgressHooks {
                connector: id.clone(),
                grants,
                timeouts: self.limits.http,
                log: egress_log.clone(),
                pacer,
            },
            memory: MemoryCap { limit: self.limits.memory_bytes, hit: false },
            logs: Vec::new(),
            log_budget: self.limits.log_bytes,
            ticks: 0,
            tick_budget: (self.limits.cpu_per_call.as_millis() / TICK.as_millis()).max(1) as u64,
            cpu_exhausted: false,
            connector: id.clone(),
            progress: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            state.ticks += 1;
            if state.ticks > state.tick_budget {
                state.cpu_exhausted = true;
                return Err(wasmtime::format_err!("CPU budget exhausted"));
            }
            // Yielding lets the wall-clock timeout fire even in a busy loop.
            Ok(UpdateDeadline::Yield(1))
        });
        let mut session = Session {
            connector: id,
            store,
            instance: None,
            limits: self.limits.clone(),
            output,
            egress_log,
            denied_before: 0,
            granted,
            poisoned: false,
        };
        let store = &mut session.store;
        let instantiate = async move {
            match &connector.pre {
                Prepared::V0_1_0(pre) => pre.instantiate_async(store).await.map(Bindings::V0_1_0),
                Prepared::V0_2_0(pre) => pre.instantiate_async(store).await.map(Bindings::V0_2_0),
            }
        };
        let result = tokio::time::timeout(self.limits.wall_per_call, instantiate).await;
        let instance = session.settle(result)?;
        session.instance = Some(instance);
        Ok(session)
    }
}

fn placeholder_info(name: &str) -> wit::ConnectorInfo {
    wit::ConnectorInfo {
        id: name.into(),
        name: name.into(),
        version: String::new(),
        description: String::new(),
        settings: Vec::new(),
        capabilities: wit::Capabilities::empty(),
        default_hosts: Vec::new(),
    }
}

/// Checks what `describe` returned; the host relies on these facts.
fn validate_info(info: &wit::ConnectorInfo) -> Result<(), String> {
    let kebab = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if !kebab(&info.id) {
        return Err(format!("id `{}` must be lower-kebab-case (a-z, 0-9, -), at most 64 characters", info.id));
    }
    if info.name.trim().is_empty() {
        return Err("name is empty".into());
    }
    let mut keys = std::collections::HashSet::new();
    for s in &info.settings {
        if !kebab(&s.key) {
            return Err(format!("setting key `{}` must be lower-kebab-case", s.key));
        }
        if !keys.insert(s.key.as_str()) {
            return Err(format!("setting `{}` is declared twice", s.key));
        }
        let choice = matches!(s.kind, wit::SettingKind::Choice | wit::SettingKind::MultiChoice);
        if choice && s.choices.is_empty() {
            return Err(format!("setting `{}` is a choice without choices", s.key));
        }
    }
    Grants::parse(&info.default_hosts).map_err(|e| format!("default host {e}"))?;
    Ok(())
}

/// One run of one connector: a fresh store and instance.
pub struct Session {
    connector: String,
    store: Store<RunState>,
    instance: Option<Bindings>,
    limits: Limits,
    output: MemoryOutputPipe,
    egress_log: Arc<Mutex<EgressLog>>,
    /// Denials logged before the current call started.
    denied_before: usize,
    /// The granted origins, for error messages.
    granted: String,
    poisoned: bool,
}

/// A line the connector logged through the `host` interface.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

macro_rules! guest_call {
    ($self:ident, $method:ident $(, $arg:expr)*) => {{
        $self.ready()?;
        $self.denied_before = $self.egress().denied.len();
        let instance = $self.instance.as_ref().expect("instantiated");
        let store = &mut $self.store;
        // The versions share their types, so both arms have one type.
        let call = async move {
            match instance {
                Bindings::V0_1_0(i) => i.hrsync_connector_hr_source().$method(store $(, $arg)*).await,
                Bindings::V0_2_0(i) => i.hrsync_connector_hr_source().$method(store $(, $arg)*).await,
            }
        };
        let result = tokio::time::timeout($self.limits.wall_per_call, call).await;
        $self.settle(result)
    }};
}

impl Session {
    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// Lines logged through `host.log` so far.
    pub fn logs(&self) -> &[LogLine] {
        &self.store.data().logs
    }

    /// What the guest wrote to stdout/stderr (truncated to the log budget).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.contents()).into_owned()
    }

    /// The last progress the connector reported through `host.progress`.
    pub fn reported_progress(&self) -> Option<(u64, Option<u64>)> {
        self.store.data().progress
    }

    /// Requests sent and denied at the egress point so far.
    pub fn egress(&self) -> EgressLog {
        self.egress_log.lock().expect("egress log").clone()
    }

    pub async fn describe(&mut self) -> Result<wit::ConnectorInfo, RunError> {
        guest_call!(self, call_describe)
    }

    pub async fn check(&mut self, settings: &[wit::Entry]) -> Result<wit::CheckReport, RunError> {
        let r = guest_call!(self, call_check, settings)?;
        self.source(r)
    }

    pub async fn fetch_page(
        &mut self,
        settings: &[wit::Entry],
        request: &wit::FetchRequest,
    ) -> Result<wit::Page, RunError> {
        let r = guest_call!(self, call_fetch_page, settings, request)?;
        self.source(r)
    }

    pub async fn map_fields(
        &mut self,
        settings: &[wit::Entry],
        records: &[wit::RawRecord],
    ) -> Result<wit::Mapped, RunError> {
        let r = guest_call!(self, call_map_fields, settings, records)?;
        self.source(r)
    }

    pub async fn diff(
        &mut self,
        settings: &[wit::Entry],
        current: &[wit::DirectoryUser],
        incoming: &[wit::Person],
        options: wit::DiffOptions,
    ) -> Result<wit::Plan, RunError> {
        let r = guest_call!(self, call_diff, settings, current, incoming, options)?;
        self.source(r)
    }

    /// Maps a contract error. A failure after the egress point denied a
    /// request is reported as that denial: the host knows the cause for sure,
    /// whatever the guest's HTTP client made of it.
    fn source<T>(&self, result: Result<T, wit::ConnectorError>) -> Result<T, RunError> {
        result.map_err(|error| {
            let egress = self.egress();
            match egress.denied.get(self.denied_before) {
                Some(request) => RunError::EgressDenied {
                    connector: self.connector.clone(),
                    request: request.clone(),
                    granted: self.granted.clone(),
                },
                None => RunError::Source { connector: self.connector.clone(), error },
            }
        })
    }

    /// Resets the per-call CPU budget; refuses calls into a failed instance.
    fn ready(&mut self) -> Result<(), RunError> {
        if self.poisoned {
            return Err(RunError::Poisoned { connector: self.connector.clone() });
        }
        self.store.data_mut().ticks = 0;
        self.store.set_epoch_deadline(1);
        Ok(())
    }

    /// Turns the outcome of a guest call into a [`RunError`] naming the cause.
    fn settle<T>(&mut self, result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>) -> Result<T, RunError> {
        let connector = self.connector.clone();
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e,
            Err(_) => {
                self.poisoned = true;
                return Err(RunError::Timeout { connector, after: self.limits.wall_per_call });
            }
        };
        self.poisoned = true;
        let state = self.store.data();
        Err(if state.memory.hit {
            RunError::MemoryExhausted { connector, limit: self.limits.memory_bytes }
        } else if state.cpu_exhausted {
            RunError::CpuExhausted { connector, budget: self.limits.cpu_per_call }
        } else {
            let mut cause = match error.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => format!("trap: {trap}"),
                None => format!("{error:#}"),
            };
            // Rust guests print the panic location and message before trapping.
            let output = self.output();
            let mut lines = output.lines().skip_while(|l| !l.contains("panicked at"));
            if let Some(location) = lines.next() {
                let message = lines.next().unwrap_or_default();
                cause.push_str(&format!(" ({} {message})", location.trim_end_matches(':')));
            }
            RunError::Trap { connector, cause }
        })
    }
}

/// Caps linear memory and remembers whether the cap was hit, so an
/// allocation failure is reported as such rather than as a bare trap.
struct MemoryCap {
    limit: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The store data of one run.
struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    egress: EgressHooks,
    memory: MemoryCap,
    logs: Vec<LogLine>,
    log_budget: usize,
    ticks: u64,
    tick_budget: u64,
    cpu_exhausted: bool,
    connector: String,
    /// The last `host.progress` (contract 0.2.0 and later).
    progress: Option<(u64, Option<u64>)>,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.egress }
    }
}

impl bindings::v0_1_0::hrsync::connector::types::Host for RunState {}

impl bindings::v0_2_0::hrsync::connector::host::Host for RunState {
    fn log(&mut self, level: bindings::v0_2_0::hrsync::connector::host::Level, message: String) {
        use bindings::v0_2_0::hrsync::connector::host::Level as L2;
        let level = match level {
            L2::Trace => Level::Trace,
            L2::Debug => Level::Debug,
            L2::Info => Level::Info,
            L2::Warn => Level::Warn,
            L2::Error => Level::Error,
        };
        bindings::v0_1_0::hrsync::connector::host::Host::log(self, level, message)
    }

    fn progress(&mut self, done: u64, total: Option<u64>) {
        tracing::debug!(connector = %self.connector, done, ?total, "progress");
        self.progress = Some((done, total));
    }
}

impl bindings::v0_1_0::hrsync::connector::host::Host for RunState {
    fn log(&mut self, level: Level, message: String) {
        let connector = self.connector.as_str();
        match level {
            Level::Trace => tracing::trace!(connector, "{message}"),
            Level::Debug => tracing::debug!(connector, "{message}"),
            Level::Info => tracing::info!(connector, "{message}"),
            Level::Warn => tracing::warn!(connector, "{message}"),
            Level::Error => tracing::error!(connector, "{message}"),
        }
        // Keep the run log bounded whatever the guest does.
        if message.len() <= self.log_budget {
            self.log_budget -= message.len();
            self.logs.push(LogLine { level, message });
        }
    }
}
