//! PlayHouse transports: where client byte streams come from and how clients dial them.
//!
//! Every transport carries the same length-prefixed frames as a byte stream, so the server's
//! session logic and the connector are written once:
//!
//! * [`Listener`]: the server-side trait (`accept() -> (stream, peer address)`), implemented for
//!   [`tokio::net::TcpListener`], [`TlsListener`] and [`WsListener`]; they compose
//!   (`WsListener::new(TlsListener::new(tcp, tls), "/ws")` serves `wss://`). A simulated
//!   network implements it too.
//! * [`Upgrading`]: a stream whose handshake (TLS, WebSocket) runs lazily inside the
//!   connection's own task, so a client that stalls its handshake never blocks `accept`.
//! * [`WsServerStream`]: the server side of a WebSocket as a byte stream, framed by hand
//!   (see [`ws_server`]); each outgoing frame (with its 4-byte length) becomes one binary
//!   message, as the C# original and browsers expect. [`WsStream`] is the client side.
//! * [`dial`]: the client side (TCP, TLS, WebSocket, WebSocket over TLS).
//! * [`tls`]: rustls configurations (ring backend), and with the `dev-certs` feature a
//!   self-signed certificate generated at start-up.

pub mod dial;
mod listener;
pub mod tls;
mod upgrade;
mod ws;
pub mod ws_server;

pub use listener::{Listener, TlsListener, WsListener};
pub use upgrade::Upgrading;
pub use ws::{WsStream, ws_accept_key};
pub use ws_server::WsServerStream;
