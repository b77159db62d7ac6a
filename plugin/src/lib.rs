//! The Personio connector for hrsync.
//!
//! Compiled to a `wasm32-wasip2` component that exports the `hr-source`
//! and `hr-events` interfaces of `wit/0.4.0/hr-source.wit`. The host runs it sandboxed; everything
//! Personio-specific lives here:
//!
//! - [`settings`]: the admin's settings, parsed and validated once per call;
//! - [`api`]: the v1 REST client (auth, token rotation, paging, errors);
//! - [`v2`]: the v2 client (OAuth2 tokens, persons and employments, org
//!   units), giving the same records as v1; `api-version` picks one;
//! - [`attributes`]: tolerant parsing of Personio's attribute shapes;
//! - [`events`]: what a Personio webhook delivery is about;
//! - [`mapping`]: raw employee → canonical person.
//!
//! The bindings and the canonical diff come from `hrsync-connector-kit`.
//! Only [`api`] performs I/O; the other modules are pure and unit-tested
//! natively with `cargo test -p hrsync-personio`.

pub mod api;
pub mod attributes;
pub mod events;
pub mod mapping;
pub mod settings;
pub mod v2;

pub use hrsync_connector_kit::{diff, exports, hrsync};

use exports::hrsync::connector::hr_source::Guest;
use hrsync::connector::types::{
    Capabilities, CheckReport, ConnectorError, ConnectorInfo, DiffOptions, DirectoryUser, Entry, FetchRequest, Mapped,
    Page, Person, PersonStatus, Plan, RawRecord,
};

/// The exported component.
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
struct Personio;

impl Guest for Personio {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            id: "personio".into(),
            name: "Personio".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Employees and reporting lines from Personio (API v1 or v2).".into(),
            settings: settings::specs(),
            capabilities: Capabilities::SUPERVISORS
                | Capabilities::TERMINATION_DATES
                | Capabilities::INCREMENTAL_FETCH
                | Capabilities::CUSTOM_ATTRIBUTES,
            default_hosts: vec![settings::DEFAULT_BASE_URL.into()],
        }
    }

    fn check(settings: Vec<Entry>) -> Result<CheckReport, ConnectorError> {
        let settings = settings::Settings::parse(&settings)?;
        api::check(&settings)
    }

    fn fetch_page(settings: Vec<Entry>, request: FetchRequest) -> Result<Page, ConnectorError> {
        let settings = settings::Settings::parse(&settings)?;
        match v2::resolve(&settings)? {
            v2::Api::V1 => api::fetch_page(&settings, &request),
            v2::Api::V2 => v2::fetch_page(&settings, &request),
        }
    }

    fn map_fields(settings: Vec<Entry>, records: Vec<RawRecord>) -> Result<Mapped, ConnectorError> {
        let settings = settings::Settings::parse(&settings)?;
        Ok(mapping::map_records(&settings, &records))
    }

    fn canonical_creates(settings: Vec<Entry>) -> Result<Option<Vec<PersonStatus>>, ConnectorError> {
        // `diff` below is the host's canonical diff: the host may compute it.
        Ok(Some(settings::Settings::parse(&settings)?.statuses))
    }

    fn diff(
        settings: Vec<Entry>,
        current: Vec<DirectoryUser>,
        incoming: Vec<Person>,
        options: DiffOptions,
    ) -> Result<Plan, ConnectorError> {
        let settings = settings::Settings::parse(&settings)?;
        Ok(diff::diff(&settings.statuses, &current, &incoming, &options))
    }
}

/// Personio's webhooks (API v2): subscribe, read deliveries, fetch the people they name.
impl hrsync_connector_kit::Events for Personio {
    fn describe_events() -> Option<hrsync_connector_kit::events::EventsInfo> {
        Some(hrsync_connector_kit::events::EventsInfo {
            description: "Personio webhooks (API v2): person and employment changes arrive within seconds".into(),
            events: events::EVENTS.iter().map(|e| e.to_string()).collect(),
        })
    }

    fn subscribe(
        settings: Vec<Entry>,
        callback_url: String,
        token: String,
    ) -> Result<hrsync_connector_kit::events::Subscription, ConnectorError> {
        let settings = settings::Settings::parse(&settings)?;
        let (id, description) = v2::subscribe(&settings, &callback_url, &token, &events::EVENTS)?;
        Ok(hrsync_connector_kit::events::Subscription { id, description })
    }

    fn unsubscribe(settings: Vec<Entry>, id: String) -> Result<(), ConnectorError> {
        v2::unsubscribe(&settings::Settings::parse(&settings)?, &id)
    }

    fn handle_event(
        _settings: Vec<Entry>,
        _headers: Vec<Entry>,
        body: String,
    ) -> Result<hrsync_connector_kit::events::Event, ConnectorError> {
        events::handle(&body)
    }

    fn fetch_people(settings: Vec<Entry>, ids: Vec<String>) -> Result<Vec<RawRecord>, ConnectorError> {
        let settings = settings::Settings::parse(&settings)?;
        if ids.len() > 100 {
            return Err(ConnectorError::InvalidSettings(format!("{} ids in one call; at most 100", ids.len())));
        }
        match v2::resolve(&settings)? {
            v2::Api::V2 => v2::fetch_people(&settings, &ids),
            v2::Api::V1 => api::fetch_people(&settings, &ids),
        }
    }
}

// Natively (unit tests) the component exports would be invalid linker symbols.
#[cfg(target_family = "wasm")]
hrsync_connector_kit::export_connector!(Personio);

/// Writes a line to the host's run log.
pub(crate) use hrsync_connector_kit::log;
