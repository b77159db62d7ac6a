//! Host bindings, one module per supported WIT version of `hrsync:connector`
//! (folders `wit/<version>/`, frozen once released).
//!
//! Every version shares the Rust types of the first: later versions may add
//! functions and interfaces, never change a type, so `with` maps their
//! `types` interface onto `v0_1_0`'s and the rest of the host works with one
//! set of types. [`Bindings`] picks the module a component was built for.

pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "hr-connector",
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

/// Adds `host.progress`.
pub mod v0_2_0 {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "hr-connector",
        exports: { default: async },
        with: {
            "hrsync:connector/types": super::v0_1_0::hrsync::connector::types,
        },
    });
}

/// A connector instance, of whichever contract version it was built for.
pub enum Bindings {
    V0_1_0(v0_1_0::HrConnector),
    V0_2_0(v0_2_0::HrConnector),
}

/// A component prepared for instantiation, by contract version.
pub enum Prepared<T: 'static> {
    V0_1_0(v0_1_0::HrConnectorPre<T>),
    V0_2_0(v0_2_0::HrConnectorPre<T>),
}

// By hand: a derive would require `T: Clone`, which the store data is not.
impl<T: 'static> Clone for Prepared<T> {
    fn clone(&self) -> Self {
        match self {
            Prepared::V0_1_0(p) => Prepared::V0_1_0(p.clone()),
            Prepared::V0_2_0(p) => Prepared::V0_2_0(p.clone()),
        }
    }
}
