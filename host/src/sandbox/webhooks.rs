//! Personio's webhooks, as the sandbox delivers them: `/v2/webhooks` to
//! register, list and delete subscriptions (`auth_type` `TOKEN`: the token
//! is sent verbatim in `Authorization`), and a delivery worker that POSTs
//! every hire, edit and removal made through the sandbox to each enabled
//! subscription — "dataless" events naming the person — retrying on a
//! timeout (3 s) or a 5xx other than 501 as Personio does, at most 6
//! attempts. Tests inject delivery faults: duplicates, out of order,
//! delayed, lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Sandbox;

/// Personio answers within this or the delivery counts as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts per delivery, the first included.
pub const ATTEMPTS: u32 = 6;

/// The events a subscription may ask for.
pub const EVENTS: [&str; 6] = [
    "person.created",
    "person.updated",
    "person.deleted",
    "employment.created",
    "employment.updated",
    "employment.deleted",
];

/// A registered subscription.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub description: String,
    /// `ENABLED` or `DISABLED`.
    pub status: String,
    /// `NONE` or `TOKEN`.
    pub auth_type: String,
    #[serde(skip)]
    pub token: Option<String>,
    pub enabled_events: Vec<String>,
    pub created_at: String,
}

/// What goes wrong with the next delivery (tests and `/_sandbox/webhook-faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DeliveryFault {
    /// Delivered twice.
    Duplicate,
    /// Held back and delivered after the delivery that follows it.
    OutOfOrder,
    /// Delivered this much later.
    Delay { millis: u64 },
    /// Never delivered.
    Lost,
}

/// One event on its way to one subscription.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub url: String,
    pub token: Option<String>,
    pub body: Value,
}

/// What was delivered, for tests and `/_sandbox/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub struct Delivered {
    pub event: String,
    pub person: String,
    pub attempts: u32,
    /// The last HTTP status, or `None` after a timeout or connection error.
    pub status: Option<u16>,
    pub delivered: bool,
}

/// The sandbox's webhook state.
#[derive(Default)]
pub(super) struct Hooks {
    pub webhooks: Vec<Webhook>,
    pub queue: VecDeque<Delivery>,
    pub faults: VecDeque<DeliveryFault>,
    pub log: Vec<Delivered>,
    /// Wakes the delivery worker.
    pub wake: Arc<tokio::sync::Notify>,
    /// First retry after this; doubles per attempt (Personio: seconds to hours).
    pub backoff: Option<Duration>,
}

impl Hooks {
    /// Queues `event` about `person` for every enabled subscription to it.
    pub fn emit(&mut self, event: &str, person: u64) {
        let payload = if event.starts_with("employment.") {
            json!({"id": super::v2::employment_id(person), "person": {"id": person.to_string()}})
        } else {
            json!({"id": person.to_string()})
        };
        for hook in
            self.webhooks.iter().filter(|h| h.status == "ENABLED" && h.enabled_events.iter().any(|e| e == event))
        {
            let body = json!({
                "company_id": 7033,
                "event_name": event,
                "occurred_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "payload": payload,
                "meta": {"webhook_id": hook.id, "delivery_id": format!("{:032x}", rand::random::<u128>())},
            });
            let token = (hook.auth_type == "TOKEN").then(|| hook.token.clone()).flatten();
            self.queue.push_back(Delivery { url: hook.url.clone(), token, body });
        }
        self.wake.notify_one();
    }
}

pub(super) fn routes() -> Router<Sandbox> {
    Router::new().route("/v2/webhooks", get(list).post(create)).route("/v2/webhooks/{id}", delete(remove))
}

#[derive(Deserialize)]
struct NewWebhook {
    url: String,
    #[serde(default)]
    description: String,
    status: Option<String>,
    auth_type: Option<String>,
    token: Option<String>,
    #[serde(default)]
    enabled_events: Vec<String>,
}

fn invalid(detail: &str) -> Response {
    super::v2::problem(StatusCode::BAD_REQUEST, "Bad request", detail, "common.bad_request")
}

/// Only plain HTTP to this machine: the sandbox is a local stand-in.
fn deliverable(url: &str) -> bool {
    url::Url::parse(url)
        .is_ok_and(|u| u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
}

async fn create(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let mut s = sandbox.lock();
    if let Err(r) = super::v2::authorize(&mut s, &headers) {
        return *r;
    }
    let Ok(new) = serde_json::from_slice::<NewWebhook>(&body) else {
        return invalid("The request body must be a JSON object with at least `url`.");
    };
    if !deliverable(&new.url) {
        return invalid(
            "The sandbox delivers to http:// addresses on this machine only (Personio itself requires https).",
        );
    }
    let auth_type = new.auth_type.unwrap_or_else(|| "TOKEN".into()).to_ascii_uppercase();
    if !matches!(auth_type.as_str(), "NONE" | "TOKEN") || (auth_type == "TOKEN" && new.token.is_none()) {
        return invalid("`auth_type` must be NONE, or TOKEN with a `token`.");
    }
    if let Some(unknown) = new.enabled_events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return invalid(&format!("Unknown event `{unknown}`."));
    }
    let hook = Webhook {
        id: format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            rand::random::<u32>(),
            rand::random::<u16>(),
            rand::random::<u64>() >> 16
        ),
        url: new.url,
        description: new.description,
        status: new.status.unwrap_or_else(|| "DISABLED".into()).to_ascii_uppercase(),
        auth_type,
        token: new.token,
        enabled_events: if new.enabled_events.is_empty() {
            EVENTS.map(String::from).to_vec()
        } else {
            new.enabled_events
        },
        created_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    s.hooks.webhooks.push(hook.clone());
    (StatusCode::CREATED, axum::Json(hook)).into_response()
}

async fn list(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap) -> Response {
    let mut s = sandbox.lock();
    if let Err(r) = super::v2::authorize(&mut s, &headers) {
        return *r;
    }
    axum::Json(json!({"_data": s.hooks.webhooks, "_meta": {"links": {}}})).into_response()
}

async fn remove(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut s = sandbox.lock();
    if let Err(r) = super::v2::authorize(&mut s, &headers) {
        return *r;
    }
    let before = s.hooks.webhooks.len();
    s.hooks.webhooks.retain(|h| h.id != id);
    if s.hooks.webhooks.len() == before {
        return super::v2::problem(
            StatusCode::NOT_FOUND,
            "Resource not found",
            "There is no resource for the specified id.",
            "common.resource_not_found",
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Delivers queued events until `stop` fires.
pub(super) async fn deliver_forever(sandbox: Sandbox, mut stop: tokio::sync::watch::Receiver<bool>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<axum::body::Bytes>>();
    let wake = sandbox.lock().hooks.wake.clone();
    let mut held: Option<Delivery> = None;
    loop {
        let next = {
            let mut s = sandbox.lock();
            s.hooks.queue.pop_front().map(|d| (d, s.hooks.faults.pop_front()))
        };
        let Some((delivery, fault)) = next else {
            // A held-back delivery waits for the next one, or two seconds.
            let patience = if held.is_some() { Duration::from_secs(2) } else { Duration::MAX };
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(patience) => {
                    if let Some(late) = held.take() {
                        tokio::spawn(send(sandbox.clone(), client.clone(), late, Duration::ZERO));
                    }
                }
                _ = stop.changed() => return,
            }
            continue;
        };
        match fault {
            Some(DeliveryFault::Lost) => sandbox.lock().hooks.log.push(logged(&delivery, 0, None, false)),
            Some(DeliveryFault::Duplicate) => {
                tokio::spawn(send(sandbox.clone(), client.clone(), delivery.clone(), Duration::ZERO));
                tokio::spawn(send(sandbox.clone(), client.clone(), delivery, Duration::from_millis(20)));
            }
            Some(DeliveryFault::OutOfOrder) => held = Some(delivery),
            Some(DeliveryFault::Delay { millis }) => {
                tokio::spawn(send(sandbox.clone(), client.clone(), delivery, Duration::from_millis(millis)));
            }
            None => {
                // In order: one delivery at a time, unless a fault says otherwise.
                send(sandbox.clone(), client.clone(), delivery, Duration::ZERO).await;
                if let Some(late) = held.take() {
                    send(sandbox.clone(), client.clone(), late, Duration::ZERO).await;
                }
            }
        }
    }
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<axum::body::Bytes>,
>;

fn logged(d: &Delivery, attempts: u32, status: Option<u16>, delivered: bool) -> Delivered {
    Delivered {
        event: d.body["event_name"].as_str().unwrap_or_default().to_string(),
        person: d
            .body
            .pointer("/payload/person/id")
            .or(d.body.pointer("/payload/id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        attempts,
        status,
        delivered,
    }
}

/// One delivery with Personio's retries: a timeout or a 5xx (not 501) is
/// tried again after a growing wait; anything else ends it.
async fn send(sandbox: Sandbox, client: HttpClient, delivery: Delivery, after: Duration) {
    tokio::time::sleep(after).await;
    let backoff = sandbox.lock().hooks.backoff.unwrap_or(Duration::from_secs(1));
    let body = delivery.body.to_string();
    let mut status = None;
    for attempt in 1..=ATTEMPTS {
        let mut request = http::Request::post(&delivery.url).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = &delivery.token {
            request = request.header(header::AUTHORIZATION, token);
        }
        let request =
            request.body(http_body_util::Full::new(axum::body::Bytes::from(body.clone()))).expect("a valid request");
        status = match tokio::time::timeout(DELIVERY_TIMEOUT, client.request(request)).await {
            Ok(Ok(response)) => Some(response.status().as_u16()),
            Ok(Err(_)) | Err(_) => None,
        };
        let again = match status {
            None => true,
            Some(s) => s >= 500 && s != 501,
        };
        if !again || attempt == ATTEMPTS {
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            sandbox.lock().hooks.log.push(logged(&delivery, attempt, status, delivered));
            return;
        }
        tokio::time::sleep(backoff * 2u32.pow(attempt - 1)).await;
    }
    sandbox.lock().hooks.log.push(logged(&delivery, ATTEMPTS, status, false));
}
