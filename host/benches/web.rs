//! Benchmark (not a test): server-side time to render the admin pages over
//! a preview of 10,000 changes — the Preview tab's first page, a later page,
//! a filtered page — and, after importing it, the run page and the
//! directory's first page.
//!
//! Run: `cargo bench -p hrsync --bench web` (or `-- PEOPLE`). Requests go
//! through the whole router (auth, pages, compression layers) in-process,
//! so the figures are the server's work without the network.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use hrsync::accounts::Accounts;
use hrsync::sync::engine::RunRequest;
use hrsync::web::AppState;
use http::{Request, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

mod common;

const ROUNDS: usize = 40;

/// Renders `path` `ROUNDS` times after a warm-up; prints median, p95 and size.
async fn measure(app: &axum::Router, cookie: &str, label: &str, path: &str) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut bytes = 0;
    for round in 0..ROUNDS + 3 {
        let request = Request::get(path).header(header::COOKIE, cookie).body(Body::empty())?;
        let started = Instant::now();
        let response = app.clone().oneshot(request).await?;
        anyhow::ensure!(response.status() == 200, "{path}: {}", response.status());
        let body = response.into_body().collect().await?.to_bytes();
        let took = started.elapsed();
        bytes = body.len();
        if round >= 3 {
            times.push(took);
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    println!(
        "{label:<34} median {:>7.2} ms   p95 {:>7.2} ms   {:>6.1} KiB   {path}",
        median.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        bytes as f64 / 1024.0
    );
    Ok(median)
}

fn main() -> anyhow::Result<()> {
    let people: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let sandbox = common::sandbox(people)?;
    let url = sandbox.url.clone();
    let dir = std::env::temp_dir().join(format!("hrsync-bench-web-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = tokio::runtime::Runtime::new()?.block_on(async {
        let (engine, _, id) = common::personio_engine(&dir, &url).await?;
        let db = dir.join("hrsync.db");
        let engine = Arc::new(engine);
        let accounts = Arc::new(Accounts::open(&db)?);
        accounts.ensure_admin(Some("benchmark password"))?;
        let admin = accounts.verify("admin", "benchmark password")?.expect("the admin");
        let cookie = format!("hrsync_session={}", accounts.create_session(admin)?.token);
        let app =
            hrsync::web::router(AppState::new(engine.clone(), accounts, Arc::new(hrsync::audit::Audit::open(&db)?)));

        let preview = engine.preview(&RunRequest::manual(id)).await?;
        let changes = preview.run.counts.created + preview.run.counts.updated;
        println!("preview {} of {people} people: {changes} changes\n", preview.run.id);
        let run = preview.run.id;
        let first =
            measure(&app, &cookie, "preview tab, first page", &format!("/integrations/{id}/preview?run={run}")).await?;
        measure(&app, &cookie, "preview tab, page 100", &format!("/integrations/{id}/preview?run={run}&page=100"))
            .await?;
        measure(&app, &cookie, "preview tab, search", &format!("/integrations/{id}/preview?run={run}&q=schmidt"))
            .await?;
        let import = engine.import(&RunRequest { from_preview: Some(run), ..RunRequest::manual(id) }).await?;
        let import = import.run.id;
        measure(&app, &cookie, "import run page, first page", &format!("/runs/{import}")).await?;
        measure(&app, &cookie, "directory, first page", "/directory").await?;
        measure(&app, &cookie, "directory, search", "/directory?q=weber").await?;
        measure(&app, &cookie, "history tab", &format!("/integrations/{id}/history")).await?;
        println!(
            "\nfirst preview page of {changes} changes: median {:.2} ms (target: under 300 ms)",
            first.as_secs_f64() * 1e3
        );
        anyhow::Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
