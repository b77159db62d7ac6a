//! Prometheus metrics at `/metrics`: HTTP requests counted as they are
//! served, and run totals (by kind and outcome, time spent, people changed)
//! read from the run history at each scrape, so they survive restarts.
//! A multi-tenant deployment's figures are every tenant's together (per
//! tenant labels would grow with the tenants); its tenants are counted.

use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{ApiError, AppState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The registry and the metrics hrsync exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    http: Family<HttpLabels, Counter>,
    runs: Family<RunLabels, Gauge>,
    run_seconds: Family<KindLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    people_changed: Family<KindLabels, Gauge>,
    connector_errors: Family<KindLabels, Gauge>,
    webhook_deliveries: Family<OutcomeLabels, Gauge>,
    event_lag: Family<KindLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    tenants: Family<StateLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hrsync");
        let http = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served, by method and status", http.clone());
        let runs = Family::<RunLabels, Gauge>::default();
        registry.register("runs", "Runs recorded, by kind and outcome", runs.clone());
        let run_seconds = Family::<KindLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register("run_seconds", "Wall time of finished runs, by kind", run_seconds.clone());
        let people_changed = Family::<KindLabels, Gauge>::default();
        registry.register(
            "people_changed",
            "People created, updated, deactivated, reactivated or linked, by run kind",
            people_changed.clone(),
        );
        let connector_errors = Family::<KindLabels, Gauge>::default();
        registry.register(
            "connector_errors",
            "Connector errors since start, by kind (contract error case, or how the sandbox stopped it)",
            connector_errors.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabels, Gauge>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries since start, by how they were answered (accepted, unknown-hook, wrong-token, too-large)",
            webhook_deliveries.clone(),
        );
        let event_lag = Family::<KindLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "event_lag_seconds",
            "Seconds from a delivery's arrival to the end of its run since start: count, sum and max (kind)",
            event_lag.clone(),
        );
        let tenants = Family::<StateLabels, Gauge>::default();
        registry.register(
            "tenants",
            "Tenants of a multi-tenant (PostgreSQL) deployment, enabled and disabled",
            tenants.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            http,
            runs,
            run_seconds,
            people_changed,
            connector_errors,
            webhook_deliveries,
            event_lag,
            tenants,
        }
    }
}

/// Counts every response by method and status.
pub async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let response = next.run(request).await;
    state.metrics.http.get_or_create(&HttpLabels { method, status: response.status().as_u16() }).inc();
    response
}

/// `GET /metrics` in the Prometheus text format.
pub async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stats = state.tenancy.run_stats()?;
    let m = &state.metrics;
    for s in &stats {
        m.runs
            .get_or_create(&RunLabels { kind: serde_plain(&s.kind), state: serde_plain(&s.state) })
            .set(s.runs as i64);
    }
    for kind in ["preview", "import", "revert"] {
        let of_kind = stats.iter().filter(|s| serde_plain(&s.kind) == kind);
        let seconds: f64 = of_kind.clone().map(|s| s.seconds).sum();
        let people: u64 =
            of_kind.filter(|s| s.state == crate::directory::RunState::Succeeded).map(|s| s.people_changed).sum();
        m.run_seconds.get_or_create(&KindLabels { kind: kind.into() }).set(seconds);
        m.people_changed.get_or_create(&KindLabels { kind: kind.into() }).set(people as i64);
    }
    for (kind, n) in state.engine.connector_errors() {
        m.connector_errors.get_or_create(&KindLabels { kind: kind.into() }).set(n as i64);
    }
    if let Some((enabled, disabled)) = state.tenancy.tenant_counts()? {
        m.tenants.get_or_create(&StateLabels { state: "enabled".into() }).set(enabled as i64);
        m.tenants.get_or_create(&StateLabels { state: "disabled".into() }).set(disabled as i64);
    }
    let hooks = state.webhooks.counters();
    for (outcome, n) in &hooks.deliveries {
        m.webhook_deliveries.get_or_create(&OutcomeLabels { outcome: outcome.to_string() }).set(*n as i64);
    }
    for (kind, value) in [("count", hooks.lag_count as f64), ("sum", hooks.lag_sum), ("max", hooks.lag_max)] {
        m.event_lag.get_or_create(&KindLabels { kind: kind.into() }).set(value);
    }
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &m.registry.lock().expect("registry"))
        .map_err(ApiError::internal)?;
    Ok(([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response())
}

fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}
