//! Compiled components cached on disk, keyed by the component's content hash
//! and the engine's compatibility hash, so a restart does not recompile.

use std::hash::{Hash, Hasher};
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Hex SHA-256 of the component bytes.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles `bytes`, or loads the artifact cached for them by this engine build.
pub fn compile(engine: &Engine, cache_dir: Option<&Path>, digest: &str, bytes: &[u8]) -> Result<Component, String> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes).map_err(|e| format!("{e:#}"));
    };
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let path = dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()));
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` of an engine
        // with the same compatibility hash, into hrsync's own cache directory.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unreadable cached component: {e:#}")
            }
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
    if let Err(e) = store(dir, &path, &component) {
        tracing::warn!(path = %path.display(), "could not cache compiled component: {e}");
    }
    Ok(component)
}

fn store(dir: &Path, path: &Path, component: &Component) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    // Write then rename, so a crash never leaves a truncated artifact behind.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}
