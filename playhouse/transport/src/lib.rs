//! PlayHouse transports: where client byte streams come from and how clients dial them.
//!
//! Every transport carries the same length-prefixed frames as a byte stream, so the server's
//! session logic and the connector are written once:
//!
//! * [`Listener`]: the server-side trait (`accept() -> (stream, peer address)`), implemented for
//!   [`tokio::net::TcpListener`], `TlsListener` and `WsListener`; they compose
//!   (`WsListener::new(TlsListener::new(tcp, tls), "/ws")` serves `wss://`). A simulated
//!   network implements it too.
//! * [`Upgrading`]: a stream whose handshake (TLS, WebSocket) runs lazily inside the
//!   connection's own task, so a client that stalls its handshake never blocks `accept`.
//! * `WsServerStream`: the server side of a WebSocket as a byte stream, framed by hand
//!   (see `ws_server`); each outgoing frame (with its 4-byte length) becomes one binary
//!   message, as the C# original and browsers expect. `WsStream` is the client side.
//! * [`dial`]: the client side (TCP, TLS, WebSocket, WebSocket over TLS).
//! * `tls`: rustls configurations (ring backend), and with the `dev-certs` feature a
//!   self-signed certificate generated at start-up.
//!
//! # Features
//!
//! TCP is always there; the rest is opt-in so a server pays only for what it serves.
//! `playhouse` and `playhouse-connector` depend on this crate without its defaults.
//!
//! | Feature     | Default | Gives                                                        | Pulls in |
//! |-------------|---------|--------------------------------------------------------------|----------|
//! | `tls`       | yes     | `TlsListener`, the `tls` module, TLS in [`dial`]             | rustls, ring (C code), tokio-rustls, webpki-roots |
//! | `ws`        | yes     | the server side: `WsListener`, `ws_server`                   | httparse, sha1_smol, data-encoding |
//! | `ws-client` | yes     | the client side: `WsStream`, WebSocket in [`dial`] (implies `ws`) | tungstenite |
//! | `dev-certs` | no      | `tls::self_signed` (implies `tls`)                           | rcgen |

pub mod dial;
mod listener;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tls")]
mod tls_listener;
mod upgrade;
#[cfg(feature = "ws-client")]
mod ws;
#[cfg(feature = "ws")]
mod ws_frames;
#[cfg(feature = "ws")]
mod ws_listener;
#[cfg(feature = "ws")]
pub mod ws_server;

pub use listener::Listener;
#[cfg(feature = "tls")]
pub use tls_listener::TlsListener;
pub use upgrade::Upgrading;
#[cfg(feature = "ws-client")]
pub use ws::WsStream;
#[cfg(feature = "ws")]
pub use ws_frames::ws_accept_key;
#[cfg(feature = "ws")]
pub use ws_listener::WsListener;
#[cfg(feature = "ws")]
pub use ws_server::WsServerStream;
