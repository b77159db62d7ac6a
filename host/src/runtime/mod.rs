//! Loads connector components and runs them sandboxed.
//!
//! One [`Runtime`] owns the wasmtime [`Engine`] and a [`Linker`] with exactly
//! what connectors may import: the `host` interface, WASI with no files, no
//! environment and no sockets, and wasi-http through [`egress`]. Each loaded
//! [`Connector`] is compiled once (and cached on disk) into an `InstancePre`;
//! each run gets a fresh [`Session`] — a new store and instance — so nothing
//! leaks between runs. Every call is bounded in memory, CPU and wall time,
//! and what a guest can make the host hold (resource handles, header sets,
//! request bodies, log lines) is bounded too ([`Limits`]); a connector that
//! exceeds a bound or traps yields a [`RunError`] that names it, and the host
//! carries on.

mod bindings;
mod cache;
pub mod egress;
pub mod memory;
mod outgoing;
mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use bindings::{Contract, Prepared};
use egress::{Grants, Timeouts};
use session::{CallBudget, RunState};
pub use session::{LogLine, Session};

use crate::model::{ConnectorError, ConnectorInfo, SettingKind};

/// The versions of `hrsync:connector` this host implements, for messages.
pub fn supported_versions() -> String {
    Contract::ALL.iter().map(|c| c.range()).collect::<Vec<_>>().join(", ")
}
const EXPORT_PREFIX: &str = "hrsync:connector/hr-source@";
/// Epoch tick: the granularity of CPU accounting and of wall-clock timeouts.
const TICK: Duration = Duration::from_millis(10);

/// Bounds applied to every connector call and to what a run may make the
/// host hold on the guest's behalf.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory of one instance.
    pub memory_bytes: usize,
    /// Guest execution time of one call (time spent waiting on HTTP excluded).
    pub cpu_per_call: Duration,
    /// Wall-clock time of one call, HTTP included.
    pub wall_per_call: Duration,
    /// CPU time of `describe` when a component is loaded (twice that of wall
    /// time): it does no I/O, so a connector that needs longer is broken,
    /// and must not hold up the server's start.
    pub describe: Duration,
    /// Bytes of stdout/stderr, and of `host.log` lines, kept per run.
    pub log_bytes: usize,
    /// One `host.log` line is cut to this many bytes.
    pub log_line_bytes: usize,
    /// Resource handles (HTTP requests, header sets, bodies, streams,
    /// pollables…) one instance may hold at once.
    pub handles: usize,
    /// Bytes of one header set (`wasi:http` fields) a guest builds.
    pub header_bytes: usize,
    /// Bytes of one chunk of a request body; the host buffers at most two
    /// per body that is not being sent.
    pub body_chunk_bytes: usize,
    /// Outbound requests of one run in flight at once; more wait their turn.
    pub concurrent_requests: usize,
    /// Outbound HTTP timeouts.
    pub http: Timeouts,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            cpu_per_call: Duration::from_secs(30),
            wall_per_call: Duration::from_secs(120),
            describe: Duration::from_secs(5),
            log_bytes: 1 << 20,
            log_line_bytes: 1 << 10,
            handles: 1024,
            header_bytes: 16 << 10,
            body_chunk_bytes: 16 << 10,
            concurrent_requests: 4,
            http: Timeouts::default(),
        }
    }
}

impl Limits {
    /// The most host memory one run's guest-created resources can take
    /// besides what its calls return: every handle a full header set or a
    /// full body buffer, plus the run's log and output. A hostile connector
    /// cannot make the host hold more than this on top of its own linear
    /// memory (and the results of its calls, which its memory cap bounds).
    pub fn host_resource_bytes(&self) -> usize {
        let per_handle = self.header_bytes.max(2 * self.body_chunk_bytes);
        self.handles * per_handle + 2 * self.log_bytes
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
    #[error(
        "{name} targets hrsync:connector@{found}, which this hrsync does not support; supported versions: {}. Rebuild it against one of them or upgrade hrsync.",
        supported_versions()
    )]
    UnsupportedWit { name: String, found: String },
    #[error("{name} imports something hrsync does not provide: {reason}")]
    Link { name: String, reason: String },
    #[error(
        "{name} exports hr-source, but not as the contract defines it: {reason}. Rebuild it against the WIT in wit/."
    )]
    Exports { name: String, reason: String },
    #[error("{name}: `describe` failed: {cause}")]
    Describe { name: String, cause: Box<RunError> },
    #[error("{name}: `describe` is invalid: {reason}")]
    InvalidDescription { name: String, reason: String },
}

/// Why a connector call failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The connector reported an error through the contract.
    #[error("connector `{connector}`: {error}")]
    Source { connector: String, error: ConnectorError },
    #[error("connector `{connector}` crashed: {cause}. This is a bug in the connector; report it to its author.")]
    Trap { connector: String, cause: String },
    #[error(
        "connector `{connector}` overflowed its stack (endless or too deep recursion) and was stopped. This is a bug in the connector; report it to its author."
    )]
    StackOverflow { connector: String },
    #[error(
        "connector `{connector}` exited (status {code}) instead of returning from the call; connectors must return a result or an error. Report this to its author."
    )]
    Exited { connector: String, code: i32 },
    #[error(
        "connector `{connector}` ran for more than {budget:?} of CPU in one call and was stopped (an infinite loop?)"
    )]
    CpuExhausted { connector: String, budget: Duration },
    #[error("connector `{connector}` tried to use more than {} MiB of memory and was stopped", limit >> 20)]
    MemoryExhausted { connector: String, limit: usize },
    /// The guest went past what the host holds for it outside its memory.
    #[error(
        "connector `{connector}` went past the host's limit of {limit} and was stopped; a connector must drop what it no longer uses. Report this to its author."
    )]
    HostResources { connector: String, limit: String },
    #[error("connector `{connector}` did not answer within {after:?} and was stopped")]
    Timeout { connector: String, after: Duration },
    #[error("connector `{connector}` returned invalid data: {reason}")]
    InvalidOutput { connector: String, reason: String },
    /// The connector tried an origin the integration has not granted.
    #[error(
        "connector `{connector}` was denied {request}: that origin is not granted to this integration (granted: {granted}). If the connector should reach it, add the origin to the integration's outbound hosts."
    )]
    EgressDenied { connector: String, request: String, granted: String },
    /// A granted origin resolved to an address hrsync never reaches.
    #[error("connector `{connector}` was refused {request}: {reason}")]
    EgressBlocked { connector: String, request: String, reason: String },
    #[error("connector `{connector}` cannot be called again in this run after an earlier failure")]
    Poisoned { connector: String },
}

impl RunError {
    /// A short, stable name for metrics: the contract error's case, or how
    /// the sandbox stopped the connector.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Source { error, .. } => error.kind(),
            RunError::Trap { .. } => "trap",
            RunError::StackOverflow { .. } => "stack-overflow",
            RunError::Exited { .. } => "exited",
            RunError::CpuExhausted { .. } => "cpu-exhausted",
            RunError::MemoryExhausted { .. } => "memory-exhausted",
            RunError::HostResources { .. } => "host-resources",
            RunError::Timeout { .. } => "timeout",
            RunError::InvalidOutput { .. } => "invalid-output",
            RunError::EgressDenied { .. } => "egress-denied",
            RunError::EgressBlocked { .. } => "egress-blocked",
            RunError::Poisoned { .. } => "poisoned",
        }
    }

    /// The contract error, when the connector reported one.
    pub fn source_error(&self) -> Option<&ConnectorError> {
        match self {
            RunError::Source { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether the sandbox stopped the connector for exceeding a bound.
    pub fn is_budget(&self) -> bool {
        matches!(
            self,
            RunError::CpuExhausted { .. }
                | RunError::MemoryExhausted { .. }
                | RunError::HostResources { .. }
                | RunError::Timeout { .. }
                | RunError::StackOverflow { .. }
        )
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
    pub info: ConnectorInfo,
    /// The `hrsync:connector` version it was built against.
    pub wit_version: String,
    /// Where it came from (a path, or `bundled`).
    pub origin: String,
    /// What its source can push (`hr-events`, contract 0.4.0 on); `None`
    /// when it cannot: no webhooks for its integrations.
    pub events: Option<crate::model::EventsInfo>,
    /// SHA-256 of the component bytes.
    pub digest: String,
    pre: Prepared,
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
        outgoing::release_request_options(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::v0_1_0::HrConnector::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::v0_2_0::HrConnector::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::v0_3_0::HrConnector::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::v0_4_0::HrConnector::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
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
    /// provides, and describe itself sensibly within [`Limits::describe`].
    pub async fn load(&self, name: &str, bytes: &[u8]) -> Result<Connector, LoadError> {
        let digest = cache::digest(bytes);
        let component = cache::compile(&self.engine, self.cache_dir.as_deref(), &digest, bytes)
            .map_err(|reason| LoadError::InvalidComponent { name: name.into(), reason })?;
        let (wit_version, contract) = self.check_exports(name, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link { name: name.into(), reason: format!("{e:#}") })?;
        let exports = |e: wasmtime::Error| LoadError::Exports { name: name.into(), reason: format!("{e:#}") };
        let pre = contract.prepare(instance_pre).map_err(exports)?;
        let mut connector =
            Connector { info: placeholder_info(name), wit_version, origin: name.into(), digest, events: None, pre };
        // CPU runs out first, so a looping `describe` is named as such.
        let budget = CallBudget { cpu: self.limits.describe, wall: 2 * self.limits.describe };
        let describe = async {
            let mut session = self.open(&connector, Grants::none(), None, budget).await?;
            Ok::<_, RunError>((session.describe().await?, session.describe_events().await?))
        };
        let (info, events) =
            describe.await.map_err(|e| LoadError::Describe { name: name.into(), cause: Box::new(e) })?;
        validate_info(&info).map_err(|reason| LoadError::InvalidDescription { name: name.into(), reason })?;
        connector.info = info;
        connector.events = events;
        Ok(connector)
    }

    /// The contract version the component exports `hr-source` at.
    fn check_exports(&self, name: &str, component: &Component) -> Result<(String, Contract), LoadError> {
        let ty = component.component_type();
        let versions: Vec<String> = ty
            .exports(&self.engine)
            .filter_map(|(export, _)| export.strip_prefix(EXPORT_PREFIX).map(str::to_string))
            .collect();
        match versions.iter().find_map(|v| Some((v.clone(), Contract::of(v)?))) {
            Some(found) => Ok(found),
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
        let budget = CallBudget { cpu: self.limits.cpu_per_call, wall: self.limits.wall_per_call };
        self.open(connector, grants, pacer, budget).await
    }

    async fn open(
        &self,
        connector: &Connector,
        grants: Grants,
        pacer: Option<Arc<egress::Pacer>>,
        budget: CallBudget,
    ) -> Result<Session, RunError> {
        Session::start(&self.engine, connector, &self.limits, grants, pacer, budget).await
    }
}

fn placeholder_info(name: &str) -> ConnectorInfo {
    ConnectorInfo {
        id: name.into(),
        name: name.into(),
        version: String::new(),
        description: String::new(),
        settings: Vec::new(),
        capabilities: Default::default(),
        default_hosts: Vec::new(),
    }
}

/// Checks what `describe` returned; the host relies on these facts.
fn validate_info(info: &ConnectorInfo) -> Result<(), String> {
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
        let choice = matches!(s.kind, SettingKind::Choice | SettingKind::MultiChoice);
        if choice && s.choices.is_empty() {
            return Err(format!("setting `{}` is a choice without choices", s.key));
        }
    }
    Grants::parse(&info.default_hosts).map_err(|e| format!("default host {e}"))?;
    Ok(())
}
