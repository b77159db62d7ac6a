//! Shared by the benchmarks: a sandbox in its own process, and peak RSS.

#![allow(dead_code)] // each benchmark uses a different part

use hrsync::directory::prelude::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{IntegrationConfig, IntegrationId};
use hrsync::runtime::{Limits, Runtime};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use hrsync::secrets::SecretBox;
use hrsync::sync::SyncEngine;

/// A `hrsync sandbox --rate-limit off` process; killed when dropped.
pub struct SandboxProcess {
    child: Child,
    pub url: String,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a sandbox of `people` without rate limits: Personio's real limit
/// (15 requests/s) would dominate every figure; the benchmarks measure hrsync.
pub fn sandbox(people: usize) -> anyhow::Result<SandboxProcess> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hrsync"))
        .args(["sandbox", "--rate-limit", "off", "--people", &people.to_string(), "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    let process = SandboxProcess { child, url: format!("http://127.0.0.1:{port}") };
    anyhow::ensure!(first.contains("Personio sandbox"), "the sandbox did not start: {first}");
    // Keep draining its output so the child never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(process)
}

/// A directory in `dir` with one Personio integration pointed at the
/// sandbox at `url`, and an engine (unpaced) running the bundled component.
pub async fn personio_engine(dir: &Path, url: &str) -> anyhow::Result<(SyncEngine, Arc<SqliteStore>, IntegrationId)> {
    let runtime = Arc::new(Runtime::new(Limits::default(), Some(dir.join("cache")))?);
    let connector = runtime.load("bundled:personio", hrsync::connectors::BUNDLED_PERSONIO).await?;
    let store = Arc::new(SqliteStore::open(&dir.join("hrsync.db"), SecretBox::from_key(&[1; 32]))?);
    let mut config = IntegrationConfig::new("personio", "bench");
    config.settings.insert("api-base-url".into(), url.into());
    config.settings.insert("client-id".into(), DEMO_CLIENT_ID.into());
    config.settings.insert("client-secret".into(), DEMO_CLIENT_SECRET.into());
    // These benchmarks measure the v1 paths (a hundred people a request);
    // `freshness` measures v2 with webhooks.
    config.settings.insert("api-version".into(), "v1".into());
    config.secret_keys.insert("client-secret".into());
    config.grants = vec![url.into()];
    let integration = store.create_integration(&config)?;
    Ok((SyncEngine::new(runtime, store.clone(), vec![connector]), store, integration))
}

/// This process's peak resident set (VmHWM) in MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
