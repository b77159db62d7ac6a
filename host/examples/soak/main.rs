//! Fault soak: proves that hrsync is never wrong under faults.
//!
//! ```sh
//! # randomised faulted runs, each compared with an oracle
//! cargo run --release -p hrsync --example soak -- --runs 300 --seed 1
//! # several processes racing on one data directory
//! cargo build --release -p hrsync && cargo run --release -p hrsync --example soak -- --processes --seconds 60
//! ```
//!
//! The first mode ([`faults`]) mutates a sandbox company between runs,
//! injects one or two faults of every kind the sandbox has into each run,
//! and compares the directory after the run with an oracle: the same import
//! without the fault from a copy of the database before it (or, when the
//! faulted run failed, the directory before). The second ([`processes`])
//! races CLI imports, a server's API imports and a scheduler on one data
//! directory and checks that no run was doubled or lost. Each prints its
//! figures and exits non-zero on any wrong result.

mod faults;
mod processes;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Fault soak for hrsync: faulted runs against an oracle, or processes racing on one data dir")]
struct Args {
    /// Faulted runs (fault mode).
    #[arg(long, default_value_t = 300)]
    runs: u32,
    /// Seed of the company, the mutations and the faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// People in the sandbox company.
    #[arg(long, default_value_t = 2_500)]
    people: usize,
    /// Race processes on one data directory instead.
    #[arg(long)]
    processes: bool,
    /// How long the processes race.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The hrsync binary the processes run [default: next to this example's directory].
    #[arg(long)]
    hrsync: Option<std::path::PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let result = runtime.block_on(async {
        if args.processes {
            let binary = match args.hrsync.clone() {
                Some(path) => path,
                None => processes::sibling_binary()?,
            };
            processes::soak(&binary, args.seconds, args.seed).await
        } else {
            faults::soak(args.runs, args.seed, args.people).await
        }
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("soak: WRONG RESULTS (see above)");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak: could not run: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
