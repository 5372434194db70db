//! One module per category. Each category has its own range of stage ids (its `base`) and its
//! own user ids, and checks only what a client sees: replies, pushes, callbacks, error codes.

mod actor_callback;
mod actor_sender;
mod async_block;
mod callback_performance;
mod connection;
mod game_loop;
mod messaging;
mod packet_auto_dispose;
mod push;
mod reconnection;
mod server_lifecycle;
mod shared_services;
mod stage_callback;
mod timeouts;
mod timer;

use crate::runner::Category;

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
        async_block::category(),
        timer::category(),
        game_loop::category(),
        callback_performance::category(),
        shared_services::category(),
        reconnection::category(),
        timeouts::category(),
    ]
}
