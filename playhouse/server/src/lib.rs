//! PlayHouse: a framework for stateful multiplayer game servers.
//!
//! Clients connect straight to a **Play server**, which hosts **stages** (rooms) full of
//! **actors** (players). Each stage runs its own single-threaded event loop — timers, a
//! fixed-step game loop, async blocks whose results come back to the loop — so game code keeps
//! plain `&mut self` state with no locks.
//!
//! Modules:
//! * [`Stage`], [`Actor`] and their contexts ([`StageContext`], [`ActorLink`]): the
//!   programming model; [`StageRoutes`]: typed stage handlers by prost message.
//! * [`PlayServer`] / [`PlayServerBuilder`]: registration, listeners, graceful stop.
//! * [`PlayConfig`]: limits and timeouts, each with a documented default.
//! * [`Listener`]: where connections come from: TCP, TLS (`TlsListener`, feature `tls`),
//!   WebSocket (`WsListener`, feature `ws`), or any other stream, such as a simulated network.
//! * [`Services`] / [`ServerControl`]: shared services for factories, and the stop handle.
//! * `serve_http` / `HttpLimits` (feature `http`): an axum app (an API server's HTTP front
//!   door, the metrics endpoint, a WebSocket route) served with timeouts and a connection cap;
//!   [`raise_fd_limit`] so that every connection cap fits under the process's descriptors.
//! * `otlp_layer` (feature `otlp`): spans exported to an OpenTelemetry collector, in the
//!   traces the mesh carries from server to server.
//!
//! # Features
//!
//! A game pays only for what it uses. TCP clients, the stage host, the mesh with its TCP link
//! and in-memory directory are always there (they need nothing beyond tokio). The default is
//! the common case, one Play server for native and browser clients: `ws` only.
//!
//! | Feature | Default | Gives                                                              | Pulls in |
//! |---------|---------|--------------------------------------------------------------------|----------|
//! | `ws`    | yes     | `PlayServer::listen_ws`, `WsListener`                              | httparse, sha1_smol, data-encoding |
//! | `tls`   | no      | `PlayServer::listen_tls`, `listen_wss` (with `ws`), `TlsListener`  | rustls, ring (C code) |
//! | `http`  | no      | `serve_http`, `HttpLimits`, `PlayServer::listen_metrics`, `websocket_router` (with `ws`) | axum, hyper |
//! | `zmq`   | no      | `MeshJoin::zmq`, the ZeroMQ mesh link                              | zeromq   |
//! | `redis` | no      | `RedisDirectory`: a mesh directory across machines                 | redis    |
//! | `otlp`  | no      | `otlp_layer`: spans exported over OTLP/HTTP, one trace across the mesh | opentelemetry, opentelemetry-otlp (HTTP, protobuf; no gRPC, no TLS), tracing-opentelemetry, hyper |
//! | `full`  | no      | all of the above                                                   |          |
//!
//! TLS is often ended by a load balancer in front of the game; `http` is for an API server or
//! a metrics scrape; `zmq` and `redis` are for a mesh of processes on several machines;
//! `otlp` is for sending traces to an OpenTelemetry collector (Jaeger, Tempo, ...).
//!
//! ```no_run
//! use playhouse::{Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, Packet, PlayServer, Stage, StageContext};
//!
//! struct Room;
//! struct Player;
//!
//! impl Stage for Room {
//!     type Actor = Player;
//!     async fn on_create(&mut self, _: &mut StageContext<Self>, _: Packet) -> Result<Packet, ErrorCode> {
//!         Ok(Packet::empty("Created"))
//!     }
//!     async fn on_dispatch(&mut self, ctx: &mut StageContext<Self>, actor: &mut ActorCell<Player>, packet: Packet) {
//!         // Echo requests back; broadcast one-way messages to the room.
//!         if actor.link.is_request() {
//!             actor.link.reply(packet);
//!         } else {
//!             ctx.broadcast(packet);
//!         }
//!     }
//! }
//!
//! impl Actor for Player {
//!     async fn on_authenticate(&mut self, link: &mut ActorLink, packet: Packet) -> Result<Packet, ErrorReply> {
//!         let user = String::from_utf8_lossy(&packet.payload).into_owned();
//!         link.set_account_id(user);
//!         Ok(Packet::empty("Welcome"))
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = PlayServer::builder()
//!     .stage("Room", |_| Room, |_| Player)
//!     .default_stage_type("Room")
//!     .build()?;
//! let addr = server.listen_tcp("127.0.0.1:0").await?;
//! println!("clients connect to {addr}");
//! server.stopped().await;
//! # Ok(()) }
//! ```

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/README.md")]
struct DocsIndexDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/programming.md")]
struct ProgrammingDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/wire-protocol.md")]
struct WireProtocolDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/limits.md")]
struct LimitsDoctests;

// Its listeners, HTTP front door and metrics need these features.
#[cfg(all(doctest, feature = "tls", feature = "ws", feature = "http"))]
#[doc = include_str!("../../../docs/operations.md")]
struct OperationsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/clients.md")]
struct ClientsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/testing.md")]
struct TestingDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/architecture.md")]
struct ArchitectureDoctests;

mod api_sender;
mod api_server;
mod config;
mod drain;
mod fd_limit;
mod handlers;
mod histogram;
#[cfg(feature = "http")]
mod http_server;
mod limits;
mod mesh_join;
mod mesh_reply;
mod metrics;
mod metrics_registry;
mod play_mesh;
mod play_server;
mod play_server_builder;
mod reply;
mod sender;
mod services;
mod session;
mod sharded;
mod stage;
#[cfg(feature = "otlp")]
mod telemetry;
pub mod testing;
#[cfg(all(feature = "http", feature = "ws"))]
mod ws_route;

pub use api_sender::{ApiSender, CreateStageResult, GetOrCreateStageResult};
pub use api_server::{ApiServer, ApiServerBuilder};
pub use config::{PlayConfig, ResumeConfig};
pub use drain::DrainReport;
pub use fd_limit::raise_fd_limit;
pub use handlers::{Controller, HandlerRegistry};
#[cfg(feature = "http")]
pub use http_server::{HttpLimits, serve_http};
pub use limits::RateLimit;
pub use mesh_join::MeshJoin;
pub use play_server::PlayServer;
pub use play_server_builder::{BuildError, PlayServerBuilder};
pub use playhouse_mesh::{
    MemoryDirectory, Mesh, MeshError, RoutingPolicy, ServerInfo, ServerInfoCenter, ServerState,
    ServerType,
};
#[cfg(feature = "redis")]
pub use playhouse_mesh::{RedisDirectory, RedisDirectoryConfig};
pub use playhouse_protocol::{CodecConfig, ErrorCode, MsgId, Packet, PayloadError};
pub use playhouse_transport::Listener;
#[cfg(feature = "tls")]
pub use playhouse_transport::TlsListener;
#[cfg(feature = "ws")]
pub use playhouse_transport::WsListener;
pub use reply::{ErrorReply, IntoReply};
pub use sender::Sender;
pub use services::{ServerControl, Services, ServicesBuilder};
pub use stage::actor::{ActorCell, ActorInit, ActorLink, ReplyTarget};
pub use stage::context::{GameTick, StageContext, StageInit};
pub use stage::model::{Actor, MovableActor, MovableStage, Stage};
pub use stage::timer::TimerId;
pub use stage::typed::{AsyncClientHandler, AsyncServerHandler, StageRoutes};
#[cfg(feature = "otlp")]
pub use telemetry::{OtlpError, OtlpExport, OtlpLayer, otlp_layer};
