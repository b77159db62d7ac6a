//! The `hrsync` binary as users run it: output, `--json` and exit codes.

use std::process::{Command, Output};

use serde_json::Value;

fn hrsync(args: &[&str]) -> Output {
    let data = std::env::temp_dir().join("hrsync-cli-tests");
    Command::new(env!("CARGO_BIN_EXE_hrsync"))
        .arg("--data-dir")
        .arg(&data)
        .args(args)
        .env_remove("HRSYNC_CLIENT_SECRET")
        .output()
        .expect("run hrsync")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_pulls_the_sandbox_company_through_the_connector() {
    let data = std::env::temp_dir().join(format!("hrsync-cli-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let out = hrsync_in(&data, &["demo", "--once", "--bind", "127.0.0.1:0", "--people", "150"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let created: usize = text
        .split(" created")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of created users: {text}"));
    assert!(created > 130 && created <= 150, "{text}");
    assert!(text.contains(&format!("The directory now has {created} users")), "{text}");
    assert!(text.contains("reports to"), "{text}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn fetch_json_summarises_a_sandbox_company() {
    // v1: pages of 100 (a v2 fetch of 321 people waits out Personio's
    // 300 requests a minute; v2 has its own tests).
    let out = hrsync(&["fetch", "--sandbox", "321", "--setting", "api-version=v1", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON on stdout");
    assert_eq!(v["people"], 321);
    assert_eq!(v["pages"], 4);
    let by_status: u64 = v["by_status"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(by_status, 321);
    assert!(v["issues"].as_array().unwrap().iter().all(|i| i["message"].is_string()));
}

#[test]
fn connectors_lists_the_bundled_connectors_with_their_wit_version() {
    let out = hrsync(&["connectors", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[1]["id"], "csv-export");
    assert_eq!(v[1]["wit_version"], "0.4.0");
    assert_eq!(v[1]["events"], serde_json::Value::Null, "a CSV file cannot push changes");
    assert_eq!(v[0]["id"], "personio");
    assert_eq!(v[0]["wit_version"], "0.4.0");
    assert!(v[0]["events"].as_str().unwrap().contains("webhooks"), "{}", v[0]);
    assert_eq!(v[0]["default_hosts"][0], "https://api.personio.de");
}

#[test]
fn wrong_credentials_exit_with_the_source_code_and_say_what_to_fix() {
    let out = hrsync(&["check", "--sandbox", "5", "--client-secret", "s3cr3t-do-not-print"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("Check them in the settings"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("s3cr3t-do-not-print"), "the secret is not echoed: {}", stderr(&out));
}

#[test]
fn invalid_settings_exit_with_the_input_code() {
    let out = hrsync(&["fetch", "--sandbox", "5", "--setting", "import-statuses=fired"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("import-statuses"), "{}", stderr(&out));
    let out = hrsync(&["fetch", "--sandbox", "5", "--setting", "no-such-setting=1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("has no setting `no-such-setting`"), "{}", stderr(&out));
}

#[test]
fn a_file_that_is_not_a_component_is_listed_as_not_loaded_by_name() {
    let path = std::env::temp_dir().join("hrsync-cli-not-a-component.wasm");
    std::fs::write(&path, b"not wasm at all").unwrap();
    let out = hrsync(&["connectors", "--connector", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "the others still load: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("personio") && text.contains("Not loaded:"), "{text}");
    assert!(text.contains("hrsync-cli-not-a-component.wasm is not a valid WebAssembly component"), "{text}");
    let json = hrsync(&["connectors", "--json", "--connector", path.to_str().unwrap()]);
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let failed: Vec<_> = list.as_array().unwrap().iter().filter(|c| c["loaded"] == false).collect();
    assert_eq!(failed.len(), 1, "{list}");
    assert!(failed[0]["error"].as_str().unwrap().contains("not a valid WebAssembly component"), "{list}");
}

#[test]
fn a_connector_file_is_loaded_at_runtime_and_replaces_the_bundled_build() {
    let dir = std::env::temp_dir().join(format!("hrsync-cli-connectors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("personio-local.wasm");
    std::fs::write(&path, hrsync::connectors::BUNDLED_PERSONIO).unwrap();
    let out = hrsync(&["connectors", "--json", "--connectors-dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ids: Vec<&str> = v.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["personio", "csv-export"], "same id: the file replaces the bundled build");
    assert_eq!(v[0]["origin"], path.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs hrsync with its own data directory.
fn hrsync_in(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hrsync"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("HRSYNC_CLIENT_SECRET")
        .env_remove("HRSYNC_SECRET_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run hrsync")
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}\n{}", stdout(o), stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[tokio::test(flavor = "multi_thread")]
async fn integration_preview_import_history_users_and_revert_from_the_command_line() {
    use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Edit, Sandbox, SandboxConfig, Status};
    let sandbox = Sandbox::new(SandboxConfig::new(40, 5));
    let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let data = std::env::temp_dir().join(format!("hrsync-cli-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let d = data.clone();
    let url = running.url.clone();
    let run = move |args: Vec<String>| {
        let d = d.clone();
        std::thread::spawn(move || hrsync_in(&d, &args.iter().map(String::as_str).collect::<Vec<_>>())).join().unwrap()
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let out = run(args(&[
        "integration",
        "add",
        "--name",
        "Acme",
        "--url",
        &url,
        "--client-id",
        DEMO_CLIENT_ID,
        "--client-secret",
        DEMO_CLIENT_SECRET,
        "--setting",
        "import-statuses=active,onboarding,leave,inactive",
        // API v1 reads a hundred people a request; v2 has its own tests.
        "--setting",
        "api-version=v1",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let list = json(&run(args(&["integration", "list", "--json"])));
    assert_eq!(list[0]["settings"]["client-secret"], serde_json::json!({"stored": true}));
    assert!(!stdout(&run(args(&["integration", "list", "--json"]))).contains(DEMO_CLIENT_SECRET));

    let out = run(args(&["import"]));
    assert_eq!(out.status.code(), Some(2), "asks before applying: {}", stderr(&out));
    assert!(stderr(&out).contains("--yes"));

    let preview = json(&run(args(&["preview", "--json"])));
    let created = preview["run"]["counts"]["created"].as_u64().unwrap();
    assert!(created > 30);
    let preview_id = preview["run"]["id"].as_i64().unwrap().to_string();
    let import = json(&run(args(&["import", "--yes", "--from-preview", &preview_id, "--json"])));
    assert_eq!(import["run"]["counts"]["created"].as_u64(), Some(created));
    let users = json(&run(args(&["users", "--json"])));
    assert_eq!(users["total"].as_u64(), Some(created));
    // Every field of a user, as the API shows them.
    let first = &users["users"][0];
    for key in [
        "id",
        "email",
        "name",
        "first_name",
        "last_name",
        "preferred_name",
        "gender",
        "status",
        "manager_id",
        "job_title",
        "employee_id",
        "department",
        "office",
        "team",
        "start_date",
        "termination_date",
        "custom",
        "integration_id",
        "source_id",
        "informed_at",
        "created_at",
        "updated_at",
    ] {
        assert!(first.get(key).is_some(), "users --json lacks `{key}`: {first}");
    }
    assert!(users["users"].as_array().unwrap().iter().any(|u| u["gender"].is_string()), "{users}");
    assert!(users["users"].as_array().unwrap().iter().any(|u| u["start_date"].is_string()), "{users}");

    // Automation, emails, interval and safeguards from the command line.
    // Password emails greet people with the company's name: none, no emails.
    let refused = run(args(&["integration", "set", "--send-emails", "on"]));
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("--company-name"), "{}", stderr(&refused));
    assert_eq!(json(&run(args(&["integration", "list", "--json"])))[0]["send_emails"], false, "nothing changed");
    let out = run(args(&[
        "integration",
        "set",
        "--auto-import",
        "on",
        "--send-emails",
        "on",
        "--company-name",
        "Acme Robotics",
        "--interval",
        "30",
        "--max-deactivate-percent",
        "35",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("automatic imports, password emails, interval, safeguards"), "{}", stdout(&out));
    let list = json(&run(args(&["integration", "list", "--json"])));
    assert_eq!(
        (&list[0]["auto_import"], &list[0]["send_emails"], &list[0]["interval_minutes"]),
        (&serde_json::json!(true), &serde_json::json!(true), &serde_json::json!(30))
    );
    assert_eq!(list[0]["max_deactivate_share"].as_f64(), Some(0.35));
    let refused = run(args(&["integration", "set", "--interval", "2"]));
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("interval"), "{}", stderr(&refused));
    assert_eq!(json(&run(args(&["integration", "list", "--json"])))[0]["interval_minutes"], 30, "nothing changed");
    let out = run(args(&["integration", "set", "--auto-import", "off"]));
    assert!(out.status.success(), "{}", stderr(&out));
    // The company's name was stored: emails can be turned off and on again without it.
    for toggle in ["off", "on"] {
        let out = run(args(&["integration", "set", "--send-emails", toggle]));
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Terminate most of the company: the safeguard stops the import.
    for e in sandbox.employees().iter().filter(|e| e.status == Status::Active).skip(1) {
        sandbox.apply(e.id, Edit { status: Some(Status::Inactive), ..Edit::default() }).unwrap();
    }
    let blocked = run(args(&["import", "--yes"]));
    assert_eq!(blocked.status.code(), Some(5), "{}", stderr(&blocked));
    assert!(stderr(&blocked).contains("safeguard"), "{}", stderr(&blocked));
    let forced = json(&run(args(&["import", "--yes", "--override", "--json"])));
    let import_id = forced["run"]["id"].as_i64().unwrap().to_string();
    assert!(forced["run"]["counts"]["deactivated"].as_u64().unwrap() > 10);

    let history = json(&run(args(&["history", "--json"])));
    let states: Vec<&str> = history.as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["succeeded", "blocked", "succeeded", "succeeded"]);
    let drill = json(&run(args(&["history", &import_id, "--json"])));
    assert!(drill["changes"].as_array().unwrap().iter().all(|c| c["kind"] == "deactivate"));

    let reverted = json(&run(args(&["revert", &import_id, "--yes", "--json"])));
    assert_eq!(reverted["run"]["kind"], "revert");
    let active = json(&run(args(&["users", "--json", "--search", "acme.example"])));
    assert!(active["users"].as_array().unwrap().iter().filter(|u| u["status"] == "inactive").count() < 10);
    running.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn serve_takes_its_address_and_data_dir_from_a_config_file_and_flags_override_it() {
    let dir = std::env::temp_dir().join(format!("hrsync-cli-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let file = dir.join("hrsync.toml");
    std::fs::write(&file, format!("bind = \"127.0.0.1:{port}\"\ndata_dir = \"from-file\"\n")).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_hrsync"))
        .args(["--config", file.to_str().unwrap(), "serve"])
        .env("HRSYNC_ADMIN_PASSWORD", "a long enough password")
        .env_remove("HRSYNC_DATA_DIR")
        .env_remove("HRSYNC_BIND")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut answered = false;
    for _ in 0..200 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).unwrap();
            answered = reply.starts_with("HTTP/1.1 200");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(answered, "hrsync serve did not answer on the configured port {port}");
    assert!(dir.join("from-file/hrsync.db").exists(), "the data dir is taken relative to the config file");

    // A flag beats the file; a typo in the file is an input error naming it.
    let out = hrsync_in(&dir.join("from-flag"), &["--config", file.to_str().unwrap(), "users", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("from-flag/hrsync.db").exists());
    std::fs::write(&file, "bnid = \"127.0.0.1:1\"\n").unwrap();
    let out = hrsync_in(&dir, &["--config", file.to_str().unwrap(), "serve"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("hrsync.toml") && stderr(&out).contains("bnid"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `hrsync connectors | head -0`: the reader is gone before hrsync writes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let data = std::env::temp_dir().join(format!("hrsync-cli-pipe-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_hrsync"))
        .arg("--data-dir")
        .arg(&data)
        .arg("connectors")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(stderr(&out).is_empty(), "nothing on stderr: {}", stderr(&out));
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "ended by SIGPIPE like any Unix tool: {:?}",
        out.status
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn help_lists_every_key_of_the_config_file() {
    let out = hrsync(&["--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let help = stdout(&out);
    // Every key FileConfig and the [smtp] table accept (both refuse others).
    for key in [
        "bind",
        "data_dir",
        "connectors_dir",
        "public_url",
        "company_name",
        "alert_emails",
        "requests_per_minute",
        "trusted_proxies",
        "host",
        "port",
        "security",
        "username",
        "from",
        "ca_file",
    ] {
        assert!(help.contains(&format!(" {key} = ")), "--help lacks `{key} = …`: {help}");
    }
    assert!(help.contains("[smtp]") && help.contains("HRSYNC_SMTP_PASSWORD"), "{help}");
    let short = stdout(&hrsync(&["-h"]));
    assert!(short.contains("--help lists its keys"), "{short}");
}

#[test]
fn connector_check_passes_the_bundled_connector_and_fails_a_file_that_is_not_one() {
    let out = hrsync(&["connector", "check", "--sandbox", "120"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("PASS diff") && text.contains("PASS events") && text.contains("all 9 checks passed"),
        "{text}"
    );
    assert!(text.contains("the host's memory grew by at most"), "the host's peak is reported: {text}");

    let bogus = std::env::temp_dir().join(format!("hrsync-not-a-component-{}.wasm", std::process::id()));
    std::fs::write(&bogus, b"not wasm").unwrap();
    let out = hrsync(&["connector", "check", bogus.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("a JSON report");
    assert_eq!(report["checks"][0]["name"], "loads");
    assert_eq!(report["checks"][0]["passed"], false);
    let _ = std::fs::remove_file(&bogus);
}

/// Two hrsync processes on one data directory: reading history leaves a
/// running import alone, a second import exits 7 naming the first, and
/// `hrsync cancel` stops the first (exit 8), nothing applied.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_sees_the_run_refuses_a_second_import_and_can_cancel_it() {
    use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Fault, Sandbox, SandboxConfig};
    let sandbox = Sandbox::new(SandboxConfig::new(300, 5));
    let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let data = std::env::temp_dir().join(format!("hrsync-cli-lease-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let run = |args: Vec<String>| {
        let d = data.clone();
        std::thread::spawn(move || hrsync_in(&d, &args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let added = run(args(&[
        "integration",
        "add",
        "--name",
        "Acme",
        "--url",
        &running.url,
        "--client-id",
        DEMO_CLIENT_ID,
        "--client-secret",
        DEMO_CLIENT_SECRET,
        // The slow pages below are v1 pages.
        "--setting",
        "api-version=v1",
    ]))
    .join()
    .unwrap();
    assert!(added.status.success(), "{}", stderr(&added));

    // Slow pages keep the first import busy for a while.
    sandbox.inject(std::iter::repeat_n(Fault::Slow { millis: 1_000 }, 30));
    let first = run(args(&["import", "--yes"]));
    let run_id = loop {
        let history = json(&run(args(&["history", "--json"])).join().unwrap());
        if let Some(r) = history.as_array().unwrap().first() {
            assert_eq!(r["state"], "running", "reading history leaves it running: {r}");
            break r["id"].as_i64().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let second = run(args(&["import", "--yes"])).join().unwrap();
    assert_eq!(second.status.code(), Some(7), "{}", stderr(&second));
    let text = stderr(&second);
    assert!(text.contains(&format!("is busy: run {run_id} (manual import")) && text.contains("process "), "{text}");

    let cancel = run(args(&["cancel", &run_id.to_string()])).join().unwrap();
    assert!(cancel.status.success(), "{}{}", stdout(&cancel), stderr(&cancel));
    assert!(stdout(&cancel).contains(&format!("Run {run_id} was cancelled")), "{}", stdout(&cancel));
    let first = first.join().unwrap();
    assert_eq!(first.status.code(), Some(8), "the cancelled import says so: {}", stderr(&first));
    assert!(stderr(&first).contains(&format!("run {run_id} was cancelled")), "{}", stderr(&first));
    let users = json(&run(args(&["users", "--json"])).join().unwrap());
    assert_eq!(users["total"], 0, "nothing applied");
    running.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// A component in the connectors folder that does not load: `serve` starts
/// anyway, and the API and the Integrations page say which and why.
#[tokio::test(flavor = "multi_thread")]
async fn serve_starts_with_a_broken_connector_in_its_folder_and_says_why() {
    use crate::common::request;
    let data = std::env::temp_dir().join(format!("hrsync-cli-broken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(data.join("connectors")).unwrap();
    std::fs::write(data.join("connectors/broken.wasm"), b"not a component at all").unwrap();
    // Created readable by others, as an old hrsync or a careless copy would: named at start.
    #[cfg(unix)]
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// Stops the server however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Stop(
        Command::new(env!("CARGO_BIN_EXE_hrsync"))
            .args(["--data-dir", data.to_str().unwrap(), "serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("HRSYNC_ADMIN_PASSWORD", "a long enough password")
            .env("HRSYNC_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "serve did not start");
    {
        let login = request(
            "POST",
            &format!("{base}/api/v1/session"),
            &[("Content-Type", "application/json")],
            r#"{"username":"admin","password":"a long enough password"}"#,
        )
        .await;
        assert_eq!(login.status, 200, "{}", login.body);
        let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
        let list = request("GET", &format!("{base}/api/v1/connectors"), &[("Cookie", &cookie)], "").await.json();
        let failed: Vec<&Value> = list.as_array().unwrap().iter().filter(|c| c["loaded"] == false).collect();
        assert_eq!(failed.len(), 1, "{list}");
        assert!(failed[0]["origin"].as_str().unwrap().ends_with("broken.wasm"), "{list}");
        assert!(failed[0]["error"].as_str().unwrap().contains("not a valid WebAssembly component"), "{list}");
        assert!(list.as_array().unwrap().iter().any(|c| c["id"] == "personio"), "the others load: {list}");
        let page = request("GET", &format!("{base}/integrations"), &[("Cookie", &cookie)], "").await;
        assert!(page.body.contains("Not loaded") && page.body.contains("broken.wasm"), "{}", page.body);
    }
    let _ = server.0.kill();
    let mut warnings = String::new();
    std::io::Read::read_to_string(&mut server.0.stderr.take().unwrap(), &mut warnings).unwrap();
    #[cfg(unix)]
    assert!(warnings.contains("is 755, readable by others: chmod 700"), "{warnings}");
    let _ = std::fs::remove_dir_all(&data);
}

/// `hrsync admin` manages accounts (the way back in when nobody can sign
/// in) and `hrsync audit` shows what they did; the data directory stays
/// private to its owner.
#[test]
fn accounts_are_managed_and_audited_from_the_command_line_in_a_private_data_dir() {
    let data = std::env::temp_dir().join(format!("hrsync-cli-admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let run = |args: &[&str], password: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hrsync"));
        c.arg("--data-dir").arg(&data).args(args).env("USER", "ops").env_remove("HRSYNC_NEW_PASSWORD");
        if let Some(p) = password {
            c.env("HRSYNC_NEW_PASSWORD", p);
        }
        c.output().unwrap()
    };
    let added = run(&["admin", "add", "olga", "--role", "operator"], None);
    assert!(added.status.success(), "{}", stderr(&added));
    let printed = stdout(&added);
    let password = printed.split("Initial password (shown once): ").nth(1).unwrap().trim().to_string();
    assert!(password.len() >= 12, "{printed}");
    let taken = run(&["admin", "add", "olga"], Some("another long password"));
    assert_eq!(taken.status.code(), Some(2), "{}", stderr(&taken));
    assert!(stderr(&taken).contains("exists already"), "{}", stderr(&taken));
    assert!(run(&["admin", "add", "ann", "--role", "admin"], Some("ann's long password")).status.success());

    let list: Value = serde_json::from_slice(&run(&["admin", "list", "--json"], None).stdout).unwrap();
    let roles: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["username"].as_str().unwrap(), a["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [("ann", "admin"), ("olga", "operator")]);

    assert!(run(&["admin", "role", "olga", "viewer"], None).status.success());
    assert!(run(&["admin", "disable", "olga"], None).status.success());
    let last = run(&["admin", "disable", "ann"], None);
    assert_eq!(last.status.code(), Some(2), "the last admin stays: {}", stderr(&last));
    assert!(stderr(&last).contains("last enabled admin"), "{}", stderr(&last));
    let reset = run(&["admin", "reset-password", "ann"], Some("a brand new admin password"));
    assert!(reset.status.success() && !stdout(&reset).contains("a brand new"), "{}", stdout(&reset));

    let audit: Value = serde_json::from_slice(&run(&["audit", "--json"], None).stdout).unwrap();
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["password-reset", "account-disabled", "role-changed", "account-created", "account-created"]);
    assert!(audit["entries"].as_array().unwrap().iter().all(|e| e["actor"] == "cli:ops" && e["address"] == "cli"));
    let only = stdout(&run(&["audit", "--action", "role-changed"], None));
    assert!(only.contains("account olga") && only.contains("viewer") && !only.contains("account-created"), "{only}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700, "the data dir is the owner's");
        for file in ["hrsync.db", "secret.key"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
        if data.join("hrsync.db-wal").exists() {
            assert_eq!(mode(&data.join("hrsync.db-wal")), 0o600, "the WAL follows the database");
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn people_are_added_edited_uploaded_and_kept_from_the_command_line() {
    let data = std::env::temp_dir().join(format!("hrsync-cli-people-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let add = ["user", "add", "--set", "email=ada@example.com", "--set", "first-name=Ada", "--set", "last-name=L"];
    let added = hrsync_in(&data, &[&add[..], &["--json"]].concat());
    assert!(added.status.success(), "{}", stderr(&added));
    let ada = json(&added)["id"].as_i64().unwrap().to_string();
    let missing = hrsync_in(&data, &["user", "add", "--set", "email=x@example.com"]);
    assert!(!missing.status.success() && stderr(&missing).contains("First name is required"), "{}", stderr(&missing));

    let edited =
        hrsync_in(&data, &["user", "edit", &ada, "--set", "job-title=CTO", "--set", "status=inactive", "--json"]);
    assert!(edited.status.success(), "{}", stderr(&edited));
    assert_eq!(
        (json(&edited)["job_title"].as_str(), json(&edited)["status"].as_str()),
        (Some("CTO"), Some("inactive"))
    );

    // A file with one wrong line writes nothing and says which line.
    let file = data.join("people.csv");
    std::fs::write(
        &file,
        "Email,First name,Last name,Manager email\nbob@example.com,Bob,B,ada@example.com\nnot-an-email,C,D,\n",
    )
    .unwrap();
    let wrong = hrsync_in(&data, &["user", "import", file.to_str().unwrap()]);
    assert!(!wrong.status.success());
    assert!(stderr(&wrong).contains("line 3: email"), "{}", stderr(&wrong));
    assert!(stdout(&wrong).contains("nothing was written"), "{}", stdout(&wrong));
    std::fs::write(&file, "Email,First name,Last name,Manager email\nbob@example.com,Bob,B,ada@example.com\n").unwrap();
    let fine = hrsync_in(&data, &["user", "import", file.to_str().unwrap()]);
    assert!(fine.status.success(), "{}", stderr(&fine));
    assert!(stdout(&fine).starts_with("1 new, 0 updated"), "{}", stdout(&fine));
    let users = json(&hrsync_in(&data, &["users", "--json"]));
    let bob = users["users"].as_array().unwrap().iter().find(|u| u["email"] == "bob@example.com").unwrap().clone();
    assert_eq!(bob["manager_id"].as_i64().map(|m| m.to_string()), Some(ada.clone()));

    // Kept values: keep, list, remove; the status is never kept.
    let kept = hrsync_in(&data, &["override", "keep", &ada, "job-title", "--until", "2027-03-31"]);
    assert!(kept.status.success() && stdout(&kept).contains("at CTO"), "{}{}", stdout(&kept), stderr(&kept));
    let list = hrsync_in(&data, &["override", "list", "--json"]);
    assert_eq!(json(&list)[0]["until"], "2027-03-31", "{}", stdout(&list));
    let status = hrsync_in(&data, &["override", "keep", &ada, "status"]);
    assert!(!status.status.success() && stderr(&status).contains("HR system"), "{}", stderr(&status));
    let removed = hrsync_in(&data, &["override", "remove", &ada, "job-title"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let again = hrsync_in(&data, &["override", "remove", &ada, "job-title"]);
    assert!(!again.status.success() && stderr(&again).contains("override list"), "{}", stderr(&again));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn tenants_are_added_listed_and_disabled_on_postgres_and_refused_on_sqlite() {
    let data = std::env::temp_dir().join(format!("hrsync-cli-tenants-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let on_sqlite = hrsync_in(&data, &["tenant", "list"]);
    assert_eq!(on_sqlite.status.code(), Some(2), "{}", stderr(&on_sqlite));
    assert!(stderr(&on_sqlite).contains("tenants need a PostgreSQL database"), "{}", stderr(&on_sqlite));
    let unknown = hrsync_in(&data, &["--tenant", "globex", "users"]);
    assert!(stderr(&unknown).contains("a SQLite install serves one company"), "{}", stderr(&unknown));

    let cluster = hrsync_pg_cluster::Cluster::start().expect("a PostgreSQL cluster (apt-get install postgresql)");
    let url = cluster.create_database("cli_tenants").unwrap();
    let pg = |args: &[&str]| {
        let mut all = vec!["--database-url", url.as_str()];
        all.extend_from_slice(args);
        Command::new(env!("CARGO_BIN_EXE_hrsync"))
            .arg("--data-dir")
            .arg(&data)
            .args(&all)
            .env("HRSYNC_NEW_PASSWORD", "a long enough password")
            .env_remove("HRSYNC_SECRET_KEY")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run hrsync")
    };
    let added = pg(&["tenant", "add", "acme-gmbh", "--name", "Acme GmbH", "--admin", "ann@acme.example"]);
    assert!(added.status.success(), "{}", stderr(&added));
    assert!(stdout(&added).contains("Added tenant `acme-gmbh` (Acme GmbH) with the admin `ann@acme.example`"));
    assert!(!stdout(&added).contains("a long enough password"), "a given password is not printed");

    let again = pg(&["tenant", "add", "acme-gmbh", "--name", "Acme", "--admin", "bob@acme.example"]);
    assert!(stderr(&again).contains("a tenant `acme-gmbh` exists already"), "{}", stderr(&again));
    let bad = pg(&["tenant", "add", "Acme_GmbH", "--name", "Acme", "--admin", "bob@acme.example"]);
    assert!(stderr(&bad).contains("is not a tenant slug"), "{}", stderr(&bad));
    // Usernames are unique across tenants: a taken one adds no tenant.
    let taken = pg(&["tenant", "add", "globex", "--name", "Globex", "--admin", "ann@acme.example"]);
    assert!(stderr(&taken).contains("an account named `ann@acme.example` exists already"), "{}", stderr(&taken));

    let tenants = json(&pg(&["tenant", "list", "--json"]));
    let slugs: Vec<&str> = tenants.as_array().unwrap().iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["acme-gmbh", "default"]);
    // Each tenant's commands see only its own accounts and directory.
    let accounts = json(&pg(&["--tenant", "acme-gmbh", "admin", "list", "--json"]));
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    assert_eq!(accounts[0]["username"], "ann@acme.example");
    assert!(json(&pg(&["admin", "list", "--json"])).as_array().unwrap().is_empty(), "the default tenant has none yet");
    assert_eq!(json(&pg(&["--tenant", "acme-gmbh", "users", "--json"]))["total"], 0);
    let missing = pg(&["--tenant", "nope", "users"]);
    assert!(stderr(&missing).contains("no tenant `nope`"), "{}", stderr(&missing));

    let disabled = pg(&["tenant", "disable", "acme-gmbh"]);
    assert!(disabled.status.success(), "{}", stderr(&disabled));
    let tenants = json(&pg(&["tenant", "list", "--json"]));
    assert!(tenants[0]["disabled_at"].is_string(), "{tenants}");
    assert!(!pg(&["tenant", "disable", "default"]).status.success(), "the platform's tenant stays");
    // The platform's audit log says who did it.
    let log = json(&pg(&["audit", "--json"]));
    let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["tenant-disabled", "tenant-added"]);
    let _ = std::fs::remove_dir_all(&data);
}
