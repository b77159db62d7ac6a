//! One run of one connector: a fresh store and instance, the calls into it,
//! and how each way a call can end becomes a [`RunError`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use chrono::NaiveDate;

use super::bindings::{Bindings, Returned};
use super::egress::{self, EgressHooks, EgressLog, Grants};
use super::{Connector, Limits, RunError, TICK};
use crate::model::{
    CheckReport, ConnectorError, ConnectorInfo, DiffOptions, DirectoryUser, Entry, EventsInfo, FetchRequest, LogLevel,
    Mapped, Page, Person, PersonStatus, Plan, RawRecord, SourceEvent, SourceId, Subscription,
};

/// The CPU and wall time one call may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct CallBudget {
    pub cpu: Duration,
    pub wall: Duration,
}

/// One run of one connector: a fresh store and instance.
pub struct Session {
    connector: String,
    store: Store<RunState>,
    instance: Option<Bindings>,
    budget: CallBudget,
    memory_limit: usize,
    handle_limit: usize,
    header_limit: usize,
    output: MemoryOutputPipe,
    egress_log: Arc<Mutex<EgressLog>>,
    /// Denials and refusals logged before the current call started.
    denied_before: usize,
    blocked_before: usize,
    /// The granted origins, for error messages.
    granted: String,
    poisoned: bool,
}

/// A line the connector logged through the `host` interface, cut to
/// [`Limits::log_line_bytes`] with control characters escaped.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

macro_rules! guest_call {
    ($self:ident, $method:ident $(, $arg:expr)*) => {{
        $self.ready()?;
        let log = $self.egress();
        ($self.denied_before, $self.blocked_before) = (log.denied.len(), log.blocked.len());
        let instance = $self.instance.as_ref().expect("instantiated");
        let call = instance.$method(&mut $self.store $(, $arg)*);
        let result = tokio::time::timeout($self.budget.wall, call).await;
        $self.settle(result)
    }};
}

impl Session {
    /// Instantiates `connector` in a new store with the sandbox's bounds.
    pub(super) async fn start(
        engine: &Engine,
        connector: &Connector,
        limits: &Limits,
        grants: Grants,
        pacer: Option<Arc<egress::Pacer>>,
        budget: CallBudget,
    ) -> Result<Session, RunError> {
        let id = connector.info.id.clone();
        let output = MemoryOutputPipe::new(limits.log_bytes);
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .max_random_size(64 << 10)
            .build();
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits.header_bytes);
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.handles);
        let egress_log = Arc::new(Mutex::new(EgressLog::default()));
        let granted = match grants.origins() {
            [] => "none".to_string(),
            origins => origins.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", "),
        };
        let state = RunState {
            wasi,
            http,
            table,
            egress: EgressHooks::new(id.clone(), grants, limits, egress_log.clone(), pacer),
            memory: MemoryCap { limit: limits.memory_bytes, hit: false },
            log: GuestLog::new(id.clone(), limits.log_bytes, limits.log_line_bytes),
            ticks: 0,
            tick_budget: ticks(budget.cpu),
            cpu_exhausted: false,
            progress: None,
            today: chrono::Utc::now().date_naive(),
        };
        let mut store = Store::new(engine, state);
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
            budget,
            memory_limit: limits.memory_bytes,
            handle_limit: limits.handles,
            header_limit: limits.header_bytes,
            output,
            egress_log,
            denied_before: 0,
            blocked_before: 0,
            granted,
            poisoned: false,
        };
        let store = &mut session.store;
        let instantiate = connector.pre.instantiate(store);
        let result = tokio::time::timeout(budget.wall, instantiate).await;
        let instance = session.settle(result)?;
        session.instance = Some(instance);
        Ok(session)
    }

    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// Lines logged through `host.log` so far (within the log budget).
    pub fn logs(&self) -> &[LogLine] {
        &self.store.data().log.lines
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

    pub async fn describe(&mut self) -> Result<ConnectorInfo, RunError> {
        guest_call!(self, describe)
    }

    pub async fn check(&mut self, settings: &[Entry]) -> Result<CheckReport, RunError> {
        let r = guest_call!(self, check, settings)?;
        self.returned(r)
    }

    pub async fn fetch_page(&mut self, settings: &[Entry], request: &FetchRequest) -> Result<Page, RunError> {
        let r = guest_call!(self, fetch_page, settings, request)?;
        self.returned(r)
    }

    pub async fn map_fields(&mut self, settings: &[Entry], records: &[RawRecord]) -> Result<Mapped, RunError> {
        let r = guest_call!(self, map_fields, settings, records)?;
        self.returned(r)
    }

    pub async fn diff(
        &mut self,
        settings: &[Entry],
        current: &[DirectoryUser],
        incoming: &[Person],
        options: DiffOptions,
    ) -> Result<Plan, RunError> {
        // A connector whose diff is the canonical one: the host computes it
        // here, without copying the directory into the sandbox and back.
        if let Some(create) = self.canonical_creates(settings).await? {
            let today = self.store.data().today();
            return Ok(crate::rules::canonical_diff(current, incoming, &options, &create, today));
        }
        self.diff_in_guest(settings, current, incoming, options).await
    }

    /// The connector's own `diff`, even where it declares it canonical (the
    /// conformance runner compares the two).
    pub async fn diff_in_guest(
        &mut self,
        settings: &[Entry],
        current: &[DirectoryUser],
        incoming: &[Person],
        options: DiffOptions,
    ) -> Result<Plan, RunError> {
        let r = guest_call!(self, diff, settings, current, incoming, options)?;
        self.returned(r)
    }

    /// `canonical-creates`: the statuses the canonical diff creates people
    /// for, when the connector's diff is that diff.
    pub async fn canonical_creates(&mut self, settings: &[Entry]) -> Result<Option<Vec<PersonStatus>>, RunError> {
        let r = guest_call!(self, canonical_creates, settings)?;
        self.returned(r)
    }

    /// What the source can push (contract 0.4.0 on); `None` when it cannot.
    pub async fn describe_events(&mut self) -> Result<Option<EventsInfo>, RunError> {
        guest_call!(self, describe_events)
    }

    /// Registers `callback_url` with the source, which sends `token` with each delivery.
    pub async fn subscribe(
        &mut self,
        settings: &[Entry],
        callback_url: &str,
        token: &str,
    ) -> Result<Subscription, RunError> {
        let r = guest_call!(self, subscribe, settings, callback_url, token)?;
        self.returned(r)
    }

    pub async fn unsubscribe(&mut self, settings: &[Entry], id: &str) -> Result<(), RunError> {
        let r = guest_call!(self, unsubscribe, settings, id)?;
        self.returned(r)
    }

    /// Who one delivery is about; `headers` with lower-case names.
    pub async fn handle_event(
        &mut self,
        settings: &[Entry],
        headers: &[Entry],
        body: &str,
    ) -> Result<SourceEvent, RunError> {
        let r = guest_call!(self, handle_event, settings, headers, body)?;
        self.returned(r)
    }

    /// Exactly these people, as records `map-fields` reads.
    pub async fn fetch_people(&mut self, settings: &[Entry], ids: &[SourceId]) -> Result<Vec<RawRecord>, RunError> {
        let r = guest_call!(self, fetch_people, settings, ids)?;
        self.returned(r)
    }

    /// The day `host.canonical-diff` takes as today (the real one by default).
    pub fn set_today(&mut self, today: NaiveDate) {
        self.store.data_mut().today = today;
    }

    /// A call's value; its contract error, or output the model cannot hold,
    /// as a [`RunError`].
    fn returned<T>(&self, returned: Returned<T>) -> Result<T, RunError> {
        match returned {
            Ok(result) => self.source(result),
            Err(reason) => Err(RunError::InvalidOutput { connector: self.connector.clone(), reason }),
        }
    }

    /// Maps a contract error. A failure after the egress point denied a
    /// request is reported as that denial: the host knows the cause for sure,
    /// whatever the guest's HTTP client made of it.
    fn source<T>(&self, result: Result<T, ConnectorError>) -> Result<T, RunError> {
        result.map_err(|error| {
            let egress = self.egress();
            let connector = self.connector.clone();
            if let Some(request) = egress.denied.get(self.denied_before) {
                return RunError::EgressDenied { connector, request: request.clone(), granted: self.granted.clone() };
            }
            if let Some((request, reason)) = egress.blocked.get(self.blocked_before) {
                return RunError::EgressBlocked { connector, request: request.clone(), reason: reason.clone() };
            }
            RunError::Source { connector, error }
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
    /// A failed instance is never called again.
    fn settle<T>(&mut self, result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>) -> Result<T, RunError> {
        let connector = self.connector.clone();
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e,
            Err(_) => {
                self.poisoned = true;
                return Err(RunError::Timeout { connector, after: self.budget.wall });
            }
        };
        self.poisoned = true;
        let state = self.store.data();
        Err(if state.memory.hit {
            RunError::MemoryExhausted { connector, limit: self.memory_limit }
        } else if state.cpu_exhausted {
            RunError::CpuExhausted { connector, budget: self.budget.cpu }
        } else if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            RunError::Exited { connector, code: exit.0 }
        } else if is_stack_overflow(&error) {
            RunError::StackOverflow { connector }
        } else if let Some(limit) = self.host_limit(&error) {
            RunError::HostResources { connector, limit }
        } else {
            RunError::Trap { connector, cause: self.trap_cause(&error) }
        })
    }

    /// Which host-side bound a failed call ran into, if any.
    fn host_limit(&self, error: &wasmtime::Error) -> Option<String> {
        error.chain().find_map(|e| {
            if e.downcast_ref::<wasmtime::component::ResourceTableError>().is_some() {
                Some(format!("{} resource handles (requests, header sets, bodies, streams) at once", self.handle_limit))
            } else if let Some(wasmtime_wasi_http::FieldMapError::TotalSizeTooBig) = e.downcast_ref() {
                Some(format!("{} KiB per header set", self.header_limit >> 10))
            } else {
                None
            }
        })
    }

    /// The trap's own message (no wasm backtrace), with the panic message a
    /// Rust guest printed before trapping.
    fn trap_cause(&self, error: &wasmtime::Error) -> String {
        let mut cause = match error.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => format!("trap: {trap}"),
            // The chain, less wasmtime's backtrace context (frame addresses
            // are for the connector's author, not the admin).
            None => error
                .chain()
                .map(|e| e.to_string())
                .filter(|e| !e.starts_with("error while executing at wasm backtrace"))
                .collect::<Vec<_>>()
                .join(": "),
        };
        let output = self.output();
        let mut lines = output.lines().skip_while(|l| !l.contains("panicked at"));
        if let Some(location) = lines.next() {
            let message = lines.next().unwrap_or_default();
            cause.push_str(&format!(" ({} {message})", location.trim_end_matches(':')));
        }
        cause
    }
}

fn ticks(cpu: Duration) -> u64 {
    (cpu.as_millis() / TICK.as_millis()).max(1) as u64
}

/// wasmtime's own stack guard, or — since a Rust guest keeps its stack in
/// linear memory, below its data — an out-of-bounds access at the bottom of
/// a backtrace that is one function calling itself over and over.
fn is_stack_overflow(error: &wasmtime::Error) -> bool {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => return true,
        Some(wasmtime::Trap::MemoryOutOfBounds) => {}
        _ => return false,
    }
    let Some(trace) = error.downcast_ref::<wasmtime::WasmBacktrace>() else { return false };
    let frames = trace.frames();
    let mut counts = std::collections::HashMap::new();
    for f in frames {
        *counts.entry((f.module().name().map(str::to_string), f.func_index())).or_insert(0usize) += 1;
    }
    // wasmtime keeps the innermost 20 frames; a recursion fills them.
    frames.len() >= 16 && counts.values().any(|&n| n * 2 >= frames.len())
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

/// A run's `host.log`: every line cut and escaped, the whole bounded.
struct GuestLog {
    connector: String,
    lines: Vec<LogLine>,
    /// Bytes left for this run; lines beyond it are dropped.
    budget: usize,
    line_bytes: usize,
    dropped: u64,
}

impl GuestLog {
    fn new(connector: String, budget: usize, line_bytes: usize) -> Self {
        GuestLog { connector, lines: Vec::new(), budget, line_bytes, dropped: 0 }
    }

    /// Keeps and emits one line, unless the run's log budget is spent.
    fn write(&mut self, level: LogLevel, message: &str) {
        let message = one_line(message, self.line_bytes);
        if message.len() > self.budget {
            self.dropped += 1;
            if self.dropped == 1 {
                tracing::warn!(connector = %self.connector, "the connector logged more than its budget for this run; further lines are dropped");
            }
            return;
        }
        self.budget -= message.len();
        let connector = self.connector.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(connector, "{message}"),
            LogLevel::Debug => tracing::debug!(connector, "{message}"),
            LogLevel::Info => tracing::info!(connector, "{message}"),
            LogLevel::Warn => tracing::warn!(connector, "{message}"),
            LogLevel::Error => tracing::error!(connector, "{message}"),
        }
        self.lines.push(LogLine { level, message });
    }
}

/// A guest's text made safe for one line of the host's log: control
/// characters (newlines, escape sequences) escaped, so a connector cannot
/// forge log lines or colours; at most `max` bytes, then a note of how much
/// was cut.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 16);
    for (i, c) in text.char_indices() {
        let piece = match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') => {
                c.escape_unicode().to_string()
            }
            c => c.to_string(),
        };
        if out.len() + piece.len() > max {
            out.push_str(&format!("… ({} more bytes)", text.len() - i));
            return out;
        }
        out.push_str(&piece);
    }
    out
}

/// The store data of one run.
pub(super) struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    egress: EgressHooks,
    memory: MemoryCap,
    log: GuestLog,
    ticks: u64,
    tick_budget: u64,
    cpu_exhausted: bool,
    /// The last `host.progress` (contract 0.2.0 and later).
    progress: Option<(u64, Option<u64>)>,
    /// Today for `host.canonical-diff` (contract 0.3.0 and later).
    today: NaiveDate,
}

/// What the `host` interface does, for every contract version's bindings.
impl RunState {
    pub(super) fn log(&mut self, level: LogLevel, message: &str) {
        self.log.write(level, message);
    }

    pub(super) fn progress(&mut self, done: u64, total: Option<u64>) {
        tracing::debug!(connector = %self.log.connector, done, ?total, "progress");
        self.progress = Some((done, total));
    }

    pub(super) fn today(&self) -> NaiveDate {
        self.today
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_stays_one_line_and_bounded() {
        assert_eq!(one_line("page 3 of 7", 100), "page 3 of 7");
        let forged = "ok\n2026-12-02T10:00:00Z  INFO hrsync: admin password reset\x1b[31m";
        let line = one_line(forged, 1000);
        assert!(!line.contains('\n') && !line.contains('\x1b'), "{line}");
        assert!(line.starts_with("ok\\n2026") && line.ends_with("\\u{1b}[31m"), "{line}");
        let long = "é".repeat(1000);
        let cut = one_line(&long, 100);
        assert!(cut.len() < 130 && cut.ends_with("more bytes)"), "{cut}");
        assert!(cut.starts_with("éé"), "cut at a character boundary");
    }

    #[test]
    fn the_log_budget_drops_lines_beyond_it() {
        let mut log = GuestLog::new("x".into(), 100, 40);
        for _ in 0..10 {
            log.write(LogLevel::Info, &"y".repeat(1000));
        }
        let kept: usize = log.lines.iter().map(|l| l.message.len()).sum();
        assert!(kept <= 100 && !log.lines.is_empty(), "{kept}");
        assert!(log.dropped > 0);
    }
}
