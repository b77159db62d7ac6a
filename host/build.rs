//! Compiles the bundled connectors (Personio from `plugin/`, CSV export from
//! `plugin/csv/`) to wasm32-wasip2 components and places them in OUT_DIR,
//! where `connectors::BUNDLED` embeds them.

use hrsync_component_build::Components;

fn main() {
    let components = Components::for_build_script();
    components.rerun_if_changed(&[
        "plugin/src",
        "plugin/Cargo.toml",
        "plugin/kit/src",
        "plugin/kit/Cargo.toml",
        "plugin/csv/src",
        "plugin/csv/Cargo.toml",
        "wit",
        "Cargo.lock",
    ]);
    components.build("hrsync-personio", &[], "personio.wasm");
    components.build("hrsync-csv", &[], "csv.wasm");
}
