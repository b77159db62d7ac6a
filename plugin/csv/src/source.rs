//! Reads the export: one authenticated GET, parsed into one raw record per
//! row. Rows that cannot be used (wrong number of fields, no id, an id used
//! twice, bad encoding) become error records that `map-fields` reports per
//! row, so one bad row never stops the import; a file that is not the
//! expected CSV at all fails the run with what is wrong, changing nothing.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use hrsync_connector_kit::errors::from_status;
use hrsync_connector_kit::types::{CheckReport, ConnectorError, MissingAttribute, Page, RawRecord, SourceAttribute};
use serde_json::json;

use crate::settings::{Auth, COLUMNS, Settings};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The URL for messages: a published export's query string may carry a
/// token, and messages reach logs and the run history.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The id of the error record for a row.
pub fn row_id(line: u64) -> String {
    format!("row:{line}")
}

/// The parsed file.
#[derive(Debug, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub records: Vec<RawRecord>,
    /// Rows turned into error records.
    pub bad_rows: usize,
}

/// GETs the export with the configured authentication.
pub fn download(settings: &Settings) -> Result<String, ConnectorError> {
    let mut request =
        waki::Client::new().get(&settings.url).header("Accept", "text/csv, text/plain").connect_timeout(TIMEOUT);
    match &settings.auth {
        Auth::None => {}
        Auth::Basic { username, password } => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            request = request.header("Authorization", format!("Basic {encoded}"));
        }
        Auth::Bearer(token) => request = request.header("Authorization", format!("Bearer {token}")),
    }
    let response = request.send().map_err(|e| {
        ConnectorError::Unreachable(format!(
            "could not reach {} ({e:#}); check the URL and the network",
            without_query(&settings.url)
        ))
    })?;
    let status = response.status_code();
    let retry_after = response.header("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    let body = response.body().map_err(|e| ConnectorError::Unreachable(format!("reading the export failed: {e:#}")))?;
    if !(200..300).contains(&status) {
        return Err(match status {
            401 | 403 => ConnectorError::CredentialsRejected(format!(
                "the export refused the credentials (HTTP {status}); check the authentication settings"
            )),
            _ => from_status(status, retry_after, "the CSV export"),
        });
    }
    String::from_utf8(body)
        .map_err(|_| ConnectorError::BadResponse("the export is not UTF-8 text; save the CSV as UTF-8".into()))
}

/// Parses the file. Pure: unit-tested natively.
pub fn parse(settings: &Settings, text: &str) -> Result<Table, ConnectorError> {
    let bad = |m: String| ConnectorError::BadResponse(m);
    let trimmed = text.trim_start_matches('\u{feff}');
    if trimmed.trim_start().starts_with('<') {
        return Err(bad("the URL returned HTML, not CSV; check that it points at the file itself".into()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(settings.delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(trimmed.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| bad(format!("the header row cannot be read: {e}")))?
        .iter()
        .map(String::from)
        .collect();
    let id_column = settings.column("id-column");
    let Some(id_at) = headers.iter().position(|h| h == id_column) else {
        return Err(bad(format!(
            "the export has no `{id_column}` column (its columns: {}); set the person id column or check the delimiter",
            headers.join(", ")
        )));
    };
    let mut records = Vec::new();
    let mut first_row: HashMap<String, u64> = HashMap::new();
    let mut bad_rows = 0;
    for (i, row) in reader.records().enumerate() {
        // Line numbers as a spreadsheet shows them: the header is line 1.
        let line = row.as_ref().ok().and_then(|r| r.position()).map_or(i as u64 + 2, |p| p.line());
        let error = |message: String| RawRecord {
            source_id: row_id(line),
            payload: json!({"row": line, "error": message}).to_string(),
        };
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                bad_rows += 1;
                records.push(error(format!("cannot be read: {e}")));
                continue;
            }
        };
        if row.iter().all(str::is_empty) {
            continue;
        }
        if row.len() != headers.len() {
            bad_rows += 1;
            records.push(error(format!("has {} fields, the header has {}", row.len(), headers.len())));
            continue;
        }
        let id = row.get(id_at).unwrap_or_default().to_string();
        if id.is_empty() {
            bad_rows += 1;
            records.push(error(format!("has no `{id_column}`")));
            continue;
        }
        if let Some(first) = first_row.get(&id) {
            bad_rows += 1;
            records.push(error(format!("uses the id `{id}` of row {first} again; ids must be unique")));
            continue;
        }
        first_row.insert(id.clone(), line);
        let values: serde_json::Map<String, serde_json::Value> =
            headers.iter().zip(row.iter()).map(|(h, v)| (h.clone(), json!(v))).collect();
        records.push(RawRecord { source_id: id, payload: json!({"row": line, "values": values}).to_string() });
    }
    Ok(Table { headers, records, bad_rows })
}

/// "Test connection": the headers are the readable attributes; configured
/// columns the file lacks are missing.
pub fn check(settings: &Settings) -> Result<CheckReport, ConnectorError> {
    let text = download(settings)?;
    let table = parse(settings, &text)?;
    let missing = COLUMNS
        .iter()
        .filter(|c| !table.headers.iter().any(|h| h == settings.column(c.key)))
        .map(|c| MissingAttribute {
            key: settings.column(c.key).to_string(),
            purpose: c.label.to_string(),
            hint: format!("add a `{}` column to the export, or pick the column that holds it", settings.column(c.key)),
            required: c.required,
        })
        .collect();
    let mut warnings = Vec::new();
    if table.bad_rows > 0 {
        warnings.push(format!("{} rows cannot be imported; the preview lists each with its line", table.bad_rows));
    }
    Ok(CheckReport {
        account: None,
        readable: table.headers.iter().map(|h| SourceAttribute { key: h.clone(), label: h.clone() }).collect(),
        missing,
        warnings,
    })
}

/// The whole file as one page.
pub fn fetch(settings: &Settings) -> Result<Page, ConnectorError> {
    let text = download(settings)?;
    let table = parse(settings, &text)?;
    let total = table.records.len() as u64;
    hrsync_connector_kit::progress(total, Some(total));
    Ok(Page { records: table.records, next_cursor: None, total: Some(total) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hrsync_connector_kit::types::Entry;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut entries = vec![Entry { key: "url".into(), value: "https://hr.acme.example/people.csv".into() }];
        entries.extend(pairs.iter().map(|(k, v)| Entry { key: k.to_string(), value: v.to_string() }));
        Settings::parse(&entries).unwrap()
    }

    #[test]
    fn rows_become_records_keyed_by_id_with_quoting_handled() {
        let text = "\u{feff}id,first_name,last_name,email\n1,Ada,Lovelace,ada@acme.example\n2,\"Grace, Rear Admiral\",Hopper,grace@acme.example\n";
        let t = parse(&settings(&[]), text).unwrap();
        assert_eq!(t.headers, ["id", "first_name", "last_name", "email"]);
        assert_eq!(t.records.len(), 2);
        assert_eq!(t.records[1].source_id, "2");
        assert!(t.records[1].payload.contains("Grace, Rear Admiral"));
        assert_eq!(t.bad_rows, 0);
    }

    #[test]
    fn bad_rows_are_records_of_their_own_and_never_stop_the_file() {
        let text = "id;first_name;last_name;email\n1;Ada;Lovelace;a@x.io\n;No;Id;n@x.io\n3;Short\n1;Again;Dup;d@x.io\n\n4;Ok;Fine;o@x.io\n";
        let t = parse(&settings(&[("delimiter", "semicolon")]), text).unwrap();
        let ids: Vec<&str> = t.records.iter().map(|r| r.source_id.as_str()).collect();
        assert_eq!(ids, ["1", "row:3", "row:4", "row:5", "4"]);
        assert_eq!(t.bad_rows, 3);
        assert!(t.records[2].payload.contains("has 2 fields, the header has 4"), "{}", t.records[2].payload);
        assert!(t.records[3].payload.contains("id `1` of row 2"), "{}", t.records[3].payload);
    }

    #[test]
    fn messages_never_show_the_query_string() {
        assert_eq!(without_query("https://x.io/p.csv?token=s3cret#top"), "https://x.io/p.csv");
        assert_eq!(without_query("https://x.io/p.csv"), "https://x.io/p.csv");
    }

    #[test]
    fn a_file_that_is_not_the_export_is_refused_with_the_reason() {
        let e = parse(&settings(&[]), "<!doctype html><p>Sign in</p>").unwrap_err();
        assert!(matches!(e, ConnectorError::BadResponse(m) if m.contains("HTML")));
        let e = parse(&settings(&[]), "name;mail\nAda;a@x.io\n").unwrap_err();
        assert!(
            matches!(&e, ConnectorError::BadResponse(m) if m.contains("no `id` column") && m.contains("name;mail")),
            "{e:?}"
        );
    }
}
