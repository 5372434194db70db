//! One module per category. Each category has its own range of stage ids (its `base`) and its
//! own user ids, and checks only what a client sees: replies, pushes, callbacks, error codes.

mod actor_callback;
mod actor_sender;
mod api_to_api;
mod api_to_play;
mod async_block;
mod auto_dispose;
mod callback_performance;
mod compression;
mod connection;
mod drain;
mod game_loop;
mod limits;
mod messaging;
mod packet_auto_dispose;
mod protocol_connection;
mod push;
mod reconnection;
mod self_connection;
mod server_lifecycle;
mod service_routing;
mod session_resume;
mod shared_services;
mod stage_callback;
mod stage_to_api;
mod stage_to_stage;
mod system_message;
mod timeouts;
mod timer;

use crate::runner::Category;

pub use drain::serve_pair as serve_drain_pair;

/// Every category, in run order.
pub fn all() -> Vec<Category> {
    vec![
        connection::category(),
        messaging::category(),
        push::category(),
        packet_auto_dispose::category(),
        server_lifecycle::category(),
        actor_callback::category(),
        actor_sender::category(),
        stage_callback::category(),
        stage_to_stage::category(),
        stage_to_api::category(),
        api_to_api::category(),
        api_to_play::category(),
        self_connection::category(),
        service_routing::category(),
        system_message::category(),
        async_block::category(),
        timer::category(),
        auto_dispose::category(),
        game_loop::category(),
        callback_performance::category(),
        shared_services::category(),
        protocol_connection::category(),
        compression::category(),
        limits::category(),
        reconnection::category(),
        timeouts::category(),
        session_resume::category(),
        drain::category(),
    ]
}
