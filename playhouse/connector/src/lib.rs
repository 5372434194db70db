//! The PlayHouse client library: connect to a stage on a play server, authenticate, send,
//! request/reply with timeouts, receive pushes, keep the connection alive with heartbeats, and
//! drain callbacks from a game loop.
//!
//! A [`Connector`] is bound to one stage per connection; every frame it sends carries that
//! stage id. One background tokio task per connection owns the socket:
//!
//! ```text
//!   game thread                         connector task (tokio)              server
//!   -----------                         ----------------------              ------
//!   send / request ---- command queue --> encode, batch, write ------------->
//!                                         match replies by seq <------------ replies, pushes
//!   main_thread_action() <-- callbacks -- timeouts, heartbeats, silence check
//! ```
//!
//! Async forms ([`Connector::connect`], [`Connector::authenticate`], [`Connector::request`])
//! complete their futures directly. Events (`on_connect`, `on_disconnect`, `on_receive`,
//! `on_error`) and callback-form requests wait in a bounded queue until the game calls
//! [`Connector::main_thread_action`] — or run on the connector's task when
//! [`ConnectorConfig::use_main_thread_callbacks`] is `false`.
//!
//! ```no_run
//! use std::time::Duration;
//! use playhouse_connector::{Connector, ConnectorConfig, Packet};
//!
//! # async fn game() -> Result<(), playhouse_connector::ConnectorError> {
//! let connector = Connector::new(ConnectorConfig::default());
//! connector.on_receive(|stage_id, stage_type, packet| {
//!     println!("push {} from {stage_type} #{stage_id}", packet.msg_id);
//! });
//! connector.on_disconnect(|| println!("disconnected"));
//!
//! connector.connect("127.0.0.1", 34001, 1, "GameRoom").await?;
//! connector
//!     .authenticate(Packet::new("AuthenticateRequest", &b"user-1"[..]))
//!     .await?;
//! let reply = connector.request(Packet::new("EchoRequest", &b"hello"[..])).await?;
//! println!("reply {}", reply.msg_id);
//!
//! connector.request_with_callback(Packet::empty("StatusRequest"), |result| match result {
//!     Ok(reply) => println!("status {}", reply.msg_id),
//!     Err(error) => println!("status failed: {error} ({})", error.code()),
//! });
//! // The game loop: run queued callbacks once per frame.
//! while connector.is_connected() {
//!     connector.main_thread_action();
//!     tokio::time::sleep(Duration::from_millis(16)).await;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Modules:
//! * `config`: [`ConnectorConfig`] and its defaults; [`Transport`]: TCP, TLS, WebSocket or
//!   WebSocket over TLS.
//! * `error`: [`ConnectorError`] and its wire codes.
//! * `connector`: the [`Connector`] handle (lifecycle, authentication gate, send/request).
//! * `connection`: the per-connection task (batching, replies, timeouts, heartbeats), one
//!   module per concern.
//! * `pending`: in-flight requests by sequence number and deadline (no I/O).
//! * `callbacks`: event handlers and the callback queue.
//! * `resume`: the client side of resumable sessions (what a session keeps, the resume
//!   handshake, reconnect backoff).
//! * `transport`: dialing.

mod callbacks;
mod config;
mod connection;
mod connector;
mod error;
mod pending;
mod resume;
mod transport;

pub use callbacks::SessionEvent;
pub use config::{ConnectorConfig, ReconnectPolicy, TlsTrust, Transport};
pub use connector::Connector;
pub use error::ConnectorError;
pub use playhouse_protocol::{ErrorCode, Packet};
