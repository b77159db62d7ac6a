//! `wasi:http/outgoing-handler.handle` as wasmtime-wasi-http provides it,
//! except that a request's options are released once the request is sent.
//!
//! wasmtime-wasi-http 48 reads the `request-options` a guest passes to
//! `handle` but never removes them from the store's resource table, though
//! the guest gave its handle away: one table entry leaks per request. A
//! connector that sends a request per person (Personio v2: each person's
//! employment) would reach the run's bound on resource handles after about
//! a thousand people, through no fault of its own. This shadows `handle`
//! with the same call followed by the release.

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{RequestOptions, WasiHttpView};

/// The interface as the bundled `wasi:http` names it; components asking
/// for any other 0.2 version are matched to it by semver.
const INTERFACE: &str = "wasi:http/outgoing-handler@0.2.12";

/// Replaces `handle` in a linker that already has wasi:http.
pub fn release_request_options<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut instance = linker.instance(INTERFACE)?;
    instance.func_wrap(
        "handle",
        |mut store: wasmtime::StoreContextMut<'_, T>,
         (request, options): (Resource<HostOutgoingRequest>, Option<Resource<RequestOptions>>)| {
            let mut http = store.data_mut().http();
            let rep = options.as_ref().map(Resource::rep);
            let sent = outgoing_handler::Host::handle(&mut http, request, options);
            // Passed by value: the options are the host's to drop now.
            if let Some(rep) = rep {
                let _ = http.table.delete(Resource::<RequestOptions>::new_own(rep));
            }
            let result: Result<Resource<HostFutureIncomingResponse>, ErrorCode> = match sent {
                Ok(response) => Ok(response),
                Err(e) => Err(e.downcast()?),
            };
            Ok((result,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
