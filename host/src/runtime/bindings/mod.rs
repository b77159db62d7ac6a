//! The connector contract's versions, one module each (folders
//! `wit/<version>/`, frozen once released), behind one [`Bindings`] enum
//! that speaks the host's [`model`](crate::model).
//!
//! Every module converts its generated types to and from the model, so
//! nothing outside `runtime` names a generated type. Versions 0.1.0 to 0.4.0
//! share one set of types (later ones added functions and interfaces, never
//! changed a type), so their modules map `types` onto [`v0_1_0`]'s with
//! `with` and the conversions are written once; 0.4.0's `hr-events` brings
//! types of its own, converted in [`v0_4_0`]. A version that changes a type gets its own
//! generated types and conversions in its module; the model grows only when
//! the host needs what the new type carries.

pub mod v0_1_0;
pub mod v0_2_0;
pub mod v0_3_0;
pub mod v0_4_0;

use std::fmt;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::session::RunState;
use crate::model::{
    CheckReport, ConnectorError, ConnectorInfo, DiffOptions, DirectoryUser, Entry, EventsInfo, FetchRequest, Mapped,
    Page, Person, PersonStatus, Plan, RawRecord, SourceEvent, SourceId, Subscription,
};
use v0_1_0::hrsync::connector::types as wit;

/// A contract version this host implements: `0.MINOR.x` for each minor
/// version in [`Contract::ALL`] (a patch release of the contract changes
/// documentation only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    V0_1,
    V0_2,
    V0_3,
    V0_4,
}

impl Contract {
    pub const ALL: [Contract; 4] = [Contract::V0_1, Contract::V0_2, Contract::V0_3, Contract::V0_4];

    /// The contract a component's exported version belongs to; `None` for a
    /// version this host does not implement (never another version's).
    pub fn of(version: &str) -> Option<Contract> {
        let mut parts = version.split('.');
        let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
        let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if parts.next().is_some() || !numeric(major) || !numeric(minor) || !numeric(patch) {
            return None;
        }
        Contract::ALL.into_iter().find(|c| c.range() == format!("{major}.{minor}.x"))
    }

    /// The versions this contract accepts, as `0.2.x`.
    pub fn range(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.x",
            Contract::V0_2 => "0.2.x",
            Contract::V0_3 => "0.3.x",
            Contract::V0_4 => "0.4.x",
        }
    }

    /// Prepares a linked component for instantiation with this version's bindings.
    pub(super) fn prepare(self, pre: InstancePre<RunState>) -> wasmtime::Result<Prepared> {
        Ok(match self {
            Contract::V0_1 => Prepared::V0_1(v0_1_0::HrConnectorPre::new(pre)?),
            Contract::V0_2 => Prepared::V0_2(v0_2_0::HrConnectorPre::new(pre)?),
            Contract::V0_3 => Prepared::V0_3(v0_3_0::HrConnectorPre::new(pre)?),
            Contract::V0_4 => Prepared::V0_4(v0_4_0::HrConnectorPre::new(pre)?),
        })
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.range())
    }
}

/// A component prepared for instantiation, by contract version.
pub enum Prepared {
    V0_1(v0_1_0::HrConnectorPre<RunState>),
    V0_2(v0_2_0::HrConnectorPre<RunState>),
    V0_3(v0_3_0::HrConnectorPre<RunState>),
    V0_4(v0_4_0::HrConnectorPre<RunState>),
}

// By hand: a derive would require `RunState: Clone`.
impl Clone for Prepared {
    fn clone(&self) -> Self {
        match self {
            Prepared::V0_1(p) => Prepared::V0_1(p.clone()),
            Prepared::V0_2(p) => Prepared::V0_2(p.clone()),
            Prepared::V0_3(p) => Prepared::V0_3(p.clone()),
            Prepared::V0_4(p) => Prepared::V0_4(p.clone()),
        }
    }
}

impl Prepared {
    pub async fn instantiate(&self, store: &mut Store<RunState>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Prepared::V0_1(pre) => Bindings::V0_1(pre.instantiate_async(store).await?),
            Prepared::V0_2(pre) => Bindings::V0_2(pre.instantiate_async(store).await?),
            Prepared::V0_3(pre) => Bindings::V0_3(pre.instantiate_async(store).await?),
            Prepared::V0_4(pre) => Bindings::V0_4(pre.instantiate_async(store).await?),
        })
    }
}

/// A connector instance, of whichever contract version it was built for.
pub enum Bindings {
    V0_1(v0_1_0::HrConnector),
    V0_2(v0_2_0::HrConnector),
    V0_3(v0_3_0::HrConnector),
    V0_4(v0_4_0::HrConnector),
}

/// What a call returned, in the model: its value, the connector's contract
/// error, or output the model cannot hold (why, for the admin).
pub type Returned<T> = Result<Result<T, ConnectorError>, String>;

/// Calls `$call` on the `hr-source` export of whichever version `$bindings`
/// is; every version so far returns the shared generated types.
macro_rules! on_hr_source {
    ($bindings:expr, |$source:ident| $call:expr) => {
        match $bindings {
            Bindings::V0_1(i) => {
                let $source = i.hrsync_connector_hr_source();
                $call
            }
            Bindings::V0_2(i) => {
                let $source = i.hrsync_connector_hr_source();
                $call
            }
            Bindings::V0_3(i) => {
                let $source = i.hrsync_connector_hr_source();
                $call
            }
            Bindings::V0_4(i) => {
                let $source = i.hrsync_connector_hr_source();
                $call
            }
        }
    };
}

/// The `hr-events` export, from contract 0.4.0 on.
fn hr_events(bindings: &Bindings) -> Option<&v0_4_0::exports::hrsync::connector::hr_events::Guest> {
    match bindings {
        Bindings::V0_4(i) => Some(i.hrsync_connector_hr_events()),
        _ => None,
    }
}

/// Why an events call cannot be made on a connector built before 0.4.0.
const NO_EVENTS: &str = "the connector was built against a contract without events (hr-events came with 0.4.0)";

fn settings(settings: &[Entry]) -> Vec<wit::Entry> {
    settings.iter().map(wit::Entry::from).collect()
}

/// Converts a call's result, contract error and all.
fn returned<W, T>(result: Result<W, wit::ConnectorError>, convert: impl FnOnce(W) -> Result<T, String>) -> Returned<T> {
    match result {
        Ok(value) => convert(value).map(Ok),
        Err(error) => Ok(Err(error.into())),
    }
}

impl Bindings {
    pub async fn describe(&self, store: &mut Store<RunState>) -> wasmtime::Result<ConnectorInfo> {
        let info = on_hr_source!(self, |s| s.call_describe(store).await?);
        Ok(info.into())
    }

    pub async fn check(&self, store: &mut Store<RunState>, s: &[Entry]) -> wasmtime::Result<Returned<CheckReport>> {
        let r = on_hr_source!(self, |source| source.call_check(&mut *store, &settings(s)).await?);
        Ok(returned(r, |report| Ok(report.into())))
    }

    pub async fn fetch_page(
        &self,
        store: &mut Store<RunState>,
        s: &[Entry],
        request: &FetchRequest,
    ) -> wasmtime::Result<Returned<Page>> {
        let request = wit::FetchRequest::from(request);
        let r = on_hr_source!(self, |source| source.call_fetch_page(&mut *store, &settings(s), &request).await?);
        Ok(returned(r, |page| Ok(page.into())))
    }

    pub async fn map_fields(
        &self,
        store: &mut Store<RunState>,
        s: &[Entry],
        records: &[RawRecord],
    ) -> wasmtime::Result<Returned<Mapped>> {
        let records: Vec<wit::RawRecord> = records.iter().map(Into::into).collect();
        let r = on_hr_source!(self, |source| source.call_map_fields(&mut *store, &settings(s), &records).await?);
        Ok(returned(r, Mapped::try_from))
    }

    pub async fn diff(
        &self,
        store: &mut Store<RunState>,
        s: &[Entry],
        current: &[DirectoryUser],
        incoming: &[Person],
        options: DiffOptions,
    ) -> wasmtime::Result<Returned<Plan>> {
        let current: Vec<wit::DirectoryUser> = current.iter().map(Into::into).collect();
        let incoming: Vec<wit::Person> = incoming.iter().map(Into::into).collect();
        let options = wit::DiffOptions::from(options);
        let r = on_hr_source!(self, |source| {
            source.call_diff(&mut *store, &settings(s), &current, &incoming, options).await?
        });
        Ok(returned(r, Plan::try_from))
    }

    /// The statuses the host's canonical diff creates people for, when the
    /// connector's `diff` is that diff (0.3.0 on); `None` before 0.3.0 and
    /// for connectors with rules of their own.
    pub async fn canonical_creates(
        &self,
        store: &mut Store<RunState>,
        s: &[Entry],
    ) -> wasmtime::Result<Returned<Option<Vec<PersonStatus>>>> {
        let r = match self {
            Bindings::V0_1(_) | Bindings::V0_2(_) => return Ok(Ok(Ok(None))),
            Bindings::V0_3(i) => {
                i.hrsync_connector_hr_source().call_canonical_creates(&mut *store, &settings(s)).await?
            }
            Bindings::V0_4(i) => {
                i.hrsync_connector_hr_source().call_canonical_creates(&mut *store, &settings(s)).await?
            }
        };
        Ok(returned(r, |creates| Ok(creates.map(|c| c.into_iter().map(Into::into).collect()))))
    }

    /// What the source can push; `None` before 0.4.0 and for sources that cannot.
    pub async fn describe_events(&self, store: &mut Store<RunState>) -> wasmtime::Result<Option<EventsInfo>> {
        match hr_events(self) {
            Some(events) => Ok(events.call_describe_events(store).await?.map(Into::into)),
            None => Ok(None),
        }
    }

    pub async fn subscribe(
        &self,
        store: &mut Store<RunState>,
        s: &[Entry],
        callback_url: &str,
        token: &str,
    ) -> wasmtime::Result<Returned<Subscription>> {
        let Some(events) = hr_events(self) else { return Ok(Err(NO_EVENTS.into())) };
        let r = events.call_subscribe(&mut *store, &settings(s), callback_url, token).await?;
        Ok(returned(r, |sub| Ok(sub.into())))
    }

    pub async fn unsubscribe(
        &self,
        store: &mut Store<RunState>,
        s: &[Entry],
        id: &str,
    ) -> wasmtime::Result<Returned<()>> {
        let Some(events) = hr_events(self) else { return Ok(Err(NO_EVENTS.into())) };
        let r = events.call_unsubscribe(&mut *store, &settings(s), id).await?;
        Ok(returned(r, Ok))
    }

    pub async fn handle_event(
        &self,
        store: &mut Store<RunState>,
        s: &[Entry],
        headers: &[Entry],
        body: &str,
    ) -> wasmtime::Result<Returned<SourceEvent>> {
        let Some(events) = hr_events(self) else { return Ok(Err(NO_EVENTS.into())) };
        let r = events.call_handle_event(&mut *store, &settings(s), &settings(headers), body).await?;
        Ok(returned(r, |event| Ok(event.into())))
    }

    pub async fn fetch_people(
        &self,
        store: &mut Store<RunState>,
        s: &[Entry],
        ids: &[SourceId],
    ) -> wasmtime::Result<Returned<Vec<RawRecord>>> {
        let Some(events) = hr_events(self) else { return Ok(Err(NO_EVENTS.into())) };
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let r = events.call_fetch_people(&mut *store, &settings(s), &ids).await?;
        let records = |records: Vec<wit::RawRecord>| {
            Ok(records.into_iter().map(|r| RawRecord { source_id: r.source_id.into(), payload: r.payload }).collect())
        };
        Ok(returned(r, records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_their_own_contract_or_none() {
        assert_eq!(Contract::of("0.1.0"), Some(Contract::V0_1));
        assert_eq!(Contract::of("0.2.0"), Some(Contract::V0_2));
        assert_eq!(Contract::of("0.2.7"), Some(Contract::V0_2), "a patch release is the same contract");
        assert_eq!(Contract::of("0.3.0"), Some(Contract::V0_3));
        assert_eq!(Contract::of("0.4.0"), Some(Contract::V0_4));
        for unknown in ["0.5.0", "1.0.0", "0.2", "0.2.0.1", "0.2.x", "", "0.02.0-rc"] {
            assert_eq!(Contract::of(unknown), None, "{unknown}");
        }
    }
}
