//! A Play server process: the `EchoRoom` and `TallyRoom` stage types over TCP, joined to the
//! mesh, with an admin listener (`GET /metrics`, `POST /drain`).
//!
//! On SIGTERM it drains (`PLAYHOUSE_ON_SIGTERM=drain`, the default): no new stages or players;
//! `TallyRoom`s (a movable stage type) move, live and with their players, to the other running
//! Play servers of the mesh; `EchoRoom`s (not movable) play on for up to
//! `PLAYHOUSE_DRAIN_SECS` (default 60) and are then closed; then it stops.
//! `PLAYHOUSE_ON_SIGTERM=stop` stops at once. A second signal during a drain stops at once.

use std::time::Duration;

use playhouse::PlayServer;
use playhouse_examples::tally::{TallyPlayer, TallyRoom};
use playhouse_examples::{EchoPlayer, EchoRoom, env_or, init_logging, mesh_join, stop_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let id = env_or("PLAYHOUSE_SERVER_ID", "play-1");
    let drain_secs: u64 = env_or("PLAYHOUSE_DRAIN_SECS", "60").parse()?;
    let drain_on_sigterm = match env_or("PLAYHOUSE_ON_SIGTERM", "drain").as_str() {
        "drain" => true,
        "stop" => false,
        other => {
            return Err(format!("PLAYHOUSE_ON_SIGTERM must be drain or stop, not {other}").into());
        }
    };
    let server = PlayServer::builder()
        .server_id(&id)
        .stage("EchoRoom", |_| EchoRoom, |_| EchoPlayer)
        .movable_stage(
            "TallyRoom",
            |_| TallyRoom::default(),
            |_| TallyPlayer::default(),
        )
        .configure(|c| {
            c.drain_timeout = Duration::from_secs(drain_secs);
            // None: one is generated and logged once.
            c.admin_token = std::env::var("PLAYHOUSE_ADMIN_TOKEN").ok();
        })
        .build()?;
    let tcp = server
        .listen_tcp(env_or("PLAYHOUSE_TCP_BIND", "127.0.0.1:0"))
        .await?;
    let admin = server
        .listen_metrics(env_or("PLAYHOUSE_ADMIN_BIND", "127.0.0.1:0"))
        .await?;
    let mesh = server.join_mesh(mesh_join().await?).await?;
    let line = serde_json::json!({
        "id": id,
        "type": "play",
        "tcp": tcp.to_string(),
        "admin": admin.to_string(),
        "mesh": mesh.address(),
    });
    println!("{line}");
    tokio::select! {
        // A drain asked for over HTTP (POST /drain) ends with the server stopped.
        () = server.stopped() => return Ok(()),
        () = stop_signal() => {}
    }
    if drain_on_sigterm {
        tokio::select! {
            report = server.drain(Duration::from_secs(drain_secs)) => {
                tracing::info!(?report, "drained");
            }
            () = stop_signal() => server.stop().await,
        }
    } else {
        server.stop().await;
    }
    Ok(())
}
