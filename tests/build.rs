//! Builds the hostile test connector (`tests/hostile`) for wasm32-wasip2, so
//! the e2e tests run real misbehaving components.

use std::path::PathBuf;

include!("../host/build_wasm.rs");

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for path in ["tests/hostile/src", "tests/hostile/Cargo.toml", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let wasm = build_component(&root, &out_dir, "hrsync-hostile");
    std::fs::copy(&wasm, out_dir.join("hostile.wasm")).expect("copy the hostile component");
    // The same connector whose `describe` panics, loops or exhausts memory:
    // components that must fail to load without taking the host down.
    for feature in ["describe-panic", "describe-loop", "describe-memory"] {
        let wasm = build_component_with(&root, &out_dir, "hrsync-hostile", &[feature]);
        std::fs::copy(&wasm, out_dir.join(format!("hostile-{feature}.wasm"))).expect("copy the hostile component");
    }
}
