//! A Play server process: the `EchoRoom` stage type over TCP, joined to the mesh.

use playhouse::PlayServer;
use playhouse_examples::{EchoPlayer, EchoRoom, env_or, init_logging, mesh_join, stop_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let id = env_or("PLAYHOUSE_SERVER_ID", "play-1");
    let server = PlayServer::builder()
        .server_id(&id)
        .stage("EchoRoom", |_| EchoRoom, |_| EchoPlayer)
        .build()?;
    let tcp = server
        .listen_tcp(env_or("PLAYHOUSE_TCP_BIND", "127.0.0.1:0"))
        .await?;
    let mesh = server.join_mesh(mesh_join().await?).await?;
    let line = serde_json::json!({"id": id, "type": "play", "tcp": tcp.to_string(), "mesh": mesh.address()});
    println!("{line}");
    stop_signal().await;
    server.stop().await;
    Ok(())
}
