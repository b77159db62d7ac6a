//! A deliberately misbehaving connector. Its `mode` setting picks the
//! misbehaviour; the e2e tests check that the host contains each one and
//! names the cause. It is built against the frozen contract 0.1.0 (and,
//! with the `contract-0-2` feature, 0.2.0), so the same tests show that
//! connectors of older contracts keep working (`simple` mode even syncs).
//!
//! Built with a `describe-*` feature, `describe` itself misbehaves, so the
//! component fails to load: the tests put those builds in a connectors
//! folder.

#[cfg(not(feature = "contract-0-2"))]
wit_bindgen::generate!({
    path: "../../wit/0.1.0",
    world: "hr-connector",
});

// The types are 0.1.0's; 0.2.0 only added `host.progress`.
#[cfg(feature = "contract-0-2")]
wit_bindgen::generate!({
    path: "../../wit/0.2.0",
    world: "hr-connector",
});

use exports::hrsync::connector::hr_source::Guest;
use hrsync::connector::types::*;

struct Hostile;

fn mode(settings: &[Entry]) -> &str {
    settings.iter().find(|e| e.key == "mode").map(|e| e.value.as_str()).unwrap_or("")
}

fn setting<'a>(settings: &'a [Entry], key: &str) -> &'a str {
    settings.iter().find(|e| e.key == key).map(|e| e.value.as_str()).unwrap_or("")
}

impl Guest for Hostile {
    fn describe() -> ConnectorInfo {
        if cfg!(feature = "describe-panic") {
            panic!("hostile describe panicked on purpose");
        }
        if cfg!(feature = "describe-loop") {
            spin();
        }
        if cfg!(feature = "describe-memory") {
            hoard();
        }
        ConnectorInfo {
            id: "hostile".into(),
            name: "Hostile".into(),
            version: "0.0.1".into(),
            description: "Misbehaves on purpose.".into(),
            settings: vec![SettingSpec {
                key: "mode".into(),
                label: "Mode".into(),
                kind: SettingKind::Text,
                required: true,
                default_value: None,
                choices: vec![],
                help: "simple | trap | loop | memory | repeat-cursor | endless | bad-date | stranger \
                       | nondeterministic | diff-unknown | probe | egress | short-total | fields | bodies \
                       | log-flood | huge-field | stack-overflow | exit | lie-*"
                    .into(),
            }],
            capabilities: Capabilities::empty(),
            default_hosts: vec![],
        }
    }

    fn check(settings: Vec<Entry>) -> Result<CheckReport, ConnectorError> {
        // Reports what the sandbox lets the guest see.
        let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        let fs = match std::fs::read_dir("/") {
            Ok(entries) => format!("fs: listed {} entries", entries.count()),
            Err(e) => format!("fs: denied ({e})"),
        };
        let cwd_file = match std::fs::read("Cargo.toml") {
            Ok(_) => "file: read".to_string(),
            Err(e) => format!("file: denied ({e})"),
        };
        let port: u16 = setting(&settings, "port").parse().unwrap_or(80);
        Ok(CheckReport {
            account: None,
            readable: vec![],
            missing: vec![],
            warnings: vec![format!("env: {} variables", env.len()), fs, cwd_file, tcp_probe(port)],
        })
    }

    fn fetch_page(settings: Vec<Entry>, request: FetchRequest) -> Result<Page, ConnectorError> {
        match mode(&settings) {
            "trap" => panic!("hostile connector trapped on purpose"),
            "loop" => spin(),
            "memory" => hoard(),
            "stack-overflow" => Ok(Page { records: vec![], next_cursor: None, total: Some(recurse(0)) }),
            "exit" => std::process::exit(0),
            "fields" => Err(ConnectorError::BadResponse(host_header_sets(4 << 10, 2))),
            "big-fields" => Err(ConnectorError::BadResponse(host_header_sets(64 << 10, 1))),
            "bodies" => Err(ConnectorError::BadResponse(host_bodies())),
            "log-flood" => {
                // 100 MB of log with newlines that would forge host log lines.
                let line = "flood\n2026-12-02T00:00:00Z  INFO hrsync: forged line\n".repeat(400);
                for _ in 0..5_000 {
                    hrsync::connector::host::log(hrsync::connector::host::Level::Info, &line);
                }
                Ok(Page {
                    records: vec![RawRecord { source_id: "1".into(), payload: "{}".into() }],
                    next_cursor: None,
                    total: Some(1),
                })
            }
            // Claims more people than it returns: a fetch that did not cover the source.
            "short-total" => Ok(Page {
                records: vec![
                    RawRecord { source_id: "1".into(), payload: "{}".into() },
                    RawRecord { source_id: "2".into(), payload: "{}".into() },
                ],
                next_cursor: None,
                total: Some(3),
            }),
            // Nobody in the source: the directory's people are absent.
            "lie-deactivate-early" | "lie-missing-count" => {
                Ok(Page { records: vec![], next_cursor: None, total: Some(0) })
            }
            "repeat-cursor" => Ok(Page {
                records: vec![RawRecord {
                    source_id: request.cursor.clone().unwrap_or("a".into()) + "x",
                    payload: "{}".into(),
                }],
                next_cursor: Some("same".into()),
                total: None,
            }),
            // New cursors forever: paging that never ends.
            "endless" => {
                let n: u64 = request.cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
                Ok(Page {
                    records: vec![RawRecord { source_id: format!("p{n}"), payload: "{}".into() }],
                    next_cursor: Some((n + 1).to_string()),
                    total: None,
                })
            }
            "egress" => {
                let url = setting(&settings, "url");
                match waki_free_get(url) {
                    Ok(()) => Ok(Page { records: vec![], next_cursor: None, total: Some(0) }),
                    Err(e) => Err(ConnectorError::Unreachable(e)),
                }
            }
            _ => Ok(Page {
                records: vec![RawRecord { source_id: "1".into(), payload: "{}".into() }],
                next_cursor: None,
                total: Some(1),
            }),
        }
    }

    fn map_fields(settings: Vec<Entry>, records: Vec<RawRecord>) -> Result<Mapped, ConnectorError> {
        let mut person = Person {
            source_id: records.first().map(|r| r.source_id.clone()).unwrap_or_default(),
            employee_id: None,
            first_name: "Mallory".into(),
            last_name: "Hostile".into(),
            preferred_name: None,
            email: Some(match setting(&settings, "email") {
                "" => "mallory@example.com".into(),
                other => other.into(),
            }),
            gender: None,
            status: PersonStatus::Active,
            supervisor_id: None,
            start_date: None,
            termination_date: None,
            job_title: None,
            department: None,
            office: None,
            team: None,
            custom: vec![],
            profile_url: None,
        };
        match mode(&settings) {
            "bad-date" => person.start_date = Some(Date { year: 2024, month: 2, day: 30 }),
            "huge-field" => person.job_title = Some("J".repeat(5 << 20)),
            "lie-update-inactive" => person.status = PersonStatus::Inactive,
            "stranger" => person.source_id = "never-fetched".into(),
            // Different on every call: not a function of its input.
            "nondeterministic" => {
                static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                person.job_title = Some(format!("call {n}"));
            }
            _ => {}
        }
        Ok(Mapped { people: vec![person], issues: vec![] })
    }

    fn diff(
        settings: Vec<Entry>,
        current: Vec<DirectoryUser>,
        incoming: Vec<Person>,
        _: DiffOptions,
    ) -> Result<Plan, ConnectorError> {
        if matches!(mode(&settings), "simple" | "huge-field") {
            // Well behaved enough to sync: create whoever is new.
            let known: Vec<&str> = current.iter().filter_map(|u| u.source_id.as_deref()).collect();
            let changes = incoming.into_iter().filter(|p| !known.contains(&p.source_id.as_str())).map(Change::Create);
            return Ok(Plan { changes: changes.collect(), issues: vec![] });
        }
        if let Some(lie) = mode(&settings).strip_prefix("lie-") {
            return Ok(Plan { changes: lie_about(lie, &current, incoming), issues: vec![] });
        }
        if mode(&settings) == "diff-unknown" {
            // Updates a user the directory never had.
            let person = incoming.into_iter().next().expect("someone");
            let changes = vec![FieldChange { field: "job-title".into(), before: None, after: Some("x".into()) }];
            return Ok(Plan {
                changes: vec![Change::Update(UserUpdate { user_id: 999_999, person, changes })],
                issues: vec![],
            });
        }
        Ok(Plan { changes: vec![], issues: vec![] })
    }
}

/// Plans that break one rule each, about a directory that holds Mallory
/// (source id `1`, created by a `simple` run).
fn lie_about(lie: &str, current: &[DirectoryUser], incoming: Vec<Person>) -> Vec<Change> {
    let mallory = current.iter().find(|u| u.source_id.as_deref() == Some("1"));
    let user_id = mallory.map_or(0, |u| u.user_id);
    let fetched = incoming.into_iter().next();
    let update = |person: Person| UserUpdate { user_id, person, changes: vec![] };
    match (lie, fetched) {
        // Deactivated as missing, though this very fetch returned her.
        ("deactivate-present", _) => vec![Change::Deactivate(Deactivation {
            user_id,
            reason: DeactivationReason::MissingFromSource,
            person: None,
            changes: vec![],
        })],
        // Absent once, deactivated at once (the integration waits for 2).
        ("deactivate-early", _) => vec![Change::Deactivate(Deactivation {
            user_id,
            reason: DeactivationReason::MissingFromSource,
            person: None,
            changes: vec![],
        })],
        ("missing-count", _) => vec![Change::Missing(MissingUser { user_id, runs: 5 })],
        ("missing-incremental", _) => vec![Change::Missing(MissingUser { user_id, runs: 1 })],
        // Inactive in the source, the fetched person says active.
        ("deactivate-active", Some(p)) => vec![Change::Deactivate(Deactivation {
            user_id,
            reason: DeactivationReason::InactiveInSource,
            person: Some(p),
            changes: vec![],
        })],
        ("reactivate-active", Some(p)) => vec![Change::Reactivate(update(p))],
        ("update-inactive", Some(p)) => vec![Change::Update(update(p))],
        // A person nobody fetched.
        ("create-stranger", Some(mut p)) => {
            p.source_id = "ghost".into();
            p.email = Some("ghost@example.com".into());
            vec![Change::Create(p)]
        }
        // The fetched person, with a job title map-fields never gave.
        ("create-altered", Some(mut p)) => {
            p.job_title = Some("Chief Everything".into());
            vec![Change::Create(p)]
        }
        // The fetched person, with a date that is no calendar date.
        ("create-bad-date", Some(mut p)) => {
            p.start_date = Some(Date { year: 2024, month: 2, day: 30 });
            vec![Change::Create(p)]
        }
        _ => vec![],
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 16 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// Endless recursion: overflows the guest's stack.
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 16]);
    if frame[0] == u64::MAX {
        return 0;
    }
    recurse(frame[3] + 1) + frame[7]
}

/// Header sets of `values` values of `value_bytes` each, all kept: memory the host holds
/// for the guest, outside its linear memory. Returns how far it got, if the
/// host refused without stopping the connector.
#[cfg(target_family = "wasm")]
fn host_header_sets(value_bytes: usize, values: usize) -> String {
    use wasi::http::types::Fields;
    let value = vec![b'x'; value_bytes];
    let mut kept = Vec::new();
    loop {
        let fields = Fields::new();
        for n in 0..values {
            if fields.append(&format!("x-{n}"), &value).is_err() {
                break;
            }
        }
        kept.push(fields);
        if kept.len() > 1_000_000 {
            return format!("kept {} header sets", kept.len());
        }
    }
}

/// Requests whose bodies are written as far as the host lets, never sent.
#[cfg(target_family = "wasm")]
fn host_bodies() -> String {
    use wasi::http::types::{Fields, OutgoingRequest};
    let mut kept = Vec::new();
    loop {
        let request = OutgoingRequest::new(Fields::new());
        let Ok(body) = request.body() else { return "no body".into() };
        let Ok(stream) = body.write() else { return "no stream".into() };
        while let Ok(n) = stream.check_write() {
            if n == 0 || stream.write(&vec![0u8; n.min(1 << 20) as usize]).is_err() {
                break;
            }
        }
        kept.push((request, body, stream));
        if kept.len() > 1_000_000 {
            return format!("kept {} bodies", kept.len());
        }
    }
}

#[cfg(not(target_family = "wasm"))]
fn host_header_sets(_: usize, _: usize) -> String {
    "not natively".into()
}

#[cfg(not(target_family = "wasm"))]
fn host_bodies() -> String {
    "not natively".into()
}

/// Tries a raw TCP connection through wasi:sockets.
#[cfg(target_family = "wasm")]
fn tcp_probe(port: u16) -> String {
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let socket = match wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(s) => s,
        Err(e) => return format!("tcp: denied at create ({e:?})"),
    };
    let network = wasi::sockets::instance_network::instance_network();
    let addr = IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (127, 0, 0, 1) });
    if let Err(e) = socket.start_connect(&network, addr) {
        return format!("tcp: denied at connect ({e:?})");
    }
    socket.subscribe().block();
    match socket.finish_connect() {
        Ok(_) => "tcp: connected".into(),
        Err(e) => format!("tcp: denied at finish ({e:?})"),
    }
}

#[cfg(not(target_family = "wasm"))]
fn tcp_probe(_port: u16) -> String {
    "tcp: not probed natively".into()
}

/// A plain wasi:http GET, to test the egress point.
#[cfg(target_family = "wasm")]
fn waki_free_get(url: &str) -> Result<(), String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, OutgoingRequest, Scheme};
    let rest = url.strip_prefix("http://").ok_or("only http:// urls")?;
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&Scheme::Http)).map_err(|_| "scheme")?;
    request.set_authority(Some(authority)).map_err(|_| "authority")?;
    request.set_path_with_query(Some(&path)).map_err(|_| "path")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(_))) => Ok(()),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        other => Err(format!("{other:?}")),
    }
}

#[cfg(not(target_family = "wasm"))]
fn waki_free_get(_url: &str) -> Result<(), String> {
    Err("not natively".into())
}

#[cfg(target_family = "wasm")]
export!(Hostile);
