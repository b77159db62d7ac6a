//! A throwaway PostgreSQL cluster for tests and benchmarks.
//!
//! [`Cluster::start`] runs Debian's `initdb` into a fresh temporary
//! directory and starts `postgres` on a free loopback port with its socket
//! in that directory; dropping the [`Cluster`] stops the server and removes
//! the directory. Nothing outside the directory is touched, so tests run
//! side by side. PostgreSQL refuses to run as root: when the tests do, the
//! cluster belongs to the `postgres` account Debian's package creates and
//! its programs run through `runuser`.
//!
//! Without PostgreSQL's programs, [`Cluster::start`] fails saying what to
//! install — tests that need a database fail, they never skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The superuser every cluster is made with (trust authentication on
/// loopback: the cluster lives only as long as the test).
pub const USER: &str = "hrsync";

/// A running throwaway cluster.
pub struct Cluster {
    dir: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    /// `Some("postgres")` when the programs run as that account.
    run_as: Option<String>,
}

impl Cluster {
    /// Creates and starts a cluster; an error says what is missing.
    pub fn start() -> Result<Cluster, String> {
        let bin = bin_dir()?;
        let dir = temp_dir()?;
        let data = dir.join("data");
        let run_as = is_root().then(|| "postgres".to_string());
        let cluster = Cluster { dir, data, bin, port: free_port()?, run_as };
        if let Some(account) = &cluster.run_as {
            let status = Command::new("chown")
                .args([&format!("{account}:"), &cluster.dir.display().to_string()])
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "could not give {} to the `{account}` account; install Debian's postgresql package, which creates it",
                    cluster.dir.display()
                ));
            }
        }
        let data = cluster.data.display().to_string();
        cluster.run("initdb", &["-D", &data, "-U", USER, "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"])?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            cluster.port,
            cluster.dir.display()
        );
        let log = cluster.dir.join("server.log").display().to_string();
        cluster.run("pg_ctl", &["-D", &data, "-o", &options, "-l", &log, "-w", "-t", "60", "start"])?;
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name`; its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        let port = self.port.to_string();
        self.run("createdb", &["-h", "127.0.0.1", "-p", &port, "-U", USER, name])?;
        Ok(self.url(name))
    }

    fn wait_ready(&self) -> Result<(), String> {
        let port = self.port.to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.run("pg_isready", &["-h", "127.0.0.1", "-p", &port, "-U", USER]) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Runs one of PostgreSQL's programs (as the cluster's account).
    fn run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(account) => {
                let mut c = Command::new("runuser");
                c.args(["-u", account, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let output = command.args(args).current_dir(&self.dir).output().map_err(|e| format!("{program}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{program} {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(output)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PostgreSQL's programs: `PG_BIN`, else the newest `/usr/lib/postgresql/<v>/bin`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL's server programs were not found in /usr/lib/postgresql/<version>/bin: `apt-get install postgresql` (or set PG_BIN)".to_string()
    })
}

fn temp_dir() -> Result<PathBuf, String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("hrsync-pg-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_takes_databases_and_is_gone_when_dropped() {
        let cluster = Cluster::start().unwrap();
        let url = cluster.create_database("one").unwrap();
        assert_eq!(url, format!("postgres://hrsync@127.0.0.1:{}/one", cluster.port()));
        let port = cluster.port().to_string();
        let listed = cluster
            .run(
                "psql",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    USER,
                    "-Atc",
                    "SELECT datname FROM pg_database ORDER BY 1",
                    "postgres",
                ],
            )
            .unwrap();
        assert!(String::from_utf8_lossy(&listed.stdout).lines().any(|l| l == "one"));
        let dir = cluster.dir.clone();
        drop(cluster);
        assert!(!dir.exists(), "the cluster's directory is removed");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err(),
            "the server stopped"
        );
    }
}
