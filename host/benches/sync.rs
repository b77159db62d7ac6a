//! Benchmark (not a test): first import and no-change re-sync of 10,000 and
//! 100,000 sandbox people through the real Personio component into SQLite.
//!
//! Run: `cargo bench -p hrsync --bench sync` (or `-- SIZE...`). Each size runs
//! in a fresh child process so peak RSS is its own; the sandbox runs as a
//! separate `hrsync sandbox --rate-limit off` process.

use std::process::Command;
use std::time::Instant;

use hrsync::sync::engine::RunRequest;

mod common;

/// One size, in this process: prints `SIZE first_s resync_s peak_mib`.
fn one(people: usize) -> anyhow::Result<()> {
    let sandbox = common::sandbox(people)?;
    let url = sandbox.url.clone();

    let dir = std::env::temp_dir().join(format!("hrsync-bench-sync-{}-{people}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = tokio::runtime::Runtime::new()?.block_on(async {
        let (engine, _, integration) = common::personio_engine(&dir, &url).await?;

        let started = Instant::now();
        let first = engine.import(&RunRequest::manual(integration)).await?;
        let first_s = started.elapsed().as_secs_f64();
        let first_peak = common::peak_rss_mib();
        anyhow::ensure!(first.run.counts.created as usize > people * 9 / 10, "created {}", first.run.counts.created);
        // The report lists every change; a caller that only needs the counts lets it go.
        drop(first);
        let started = Instant::now();
        let again = engine.import(&RunRequest::manual(integration)).await?;
        let resync_s = started.elapsed().as_secs_f64();
        anyhow::ensure!(again.changes.is_empty(), "the re-sync changed {} people", again.changes.len());
        println!("{people} {first_s:.3} {resync_s:.3} {first_peak:.1} {:.1}", common::peak_rss_mib());
        Ok(())
    });
    drop(sandbox);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--one") {
        return one(args[1].parse()?);
    }
    let sizes: Vec<usize> = if args.is_empty() {
        vec![10_000, 100_000]
    } else {
        args.iter().map(|a| a.parse()).collect::<Result<_, _>>()?
    };
    println!("import through the Personio component into SQLite (loopback sandbox, rate limit off):");
    println!(
        "{:>8} {:>10} {:>10} {:>16} {:>12} {:>16}",
        "people", "first (s)", "people/s", "peak after (MiB)", "re-sync (s)", "peak after (MiB)"
    );
    let mut firsts = Vec::new();
    for size in sizes {
        let out = Command::new(std::env::current_exe()?).args(["--one", &size.to_string()]).output()?;
        anyhow::ensure!(out.status.success(), "size {size} failed: {}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8(out.stdout)?;
        let f: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        println!(
            "{:>8} {:>10.2} {:>10.0} {:>16.1} {:>12.2} {:>16.1}",
            size,
            f[1],
            size as f64 / f[1],
            f[3],
            f[2],
            f[4]
        );
        firsts.push((size, f[1]));
    }
    if let [(small, a), (large, b)] = firsts[..] {
        println!(
            "first-import time ratio {large}/{small}: {:.1} (linear would be {:.1})",
            b / a,
            large as f64 / small as f64
        );
    }
    Ok(())
}
