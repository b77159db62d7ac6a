//! Contract 0.3.0: adds `host.canonical-diff` and the `hr-connector-http`
//! world. Its types are 0.1.0's.

use crate::model::{self, LogLevel};
use crate::rules;

wasmtime::component::bindgen!({
    path: "../wit/0.3.0",
    world: "hr-connector",
    exports: { default: async },
    imports: { "hrsync:connector/host.canonical-diff": trappable },
    with: {
        "hrsync:connector/types": super::v0_1_0::hrsync::connector::types,
    },
});

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

    /// Runs the host's rules on what the connector passes. Input the model
    /// cannot hold is a bug in the connector: the call traps with the reason.
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
