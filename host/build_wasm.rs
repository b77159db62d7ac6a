// Shared by the build scripts of `hrsync` and `hrsync-e2e` (via `include!`):
// builds a workspace package as a wasm32-wasip2 component with a nested cargo.

/// Builds `package` for wasm32-wasip2 in release mode; returns the .wasm path.
pub fn build_component(
    root: &std::path::Path,
    out_dir: &std::path::Path,
    package: &str,
) -> PathBuf {
    build_component_with(root, out_dir, package, &[])
}

/// [`build_component`] with cargo features enabled. Builds of one package
/// with different features share the output path: copy each before the next.
pub fn build_component_with(
    root: &std::path::Path,
    out_dir: &std::path::Path,
    package: &str,
    features: &[&str],
) -> PathBuf {
    // One nested target directory for every build script and profile (the
    // outer `target/`'s `wasm-components`): the components and their
    // host-side proc macros are compiled once, not once per build script and
    // per `cargo check`/`cargo test`. Cargo's own lock serialises the nested
    // builds that share it.
    let target_dir = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(|build| build.parent()?.parent())
        .map_or_else(|| out_dir.join("wasm-target"), |target| target.join("wasm-components"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
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
        .args(if features.is_empty() { vec![] } else { vec!["--features".to_string(), features.join(",")] })
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
