//! Contract 0.2.0: adds `host.progress`. Its types are 0.1.0's.

use crate::model::LogLevel;

wasmtime::component::bindgen!({
    path: "../wit/0.2.0",
    world: "hr-connector",
    exports: { default: async },
    with: {
        "hrsync:connector/types": super::v0_1_0::hrsync::connector::types,
    },
});

use self::hrsync::connector::host::{Host, Level};

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
}
