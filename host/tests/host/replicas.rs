//! Several `hrsync serve` processes on one PostgreSQL database, as a
//! multi-tenant deployment runs them: every due run of every tenant is run
//! once, a replica killed mid-import has its run completed by another, a
//! rolling restart misses no schedule, and each invitation is sent once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use hrsync::directory::prelude::*;
use hrsync::directory::{IntegrationId, Run, RunKind, RunState, Trigger, UserQuery};
use hrsync::model::TenantId;
use hrsync::sandbox::Fault;

use crate::deployment::{Deployment, Replica};

/// Each tenant's runs, checked: exactly one automatic import, succeeded.
fn ran_once(runs: &[Run]) -> bool {
    runs.len() == 1
        && runs[0].kind == RunKind::Import
        && runs[0].trigger == Trigger::Automatic
        && runs[0].state == RunState::Succeeded
}

/// The process (`host:pid:nonce` without the nonce) that held a run.
fn process(run: &Run) -> String {
    let owner = run.owner.clone().unwrap_or_default();
    owner.rsplit_once(':').map_or(owner.clone(), |(process, _)| process.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_run_every_due_run_of_a_hundred_tenants_once() {
    let d = Deployment::start(8).await;
    // Due a little after the replicas are up, so they race for every run.
    let due = Utc::now() + chrono::Duration::seconds(20);
    let tenants: Vec<(TenantId, IntegrationId)> = (0..100).map(|n| d.tenant(n, due, 60)).collect();
    let replicas: Vec<Replica> = (0..3).map(|_| d.replica()).collect();
    assert!(Utc::now() < due, "the replicas took too long to start for the race to be real");

    d.wait_for("a succeeded run of every tenant", Duration::from_secs(240), || {
        tenants.iter().all(|(t, _)| d.runs(*t).iter().any(|r| r.state == RunState::Succeeded))
    })
    .await;
    // Give a doubled run the time to show, then check every tenant ran once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut by_process: BTreeMap<String, usize> = BTreeMap::new();
    for (tenant, integration) in &tenants {
        let runs = d.runs(*tenant);
        assert!(ran_once(&runs), "tenant {tenant:?}: {runs:#?}");
        *by_process.entry(process(&runs[0])).or_default() += 1;
        let next = d.db.tenant(*tenant).schedule(*integration).unwrap().unwrap().next_run_at;
        assert!(next > Utc::now() + chrono::Duration::minutes(50), "the next run is an interval away: {next}");
        let (people, _) = d.db.tenant(*tenant).users(&UserQuery::default()).unwrap();
        assert!(!people.is_empty());
    }
    eprintln!("runs per replica: {by_process:?}");
    assert!(by_process.len() <= 3);
    let ids: Vec<TenantId> = tenants.iter().map(|(t, _)| *t).collect();
    d.mail_sent_once(&ids).await;
    drop(replicas);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_of_a_replica_killed_mid_import_is_completed_by_another() {
    let d = Deployment::start(30).await;
    // The first employee page takes 8 s: long enough to kill the replica in it.
    d.sandbox.inject([Fault::Slow { millis: 8_000 }]);
    // max_run_minutes 1: the claim lapses 2 minutes after it was taken.
    let (tenant, _) = d.tenant(1, Utc::now(), 1);
    let first = d.replica();
    d.wait_for("the first replica's run", Duration::from_secs(60), || {
        d.runs(tenant).iter().any(|r| r.state == RunState::Running)
    })
    .await;
    first.kill();
    let second = d.replica();
    d.wait_for("the run completed by the second replica", Duration::from_secs(240), || {
        d.runs(tenant).iter().any(|r| r.state == RunState::Succeeded)
    })
    .await;
    let runs = d.runs(tenant);
    let states: Vec<RunState> = runs.iter().rev().map(|r| r.state).collect();
    assert_eq!(states, [RunState::Interrupted, RunState::Succeeded], "{runs:#?}");
    assert_ne!(process(&runs[0]), process(&runs[1]), "another replica completed it");
    d.mail_sent_once(&[tenant]).await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_misses_no_schedule() {
    let d = Deployment::start(6).await;
    // Each run's first request takes 1.5 s, so the stops land mid-run: a
    // stopping replica finishes its runs before it ends.
    d.sandbox.inject((0..40).map(|_| Fault::Slow { millis: 1_500 }));
    let start = Utc::now();
    // Twenty tenants due one after another over the restart.
    let tenants: Vec<(TenantId, IntegrationId)> =
        (0..20).map(|n| d.tenant(n, start + chrono::Duration::seconds(10 + n as i64), 60)).collect();
    let (a, b) = (d.replica(), d.replica());
    // Replace each replica in turn, as an upgrade does, while runs come due.
    tokio::time::sleep(Duration::from_secs(12)).await;
    a.stop();
    let a2 = d.replica();
    tokio::time::sleep(Duration::from_secs(6)).await;
    b.stop();
    let b2 = d.replica();
    d.wait_for("every tenant's run", Duration::from_secs(180), || {
        tenants.iter().all(|(t, _)| d.runs(*t).iter().any(|r| r.state == RunState::Succeeded))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (tenant, _) in &tenants {
        let runs = d.runs(*tenant);
        assert!(ran_once(&runs), "tenant {tenant:?}: {runs:#?}");
    }
    drop((a2, b2));
}
