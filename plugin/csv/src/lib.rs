//! The CSV export connector: people from a CSV file that an HR system or a
//! spreadsheet publishes at an HTTPS address (optionally behind basic auth
//! or a bearer token), with configurable column mapping.
//!
//! It is thin on purpose: the bindings, the diff and the setting, date and
//! error helpers come from `hrsync-connector-kit`; this crate only reads
//! the file ([`source`]) and maps its rows ([`mapping`]).

pub mod mapping;
pub mod settings;
pub mod source;

use hrsync_connector_kit::Connector;
use hrsync_connector_kit::types::{
    Capabilities, CheckReport, ConnectorError, ConnectorInfo, DiffOptions, DirectoryUser, Entry, FetchRequest, Mapped,
    Page, Person, PersonStatus, Plan, RawRecord,
};

#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
struct Csv;

impl Connector for Csv {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            id: "csv-export".into(),
            name: "CSV export".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "People from a CSV file published at an HTTPS address, with column mapping.".into(),
            settings: settings::specs(),
            capabilities: Capabilities::SUPERVISORS | Capabilities::TERMINATION_DATES,
            // The export's address is the admin's: it is granted per integration.
            default_hosts: Vec::new(),
        }
    }

    fn check(settings: Vec<Entry>) -> Result<CheckReport, ConnectorError> {
        source::check(&settings::Settings::parse(&settings)?)
    }

    fn fetch_page(settings: Vec<Entry>, _: FetchRequest) -> Result<Page, ConnectorError> {
        // One file, one page: the export has no paging of its own.
        source::fetch(&settings::Settings::parse(&settings)?)
    }

    fn map_fields(settings: Vec<Entry>, records: Vec<RawRecord>) -> Result<Mapped, ConnectorError> {
        Ok(mapping::map_records(&settings::Settings::parse(&settings)?, &records))
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
        Ok(hrsync_connector_kit::diff::diff(&settings.statuses, &current, &incoming, &options))
    }
}

// A published file cannot announce its changes: no webhooks.
hrsync_connector_kit::without_events!(Csv);

#[cfg(target_family = "wasm")]
hrsync_connector_kit::export_connector!(Csv);
