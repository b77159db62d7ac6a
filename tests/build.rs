//! Builds the hostile test connector (`tests/hostile`) for wasm32-wasip2, so
//! the e2e tests run real misbehaving components.

use hrsync_component_build::Components;

fn main() {
    let components = Components::for_build_script();
    components.rerun_if_changed(&["tests/hostile/src", "tests/hostile/Cargo.toml", "wit"]);
    components.build("hrsync-hostile", &[], "hostile.wasm");
    components.build("hrsync-hostile", &["contract-0-2"], "hostile-0.2.wasm");
    // The same connector whose `describe` panics, loops or exhausts memory:
    // components that must fail to load without taking the host down.
    for feature in ["describe-panic", "describe-loop", "describe-memory"] {
        components.build("hrsync-hostile", &[feature], &format!("hostile-{feature}.wasm"));
    }
}
