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
//!   pushes().recv() <------ push queue --- pushes (reading waits while it is full)
//!   main_thread_action() <-- callbacks -- timeouts, heartbeats, silence check
//! ```
//!
//! Async forms ([`Connector::connect`], [`Connector::authenticate`], [`Connector::request`])
//! complete their futures directly, and [`Connector::pushes`] receives the server's pushes as
//! an async stream. That is all an async (tokio) client needs: it works whatever
//! [`ConnectorConfig::use_main_thread_callbacks`] says, with no `main_thread_action` call.
//!
//! ```
//! use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, Packet};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ConnectorError> {
//! # let port = fake::server().await;
//! let connector = Connector::new(ConnectorConfig::default());
//! let mut pushes = connector.pushes();
//! connector.connect("127.0.0.1", port, 1, "GameRoom").await?;
//! connector
//!     .authenticate(Packet::new("AuthenticateRequest", &b"user-1"[..]))
//!     .await?;
//! connector.send(Packet::new("Subscribe", &b"ticks"[..]))?;
//! while let Some(push) = pushes.recv().await {
//!     println!("push {} {:?}", push.packet.msg_id, push.packet.payload);
//!     if push.packet.msg_id == "Tick" && push.packet.payload == "3" {
//!         break;
//!     }
//! }
//! connector.disconnect().await;
//! # Ok(())
//! # }
//! # mod fake {
//! #     // A stand-in Play server: answers the login, then pushes three ticks.
//! #     use futures_util::{SinkExt, StreamExt};
//! #     use playhouse_protocol::{ErrorCode, ServerCodec, ServerFrame};
//! #     pub async fn server() -> u16 {
//! #         let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! #         let port = listener.local_addr().unwrap().port();
//! #         tokio::spawn(async move {
//! #             let (socket, _) = listener.accept().await.unwrap();
//! #             let mut framed = tokio_util::codec::Framed::new(socket, ServerCodec::default());
//! #             while let Some(Ok(frame)) = framed.next().await {
//! #                 let stage = frame.stage_id;
//! #                 if frame.msg_id == "AuthenticateRequest" {
//! #                     let (seq, ok) = (frame.msg_seq, ErrorCode::SUCCESS);
//! #                     let ok = ServerFrame::new("AuthenticateReply", seq, stage, ok, "");
//! #                     framed.send(ok).await.unwrap();
//! #                 } else if frame.msg_id == "Subscribe" {
//! #                     for n in ["1", "2", "3"] {
//! #                         let tick = ServerFrame::new("Tick", 0, stage, ErrorCode::SUCCESS, n);
//! #                         framed.send(tick).await.unwrap();
//! #                     }
//! #                 }
//! #             }
//! #         });
//! #         port
//! #     }
//! # }
//! ```
//!
//! A game engine with a main thread uses callbacks instead: events (`on_connect`,
//! `on_disconnect`, `on_receive`, `on_error`) and callback-form requests wait in a bounded
//! queue until the game calls [`Connector::main_thread_action`] — or run on the connector's
//! task when [`ConnectorConfig::use_main_thread_callbacks`] is `false`. (While a
//! [`Pushes`] receiver exists, pushes go to it rather than to `on_receive`.)
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
//! With [`ConnectorConfig::resume`] a dropped connection loses nothing: the connector dials
//! again, resumes the session and replays what either side missed
//! ([`Connector::on_session`] reports [`SessionEvent`]s). A stage the server moves to another
//! Play server (a drain before a deploy) takes the session along: the server names the new
//! endpoint (`@Move@`) and the connector resumes there by itself, over the same transport
//! ([`SessionEvent::Moved`], [`Connector::endpoint`]); a dialer of the application's follows
//! only through [`Connector::connect_with_endpoint`].
//!
//! Errors name the likely cause where the connector can tell: [`ConnectorError::HttpPort`]
//! (plain TCP to a WebSocket port), [`ConnectorError::NotWebSocket`] (WebSocket to a plain TCP
//! port), [`ConnectorError::ClosedBeforeAuthentication`] (e.g. a login under another message
//! id than the server's), and a reply that is not the message expected converts into
//! [`ConnectorError::Payload`] with `?` (see [`Connector::authenticate_message`] for a typed
//! login).
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
//! * `pushes`: [`Pushes`], the async receiver of pushes, and where each push goes.
//! * `resume`: the client side of resumable sessions (what a session keeps, the resume
//!   handshake, reconnect backoff).
//! * `transport`: dialing (and explaining a WebSocket handshake that got no HTTP answer).

mod callbacks;
mod config;
mod connection;
mod connector;
mod error;
mod pending;
mod pushes;
mod resume;
mod transport;

pub use callbacks::SessionEvent;
pub use config::{ConnectorConfig, ReconnectPolicy, TlsTrust, Transport};
pub use connector::Connector;
pub use error::ConnectorError;
pub use playhouse_protocol::{ErrorCode, Packet, PayloadError};
pub use pushes::{Push, Pushes};
