//! Contract 0.4.0: adds the `hr-events` export (subscribe, unsubscribe,
//! handle-event, fetch-people) for sources that push changes. Its shared
//! types are 0.1.0's; `hr-events` brings its own, converted here.

use crate::model::{self, LogLevel};
use crate::rules;

wasmtime::component::bindgen!({
    path: "../wit/0.4.0",
    world: "hr-connector",
    exports: { default: async },
    imports: { "hrsync:connector/host.canonical-diff": trappable },
    with: {
        "hrsync:connector/types": super::v0_1_0::hrsync::connector::types,
    },
});

use self::exports::hrsync::connector::hr_events as events;
use self::hrsync::connector::host::{Host, Level};
use self::hrsync::connector::types as wit;

impl From<Level> for LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        }
    }
}

impl Host for super::RunState {
    fn log(&mut self, level: Level, message: String) {
        self.log(level.into(), &message);
    }

    fn progress(&mut self, done: u64, total: Option<u64>) {
        self.progress(done, total);
    }

    /// As in 0.3.0: the host's rules on what the connector passes.
    fn canonical_diff(
        &mut self,
        current: Vec<wit::DirectoryUser>,
        incoming: Vec<wit::Person>,
        options: wit::DiffOptions,
        create: Vec<wit::PersonStatus>,
    ) -> wasmtime::Result<wit::Plan> {
        let invalid = |reason: String| wasmtime::format_err!("canonical-diff was given invalid input: {reason}");
        let current: Vec<model::DirectoryUser> =
            current.into_iter().map(TryInto::try_into).collect::<Result<_, _>>().map_err(invalid)?;
        let incoming: Vec<model::Person> =
            incoming.into_iter().map(TryInto::try_into).collect::<Result<_, _>>().map_err(invalid)?;
        let create: Vec<model::PersonStatus> = create.into_iter().map(Into::into).collect();
        let plan = rules::canonical_diff(&current, &incoming, &options.into(), &create, self.today());
        Ok((&plan).into())
    }
}

impl From<events::EventsInfo> for model::EventsInfo {
    fn from(i: events::EventsInfo) -> Self {
        model::EventsInfo { description: i.description, events: i.events }
    }
}

impl From<events::Subscription> for model::Subscription {
    fn from(s: events::Subscription) -> Self {
        model::Subscription { id: s.id, description: s.description }
    }
}

impl From<events::Event> for model::SourceEvent {
    fn from(e: events::Event) -> Self {
        let ids = |ids: Vec<String>| ids.into_iter().map(model::SourceId::new).collect();
        match e {
            events::Event::Changed(people) => model::SourceEvent::Changed(ids(people)),
            events::Event::Deleted(people) => model::SourceEvent::Deleted(ids(people)),
            events::Event::Ignored(why) => model::SourceEvent::Ignored(why),
        }
    }
}
