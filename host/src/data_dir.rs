//! The data directory holds the directory database (people, password
//! hashes, sessions' CSRF tokens), the secret key and the component cache:
//! it is created readable by its owner only (0700, files 0600), and what is
//! wider is named when hrsync starts.

use std::path::Path;

/// The files of the data directory that must stay private.
const PRIVATE_FILES: [&str; 4] = ["hrsync.db", "hrsync.db-wal", "hrsync.db-shm", "secret.key"];

/// Creates `dir` (owner only) if it does not exist.
pub fn create(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    restrict(dir, 0o700)
}

/// Creates an empty file readable by its owner only, unless it exists; SQLite
/// gives its `-wal` and `-shm` files the database file's mode.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// What in `dir` others than its owner can read or write, each with the
/// command that fixes it.
pub fn exposure(dir: &Path) -> Vec<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).ok().map(|m| m.permissions().mode() & 0o777);
        let mut found = Vec::new();
        if let Some(m) = mode(dir).filter(|m| m & 0o077 != 0) {
            found.push(format!("{} is {m:o}, readable by others: chmod 700 {}", dir.display(), dir.display()));
        }
        for name in PRIVATE_FILES {
            let path = dir.join(name);
            if let Some(m) = mode(&path).filter(|m| m & 0o077 != 0) {
                found.push(format!("{} is {m:o}, readable by others: chmod 600 {}", path.display(), path.display()));
            }
        }
        found
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Vec::new()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_data_dir_is_private_and_wider_modes_are_named() {
        let dir =
            std::env::temp_dir().join(format!("hrsync-data-dir-{}-{}", std::process::id(), rand::random::<u32>()));
        create(&dir).unwrap();
        create_private_file(&dir.join("hrsync.db")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("hrsync.db")), 0o600);
        assert!(exposure(&dir).is_empty());
        std::fs::set_permissions(dir.join("hrsync.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let found = exposure(&dir);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("hrsync.db is 644") && found[0].contains("chmod 600"), "{found:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
