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
