//! Host bindings, one module per supported WIT version of `hrsync:connector`.
//! A new, compatible contract version gets a new module here; older ones stay
//! so connectors built against them keep loading.

pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "hr-connector",
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}
