//! Compiles the bundled connectors (Personio from `plugin/`, CSV export from
//! `plugin/csv/`) to wasm32-wasip2 components and places them in OUT_DIR,
//! where `connectors::BUNDLED` embeds them.
//!
//! A nested cargo with its own target directory (the pattern wasmtime's and
//! Spin's test-program crates use) avoids contending for the outer build's lock.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for path in [
        "plugin/src",
        "plugin/Cargo.toml",
        "plugin/kit/src",
        "plugin/kit/Cargo.toml",
        "plugin/csv/src",
        "plugin/csv/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let wasm = build_component(&root, &out_dir, "hrsync-personio");
    std::fs::copy(&wasm, out_dir.join("personio.wasm")).expect("copy the Personio component");
    let wasm = build_component(&root, &out_dir, "hrsync-csv");
    std::fs::copy(&wasm, out_dir.join("csv.wasm")).expect("copy the CSV component");
}

include!("build_wasm.rs");
