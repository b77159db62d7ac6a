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
    let out = hrsync(&["demo", "--once", "--bind", "127.0.0.1:0", "--people", "150"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Fetched 150 people in 2 pages"), "{text}");
    assert!(text.contains("reports to"), "{text}");
}

#[test]
fn fetch_json_summarises_a_sandbox_company() {
    let out = hrsync(&["fetch", "--sandbox", "321", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON on stdout");
    assert_eq!(v["people"], 321);
    assert_eq!(v["pages"], 4);
    let by_status: u64 = v["by_status"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(by_status, 321);
    assert!(v["issues"].as_array().unwrap().iter().all(|i| i["message"].is_string()));
}

#[test]
fn connectors_lists_the_bundled_connector_with_its_wit_version() {
    let out = hrsync(&["connectors", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["id"], "personio");
    assert_eq!(v[0]["wit_version"], "0.1.0");
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
fn a_file_that_is_not_a_component_is_refused_by_name() {
    let path = std::env::temp_dir().join("hrsync-cli-not-a-component.wasm");
    std::fs::write(&path, b"not wasm at all").unwrap();
    let out = hrsync(&["connectors", "--connector", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("hrsync-cli-not-a-component.wasm is not a valid WebAssembly component"));
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
    assert_eq!(v.as_array().unwrap().len(), 1, "same id: the file replaces the bundled build");
    assert_eq!(v[0]["origin"], path.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
