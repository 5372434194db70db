//! The stage's half of the server mesh: on a client's `Trigger*` request the stage messages
//! other stages, API servers and system handlers through `ctx.sender()` (awaiting in its
//! handler, in an async block, or with a request callback) and answers with what came back. A
//! remote error code becomes the reply's error code (`?` on a `MeshError`).

mod common;
mod packets;
pub(super) mod relay;
mod service_routing;
mod stages;
mod system;
mod to_api;

use super::state::Routes;
use packets::{auto_dispose_api, auto_dispose_stage, keep_mesh_replies, large_mesh_echo};
use service_routing::{service_request, service_send};
use stages::{inter_stage_message, request_to_stage, request_to_stage_callback, send_to_stage};
use system::{request_to_system, send_to_system};
use to_api::{
    async_block_request_to_api, async_block_send_to_api, get_or_create_stage, request_to_api,
    send_to_api, timer_with_request,
};

/// This module's handlers: the clients' `Trigger*` requests, and `InterStageMessage` from
/// other stages.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .client(send_to_stage)
        .client_async(request_to_stage)
        .client(request_to_stage_callback)
        .client(send_to_api)
        .client_async(request_to_api)
        .client(async_block_send_to_api)
        .client(async_block_request_to_api)
        .client_async(get_or_create_stage)
        .client_async(service_request)
        .client(service_send)
        .client_async(request_to_system)
        .client(send_to_system)
        .client_async(auto_dispose_api)
        .client_async(auto_dispose_stage)
        .client(timer_with_request)
        .client_async(keep_mesh_replies)
        .client_async(large_mesh_echo)
        .server(inter_stage_message)
}
