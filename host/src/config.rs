//! The server's configuration file (`hrsync --config hrsync.toml serve`).
//!
//! Precedence, lowest first: built-in defaults, this file, environment
//! variables, command-line flags. Unknown keys are errors, so a typo never
//! silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default address of the web server: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "hrsync-data";

/// What a configuration file may set; everything is optional.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address of the web server, e.g. `0.0.0.0:8080`.
    pub bind: Option<SocketAddr>,
    /// Where the database, key file, connector cache and connectors live.
    /// Relative paths are taken from the file's directory.
    pub data_dir: Option<PathBuf>,
    /// Extra connectors are loaded from here [default: DATA_DIR/connectors].
    pub connectors_dir: Option<PathBuf>,
}

impl FileConfig {
    /// Reads and checks `path`; errors name the file and the problem.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))?;
        let mut config = Self::parse(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for dir in [&mut config.data_dir, &mut config.connectors_dir].into_iter().flatten() {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        Ok(config)
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| format!("{}(keys: bind, data_dir, connectors_dir)", e.message().trim_end()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = FileConfig::parse("bind = \"0.0.0.0:9000\"\ndata_dir = \"/var/lib/hrsync\"\n").unwrap();
        assert_eq!(c.bind, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/var/lib/hrsync")));
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
    }

    #[test]
    fn typos_and_bad_values_are_errors_that_say_what_is_allowed() {
        let e = FileConfig::parse("bnd = \"0.0.0.0:9000\"").unwrap_err();
        assert!(e.contains("bnd") && e.contains("keys: bind"), "{e}");
        let e = FileConfig::parse("bind = \"localhost\"").unwrap_err();
        assert!(e.contains("socket address"), "{e}");
    }

    #[test]
    fn relative_directories_are_taken_from_the_file() {
        let dir = std::env::temp_dir().join(format!("hrsync-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hrsync.toml");
        std::fs::write(&file, "data_dir = \"data\"\n").unwrap();
        assert_eq!(FileConfig::load(&file).unwrap().data_dir, Some(dir.join("data")));
        assert!(FileConfig::load(&dir.join("missing.toml")).unwrap_err().to_string().contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
