//! Mesh nodes over real TCP links (length-delimited, on loopback) and one in-memory
//! directory: the scenarios every link must pass (`common`).

mod common;

use std::sync::Arc;

use common::Bind;
use playhouse_mesh::{MeshLink, TcpLink, TcpLinkConfig};

const TCP: Bind = |id| {
    let id = id.to_owned();
    Box::pin(async move {
        let link = TcpLink::bind(&id, "127.0.0.1:0", None, TcpLinkConfig::default())
            .await
            .unwrap();
        Arc::new(link) as Arc<dyn MeshLink>
    })
};

#[tokio::test]
async fn request_reply_send_and_remote_errors() {
    common::request_reply_send_and_remote_errors(TCP).await;
}

#[tokio::test]
async fn a_server_can_send_to_itself() {
    common::a_server_can_send_to_itself(TCP).await;
}

#[tokio::test]
async fn timeouts_leave_the_cache_empty_and_late_replies_are_discarded() {
    common::timeouts_leave_the_cache_empty_and_late_replies_are_discarded(TCP).await;
}

#[tokio::test]
async fn unknown_or_dead_servers_fail_fast_and_recover() {
    common::unknown_or_dead_servers_fail_fast_and_recover(TCP).await;
}

#[tokio::test]
async fn a_listed_peer_still_connecting_is_waited_for() {
    common::a_listed_peer_still_connecting_is_waited_for(TCP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_partition_is_detected_within_the_heartbeat_timeout() {
    common::faults::silent_partition_is_detected_within_the_heartbeat_timeout(TCP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_loss_is_detected_within_the_heartbeat_timeout() {
    common::faults::one_way_loss_is_detected_within_the_heartbeat_timeout(TCP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_is_detected_within_the_heartbeat_timeout() {
    common::faults::a_frozen_peer_is_detected_within_the_heartbeat_timeout(TCP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_drops_the_connection_the_peer_dialed_too() {
    common::faults::a_reset_drops_the_connection_the_peer_dialed_too(TCP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_fails_requests_at_once_and_reconnects() {
    common::faults::a_reset_fails_requests_at_once_and_reconnects(TCP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_delay_is_not_mistaken_for_a_dead_peer() {
    common::faults::added_delay_is_not_mistaken_for_a_dead_peer(TCP).await;
}
