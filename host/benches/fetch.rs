//! Benchmark (not a test): fetch + map a 10,000-person sandbox company
//! through the real Personio component. Prints people/s and peak RSS.
//!
//! Run: `cargo bench -p hrsync --bench fetch` (optionally `-- PEOPLE ROUNDS`).
//! The sandbox runs as a separate `hrsync sandbox` process, so the RSS
//! figures are those of the host and its connector alone.

use std::time::{Duration, Instant};

use hrsync::model;
use hrsync::runtime::egress::Grants;
use hrsync::runtime::{Limits, Runtime};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use hrsync::sync::{FetchOptions, fetch_all};

mod common;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let people: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);

    let sandbox = common::sandbox(people)?;
    let url = sandbox.url.clone();

    let result = tokio::runtime::Runtime::new()?.block_on(async {
        let runtime = Runtime::new(Limits::default(), None)?;
        let started = Instant::now();
        let connector = runtime.load("bundled:personio", hrsync::connectors::BUNDLED_PERSONIO).await?;
        let load = started.elapsed();
        let settings: Vec<model::Entry> =
            [("api-base-url", url.as_str()), ("client-id", DEMO_CLIENT_ID), ("client-secret", DEMO_CLIENT_SECRET)]
                .iter()
                .map(|(k, v)| model::Entry::new(*k, *v))
                .collect();
        let grants = Grants::parse(&[url.as_str()]).map_err(anyhow::Error::msg)?;
        let before = common::peak_rss_mib();
        let mut times = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let mut session = runtime.session(&connector, grants.clone()).await?;
            let fetched = fetch_all(&mut session, &settings, &FetchOptions::default(), |_| {}).await?;
            anyhow::ensure!(fetched.people.len() == people, "fetched {} of {people}", fetched.people.len());
            times.push(started.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2];
        let best = times[0];
        println!("fetch + map of {people} sandbox people through the Personio component ({rounds} rounds, loopback):");
        println!("  component load (compile, no cache): {:>8.1} ms", load.as_secs_f64() * 1e3);
        println!(
            "  median: {:>8.1} ms  ({:.0} people/s)",
            median.as_secs_f64() * 1e3,
            people as f64 / median.as_secs_f64()
        );
        println!(
            "  best:   {:>8.1} ms  ({:.0} people/s)",
            best.as_secs_f64() * 1e3,
            people as f64 / best.as_secs_f64()
        );
        println!("  peak RSS: {:.1} MiB (before the first fetch: {before:.1} MiB)", common::peak_rss_mib());
        Ok::<Duration, anyhow::Error>(median)
    });
    drop(sandbox);
    result.map(|_| ())
}
