//! Where connectors come from: the Personio and CSV export connectors
//! compiled into this binary, and `.wasm` components given on the command line or found in a
//! connectors directory, loaded at runtime without a rebuild.
//!
//! A component on disk that does not load — not a component, an unsupported
//! contract, a `describe` that panics, loops or runs out of memory — is set
//! aside with the reason, so one broken file never keeps the server from
//! starting; [`Loaded::failed`] lists it for the admin.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::runtime::{Connector, Runtime};

/// The Personio connector, built from `plugin/` by the build script.
pub static BUNDLED_PERSONIO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/personio.wasm"));
/// The CSV export connector, built from `plugin/csv/` by the build script.
pub static BUNDLED_CSV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/csv.wasm"));

/// The bundled connectors: (origin, component).
pub const BUNDLED: [(&str, &[u8]); 2] = [("bundled:personio", BUNDLED_PERSONIO), ("bundled:csv", BUNDLED_CSV)];

/// A component that was found but not loaded, and why.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LoadFailure {
    /// The file it was read from.
    pub origin: String,
    /// What is wrong with it and what to do.
    pub reason: String,
}

/// Every connector found: those that loaded and those that did not.
#[derive(Debug, Default)]
pub struct Loaded {
    pub connectors: Vec<Connector>,
    pub failed: Vec<LoadFailure>,
}

/// Loads the bundled connectors, then every `*.wasm` in `dir` (if given) and
/// every path in `extra`. A later connector with the same id replaces an
/// earlier one, so a connector on disk overrides the bundled build. Only a
/// bundled connector that fails to load is an error (a broken build);
/// components on disk that fail are listed in [`Loaded::failed`].
pub async fn load_all(runtime: &Runtime, dir: Option<&Path>, extra: &[PathBuf]) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded::default();
    for (origin, bytes) in BUNDLED {
        loaded.add(runtime.load(origin, bytes).await?);
    }
    let mut paths = Vec::new();
    if let Some(dir) = dir.filter(|d| d.exists()) {
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("reading connectors directory {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                paths.push(path);
            }
        }
        paths.sort();
    }
    paths.extend(extra.iter().cloned());
    for path in paths {
        match load_file(runtime, &path).await {
            Ok(c) => loaded.add(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "connector not loaded: {e:#}");
                loaded.failed.push(LoadFailure { origin: path.display().to_string(), reason: format!("{e:#}") });
            }
        }
    }
    Ok(loaded)
}

impl Loaded {
    fn add(&mut self, c: Connector) {
        match self.connectors.iter_mut().find(|o| o.info.id == c.info.id) {
            Some(slot) => *slot = c,
            None => self.connectors.push(c),
        }
    }
}

/// Loads one component file.
pub async fn load_file(runtime: &Runtime, path: &Path) -> anyhow::Result<Connector> {
    let bytes = std::fs::read(path).with_context(|| format!("reading connector {}", path.display()))?;
    Ok(runtime.load(&path.display().to_string(), &bytes).await?)
}
