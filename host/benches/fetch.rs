//! Benchmark (not a test): fetch + map a 10,000-person sandbox company
//! through the real Personio component. Prints people/s and peak RSS.
//!
//! Run: `cargo bench -p hrsync --bench fetch` (optionally `-- PEOPLE ROUNDS`).
//! The sandbox runs as a separate `hrsync sandbox` process, so the RSS
//! figures are those of the host and its connector alone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hrsync::runtime::egress::Grants;
use hrsync::runtime::{Limits, Runtime, wit};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use hrsync::sync::{FetchOptions, fetch_all};

/// A field of /proc/self/status in MiB (VmHWM = peak RSS).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let people: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut sandbox = Command::new(env!("CARGO_BIN_EXE_hrsync"))
        // Personio's real limit (15 requests/s) would dominate the figure; this
        // measures hrsync itself.
        .args(["sandbox", "--rate-limit", "off", "--people", &people.to_string(), "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(sandbox.stdout.take().expect("piped")).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    anyhow::ensure!(first.contains("Personio sandbox"), "the sandbox did not start: {first}");
    // Keep draining its output so the child never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let url = format!("http://127.0.0.1:{port}");

    let result = tokio::runtime::Runtime::new()?.block_on(async {
        let runtime = Runtime::new(Limits::default(), None)?;
        let started = Instant::now();
        let connector = runtime.load("bundled:personio", hrsync::connectors::BUNDLED_PERSONIO).await?;
        let load = started.elapsed();
        let settings: Vec<wit::Entry> =
            [("api-base-url", url.as_str()), ("client-id", DEMO_CLIENT_ID), ("client-secret", DEMO_CLIENT_SECRET)]
                .iter()
                .map(|(k, v)| wit::Entry { key: k.to_string(), value: v.to_string() })
                .collect();
        let grants = Grants::parse(&[url.as_str()]).map_err(anyhow::Error::msg)?;
        let before = status_mib("VmHWM");
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
        println!("  peak RSS: {:.1} MiB (before the first fetch: {before:.1} MiB)", status_mib("VmHWM"));
        Ok::<Duration, anyhow::Error>(median)
    });
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    result.map(|_| ())
}
