//! Where connectors come from: the Personio and CSV export connectors
//! compiled into this binary, and `.wasm` components given on the command line or found in a
//! connectors directory, loaded at runtime without a rebuild.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::runtime::{Connector, Runtime};

/// The Personio connector, built from `plugin/` by the build script.
pub static BUNDLED_PERSONIO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/personio.wasm"));
/// The CSV export connector, built from `plugin/csv/` by the build script.
pub static BUNDLED_CSV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/csv.wasm"));

/// The bundled connectors: (origin, component).
pub const BUNDLED: [(&str, &[u8]); 2] = [("bundled:personio", BUNDLED_PERSONIO), ("bundled:csv", BUNDLED_CSV)];

/// Loads the bundled connector, then every `*.wasm` in `dir` (if given) and
/// every path in `extra`. A later connector with the same id replaces an
/// earlier one, so a connector on disk overrides the bundled build.
pub async fn load_all(runtime: &Runtime, dir: Option<&Path>, extra: &[PathBuf]) -> anyhow::Result<Vec<Connector>> {
    let mut out: Vec<Connector> = Vec::new();
    let mut add = |c: Connector| match out.iter_mut().find(|o| o.info.id == c.info.id) {
        Some(slot) => *slot = c,
        None => out.push(c),
    };
    for (origin, bytes) in BUNDLED {
        add(runtime.load(origin, bytes).await?);
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
        add(load_file(runtime, &path).await?);
    }
    Ok(out)
}

/// Loads one component file.
pub async fn load_file(runtime: &Runtime, path: &Path) -> anyhow::Result<Connector> {
    let bytes = std::fs::read(path).with_context(|| format!("reading connector {}", path.display()))?;
    Ok(runtime.load(&path.display().to_string(), &bytes).await?)
}
