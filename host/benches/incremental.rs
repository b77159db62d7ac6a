//! Benchmark (not a test): an incremental run — only people changed since
//! the last run — over a 10,000-person sandbox company with 10 changes:
//! requests made and wall time, next to the complete run it replaces.
//!
//! Run: `cargo bench -p hrsync --bench incremental` (or `-- PEOPLE`). The
//! sandbox runs as its own process without rate limits; its `/_sandbox`
//! admin API makes the changes and counts the requests.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use chrono::Utc;
use hrsync::sync::engine::RunRequest;

mod common;

const ROUNDS: usize = 5;
const CHANGES: u64 = 10;

/// One HTTP/1.1 request to the sandbox's admin API; returns the body.
fn admin(url: &str, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
    let authority = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    anyhow::ensure!(reply.starts_with("HTTP/1.1 2"), "{method} {path}: {reply}");
    Ok(reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// Requests the sandbox has answered so far: token requests and employee pages.
fn requests(url: &str) -> anyhow::Result<(u64, u64)> {
    let stats: serde_json::Value = serde_json::from_str(&admin(url, "GET", "/_sandbox/stats", "")?)?;
    Ok((stats["auth"].as_u64().unwrap_or(0), stats["employee_requests"].as_u64().unwrap_or(0)))
}

fn main() -> anyhow::Result<()> {
    let people: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let sandbox = common::sandbox(people)?;
    let url = sandbox.url.clone();
    let dir = std::env::temp_dir().join(format!("hrsync-bench-incremental-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = tokio::runtime::Runtime::new()?.block_on(async {
        let (engine, _, id) = common::personio_engine(&dir, &url).await?;

        let before = requests(&url)?;
        let started = Instant::now();
        let full = engine.import(&RunRequest { automatic: true, ..RunRequest::manual(id) }).await?;
        let full_time = started.elapsed();
        let after = requests(&url)?;
        println!(
            "complete run of {people} people: {:.0} ms, {} token + {} employee requests, {} created",
            full_time.as_secs_f64() * 1e3,
            after.0 - before.0,
            after.1 - before.1,
            full.run.counts.created
        );

        // People who are in the directory, so each change is an update.
        let imported: Vec<String> = engine
            .store()
            .users_for_sync(id)?
            .into_iter()
            .filter_map(|u| u.managed_by.map(|(_, source)| source))
            .take(ROUNDS * CHANGES as usize)
            .collect();
        let mut last_start = full.run.started_at;
        let mut times = Vec::new();
        for round in 0..ROUNDS as u64 {
            // Ten people change in Personio.
            for i in 0..CHANGES {
                let employee = &imported[(round * CHANGES + i) as usize];
                admin(
                    &url,
                    "PATCH",
                    &format!("/_sandbox/employees/{employee}"),
                    &format!("{{\"position\":\"Role {round}\"}}"),
                )?;
            }
            // As the scheduler does: changes since the last run started, with overlap.
            let since = last_start - hrsync::schedule::OVERLAP;
            let before = requests(&url)?;
            let started = Instant::now();
            let run = engine
                .import(&RunRequest { automatic: true, updated_since: Some(since), ..RunRequest::manual(id) })
                .await?;
            let took = started.elapsed();
            let after = requests(&url)?;
            anyhow::ensure!(run.run.counts.updated == CHANGES, "round {round}: {:?}", run.run.counts);
            println!(
                "incremental run {}: {:>6.1} ms, {} token + {} employee requests, {} updated",
                round + 1,
                took.as_secs_f64() * 1e3,
                after.0 - before.0,
                after.1 - before.1,
                run.run.counts.updated
            );
            times.push(took);
            last_start = run.run.started_at;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.sort();
        println!(
            "\nincremental run with {CHANGES} changes in {people}: median {:.1} ms (complete run {:.0} ms) at {}",
            times[times.len() / 2].as_secs_f64() * 1e3,
            full_time.as_secs_f64() * 1e3,
            Utc::now().format("%Y-%m-%d")
        );
        anyhow::Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
