//! Shared by the benchmarks: a sandbox in its own process, and peak RSS.

#![allow(dead_code)] // each benchmark uses a different part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `hrsync sandbox --rate-limit off` process; killed when dropped.
pub struct SandboxProcess {
    child: Child,
    pub url: String,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a sandbox of `people` without rate limits: Personio's real limit
/// (15 requests/s) would dominate every figure; the benchmarks measure hrsync.
pub fn sandbox(people: usize) -> anyhow::Result<SandboxProcess> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hrsync"))
        .args(["sandbox", "--rate-limit", "off", "--people", &people.to_string(), "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    let process = SandboxProcess { child, url: format!("http://127.0.0.1:{port}") };
    anyhow::ensure!(first.contains("Personio sandbox"), "the sandbox did not start: {first}");
    // Keep draining its output so the child never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(process)
}

/// This process's peak resident set (VmHWM) in MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
