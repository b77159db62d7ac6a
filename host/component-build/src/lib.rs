//! Compiles workspace packages to `wasm32-wasip2` components from a build
//! script, for the crates that embed or test real components (`hrsync`'s
//! bundled connectors, the end-to-end tests' hostile connector).
//!
//! A nested cargo with its own target directory (the pattern wasmtime's and
//! Spin's test-program crates use) avoids contending for the outer build's
//! lock.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The calling build script's view of the workspace.
pub struct Components {
    root: PathBuf,
    out_dir: PathBuf,
    target_dir: PathBuf,
}

impl Components {
    /// For the build script running now: the workspace root is the parent of
    /// the package being built (`host/`, `tests/`).
    ///
    /// # Panics
    /// Outside a build script (no `CARGO_MANIFEST_DIR` or `OUT_DIR`).
    pub fn for_build_script() -> Self {
        let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run from a build script"));
        let root = manifest_dir.parent().expect("the package lives inside the workspace").to_path_buf();
        let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("run from a build script"));
        let target_dir = shared_target_dir(&out_dir);
        Components { root, out_dir, target_dir }
    }

    /// Tells cargo to run the build script again when any of these paths
    /// (relative to the workspace root) changes.
    pub fn rerun_if_changed(&self, paths: &[&str]) {
        for path in paths {
            println!("cargo:rerun-if-changed={}", self.root.join(path).display());
        }
    }

    /// Builds `package` in release mode with `features` and copies the
    /// component to `OUT_DIR/{name}`; returns that path.
    ///
    /// # Panics
    /// When the nested build fails: a build script has no better way to say so.
    pub fn build(&self, package: &str, features: &[&str], name: &str) -> PathBuf {
        let built = self.cargo_build(package, features);
        let placed = self.out_dir.join(name);
        std::fs::copy(&built, &placed)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), placed.display()));
        placed
    }

    fn cargo_build(&self, package: &str, features: &[&str]) -> PathBuf {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(&self.root)
            .args(["build", "--release", "--target", "wasm32-wasip2", "-p", package, "--target-dir"])
            .arg(&self.target_dir);
        if !features.is_empty() {
            command.args(["--features", &features.join(",")]);
        }
        let status = command
            // The outer build's flags are for the host target, not for wasm.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_TARGET_DIR")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
            .status()
            .expect("run cargo for the wasm32-wasip2 component");
        assert!(
            status.success(),
            "building {package} for wasm32-wasip2 failed (is the target installed? rust-toolchain.toml lists it)"
        );
        // Builds of one package with different features share this path;
        // `build` copies each away before the next.
        self.target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")))
    }
}

/// One nested target directory for every build script and profile (the
/// outer `target/`'s `wasm-components`): the components and their host-side
/// proc macros are compiled once, not once per build script and per
/// `cargo check`/`cargo test`. Cargo's own lock serialises the nested builds
/// that share it.
fn shared_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(|build| build.parent()?.parent())
        .map_or_else(|| out_dir.join("wasm-target"), |target| target.join("wasm-components"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_shares_the_outer_targets_component_directory() {
        let out = Path::new("/repo/target/debug/build/hrsync-0123/out");
        assert_eq!(shared_target_dir(out), Path::new("/repo/target/wasm-components"));
        let out = Path::new("/repo/target/release/build/hrsync-e2e-4567/out");
        assert_eq!(shared_target_dir(out), Path::new("/repo/target/wasm-components"));
    }

    #[test]
    fn an_unusual_out_dir_keeps_its_own_target() {
        let out = Path::new("/elsewhere/out");
        assert_eq!(shared_target_dir(out), Path::new("/elsewhere/out/wasm-target"));
    }
}
