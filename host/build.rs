//! Compiles the Personio connector (`plugin/`) to a wasm32-wasip2 component
//! and places it in OUT_DIR, where `connectors::BUNDLED` embeds it.
//!
//! A nested cargo with its own target directory (the pattern wasmtime's and
//! Spin's test-program crates use) avoids contending for the outer build's lock.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for path in ["plugin/src", "plugin/Cargo.toml", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let wasm = build_component(&root, &out_dir, "hrsync-personio");
    std::fs::copy(&wasm, out_dir.join("personio.wasm")).expect("copy the Personio component");
}

/// Builds `package` for wasm32-wasip2 in release mode; returns the .wasm path.
pub fn build_component(
    root: &std::path::Path,
    out_dir: &std::path::Path,
    package: &str,
) -> PathBuf {
    let target_dir = out_dir.join("wasm-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
            "--target-dir",
        ])
        .arg(&target_dir)
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
    let file = package.replace('-', "_");
    target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{file}.wasm"))
}
