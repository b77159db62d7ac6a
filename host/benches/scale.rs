//! Benchmark (not a test): many tenants on PostgreSQL, served by 1 and by
//! 3 `hrsync serve` replicas on this machine.
//!
//! For each replica count, a fresh database with TENANTS tenants, each with
//! a Personio integration (automatic imports) on a sandbox company of its
//! own (no rate limits), of PEOPLE people — `200-2000`: sizes spread evenly
//! over that range, one company per tenant; `200`: every tenant reads the
//! same company of 200:
//! - burst: every tenant's first import due at once — runs per minute
//!   until all have run;
//! - steady: then each tenant's next (incremental) run due at its own time,
//!   spread evenly over SPREAD seconds — as TENANTS integrations on an
//!   interval of SPREAD come due — p50, p95 and max schedule lag (run start
//!   minus due time);
//! - peak RSS of each replica (VmHWM), CPU seconds, database size.
//!
//! Then the cost of IDLE idle integrations (automatic imports on, next run
//! half an hour away) on one replica, against one with none: RSS and CPU
//! seconds per minute.
//!
//! Run: `cargo bench -p hrsync --bench scale --profile dev -- [TENANTS [PEOPLE [SPREAD [IDLE [REPLICAS]]]]]`
//! (default 1000 200-2000 300 10000 1,3; REPLICAS lists the replica counts to measure, `0` none).

#[allow(dead_code)]
#[path = "../tests/host/deployment.rs"]
mod deployment;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hrsync::directory::prelude::*;
use hrsync::directory::{IntegrationId, Run, RunState};
use hrsync::model::TenantId;

use deployment::{Deployment, Replica};

fn raw_arg(n: usize) -> Option<String> {
    std::env::args().filter(|a| !a.starts_with('-')).nth(n)
}

fn arg(n: usize, default: usize) -> usize {
    raw_arg(n).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// Company sizes, smallest and largest: `200-2000` or `200`.
fn sizes(n: usize) -> (usize, usize) {
    let raw = raw_arg(n).unwrap_or_else(|| "200-2000".into());
    let parse =
        |s: &str| s.trim().parse::<usize>().unwrap_or_else(|_| panic!("PEOPLE: `{raw}` is not 200 or 200-2000"));
    match raw.split_once('-') {
        Some((low, high)) => (parse(low), parse(high)),
        None => (parse(&raw), parse(&raw)),
    }
}

/// A `/proc/PID/status` field in MiB.
fn status_mib(pid: i32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// User + system CPU seconds a process has used.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum());
    ticks / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Every tenant's runs, once each has `count` succeeded ones.
async fn runs_when_done(d: &Deployment, tenants: &[(TenantId, IntegrationId)], count: usize) -> Vec<Vec<Run>> {
    let started = Instant::now();
    let mut waiting: Vec<usize> = (0..tenants.len()).collect();
    let done = |i: &usize| d.runs(tenants[*i].0).iter().filter(|r| r.state == RunState::Succeeded).count() >= count;
    loop {
        // Cheap polls (the replicas share the cores): drop the done tenants
        // from the front, stop at the first still waiting; the figures come
        // from the runs' own times, not from when this noticed them.
        while waiting.first().is_some_and(done) {
            waiting.remove(0);
        }
        if waiting.is_empty() {
            return tenants.iter().map(|(t, _)| d.runs(*t)).collect();
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "{} tenants never ran", waiting.len());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn phase(replicas: usize, tenants: usize, (smallest, largest): (usize, usize), spread: i64) {
    let mut d = Deployment::start(smallest).await;
    d.send_emails = false;
    if smallest != largest {
        d.company_sizes = Some((smallest, largest));
    }
    let made = Instant::now();
    let due = Utc::now() + chrono::Duration::days(1);
    let all: Vec<(TenantId, IntegrationId)> = (0..tenants).map(|n| d.tenant(n, due, 60)).collect();
    let people: usize = (0..tenants).map(|n| d.sandbox.company_size(&format!("company-{n}")).unwrap_or(smallest)).sum();
    eprintln!("{replicas} replica(s): {tenants} tenants made in {:.1} s", made.elapsed().as_secs_f64());
    let mut fleet: Vec<Replica> = (0..replicas).map(|_| d.replica()).collect();

    // Burst: every first import due now.
    let burst = Utc::now();
    reschedule(&d, &all, |_| burst);
    let runs = runs_when_done(&d, &all, 1).await;
    let last = runs.iter().flat_map(|r| r.iter().filter_map(|r| r.finished_at)).max().unwrap();
    let minutes = (last - burst).num_milliseconds() as f64 / 60_000.0;
    println!(
        "{replicas} replica(s), burst: {tenants} first imports of {smallest}-{largest} people ({people} in all) in {:.1} s = {:.0} runs/min, {:.0} people/s",
        minutes * 60.0,
        tenants as f64 / minutes,
        people as f64 / (minutes * 60.0)
    );

    // Steady: each tenant's next run at its own time over the spread.
    // Far enough ahead that rescheduling every tenant is done before the first is due.
    let start = Utc::now() + chrono::Duration::seconds(30);
    let due_of = |i: usize| start + chrono::Duration::milliseconds(spread * 1000 * i as i64 / tenants as i64);
    let cpu_before: f64 = fleet.iter().map(|r| cpu_seconds(r.pid())).sum();
    reschedule(&d, &all, due_of);
    let runs = runs_when_done(&d, &all, 2).await;
    let mut lags: Vec<f64> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let second = r.iter().filter(|r| r.state == RunState::Succeeded).map(|r| r.started_at).max().unwrap();
            (second - due_of(i)).num_milliseconds() as f64 / 1000.0
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let cpu: f64 = fleet.iter().map(|r| cpu_seconds(r.pid())).sum::<f64>() - cpu_before;
    let doubled = runs.iter().filter(|r| r.iter().filter(|r| r.state == RunState::Succeeded).count() > 2).count();
    println!(
        "{replicas} replica(s), steady: {tenants} incremental runs due over {spread} s: schedule lag p50 {:.2} s, p95 {:.2} s, max {:.2} s; {doubled} doubled; CPU {:.1} s (all replicas)",
        percentile(&lags, 0.5),
        percentile(&lags, 0.95),
        lags[lags.len() - 1],
        cpu
    );
    let rss: Vec<String> = fleet.iter().map(|r| format!("{:.0}", status_mib(r.pid(), "VmHWM"))).collect();
    println!(
        "{replicas} replica(s): peak RSS per replica {} MiB; database {:.1} MiB",
        rss.join(", "),
        d.db.database_bytes().unwrap() as f64 / 1_048_576.0
    );
    for r in fleet.drain(..) {
        r.stop();
    }
}

/// Sets every tenant's next run, keeping the rest of its schedule.
fn reschedule(d: &Deployment, all: &[(TenantId, IntegrationId)], due: impl Fn(usize) -> DateTime<Utc>) {
    for (i, (tenant, id)) in all.iter().enumerate() {
        let store = d.db.tenant(*tenant);
        let mut s = store.schedule(*id).unwrap().unwrap();
        s.next_run_at = due(i);
        store.save_schedule(&s).unwrap();
    }
}

/// RSS and CPU a minute of one replica costs with `count` idle integrations.
async fn idle(count: usize) -> (f64, f64, f64) {
    let mut d = Deployment::start(10).await;
    d.send_emails = false;
    // Next run within the interval (60 minutes), so nothing is due or to reschedule.
    let later = Utc::now() + chrono::Duration::minutes(30);
    for n in 0..count {
        d.tenant(n, later, 60);
    }
    let replica = d.replica();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = cpu_seconds(replica.pid());
    tokio::time::sleep(Duration::from_secs(60)).await;
    let figures =
        (status_mib(replica.pid(), "VmRSS"), status_mib(replica.pid(), "VmHWM"), cpu_seconds(replica.pid()) - cpu);
    replica.stop();
    figures
}

#[tokio::main]
async fn main() {
    let (tenants, people, spread, idle_count) = (arg(1, 1000), sizes(2), arg(3, 300) as i64, arg(4, 10_000));
    let counts = std::env::args().filter(|a| !a.starts_with('-')).nth(5).unwrap_or_else(|| "1,3".into());
    for replicas in counts.split(',').filter_map(|n| n.trim().parse().ok()).filter(|n: &usize| *n > 0) {
        phase(replicas, tenants, people, spread).await;
    }
    let (rss0, hwm0, cpu0) = idle(0).await;
    let (rss, hwm, cpu) = idle(idle_count).await;
    println!(
        "idle: one replica with no integrations: RSS {rss0:.0} MiB (peak {hwm0:.0}), CPU {cpu0:.2} s/min; with {idle_count} idle integrations: RSS {rss:.0} MiB (peak {hwm:.0}), CPU {cpu:.2} s/min = {:.1} KiB each",
        (rss - rss0) * 1024.0 / idle_count as f64
    );
}
