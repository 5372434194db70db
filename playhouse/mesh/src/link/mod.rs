//! Links move `[header][payload]` frames between servers, and nothing more: they are pipes.
//! Whether a peer is alive is the mesh node's business (it pings every peer over the link and
//! calls [`MeshLink::reset`] on one that falls silent), so every link gets the same liveness,
//! and the simulation, which can only host the TCP link, runs the code production runs.
//!
//! * [`TcpLink`](tcp::TcpLink): length-delimited frames over any byte stream (production TCP
//!   or a simulated network).
//! * `ZmqLink`: ZeroMQ ROUTER sockets (what the server processes ship with; feature `zmq`).
//!
//! Both keep their peers in one [`PeerTable`](peers::PeerTable) and publish their address the
//! same way (the `address` module).

mod address;
pub(crate) mod dialer;
mod frame;
mod peers;
pub(crate) mod tcp;
#[cfg(feature = "zmq")]
pub(crate) mod zmq;

use std::sync::Arc;

use bytes::Bytes;

/// Something a link reports to its mesh node.
#[derive(Debug)]
pub enum LinkEvent {
    /// A message from server `from`.
    Message {
        /// The sending server's id (as the connection identified itself).
        from: Arc<str>,
        /// Encoded route header.
        header: Bytes,
        /// Message body.
        payload: Bytes,
    },
    /// A message accepted by [`MeshLink::send`] could not be delivered: its request (if it
    /// was one) must fail now rather than time out.
    SendFailed {
        /// The server it was for.
        target: Arc<str>,
        /// Its encoded route header.
        header: Bytes,
    },
    /// The connection to `target` broke (closed, reset, a write failed): messages already
    /// written to it may be lost, so requests in flight to it fail now.
    PeerDown {
        /// The server whose connection broke.
        target: Arc<str>,
    },
}

/// Where a link hands its events: called on the link's own tasks, so it must never block
/// (the mesh node's sink decodes the header and hands the message off).
pub type EventSink = Arc<dyn Fn(LinkEvent) + Send + Sync>;

/// Why a link refused a message at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// No connection to that server was ever requested (not in the directory).
    #[error("server `{0}` is unknown")]
    Unknown(String),
    /// The server is known but its connection is down.
    #[error("server `{0}` is not connected")]
    NotConnected(String),
    /// The send queue to that server is full (it does not keep up).
    #[error("send queue to `{0}` is full")]
    Busy(String),
    /// The link is shut down.
    #[error("link closed")]
    Closed,
}

/// Moves frames between servers. Implementations own their sockets in tasks; every method
/// returns at once (no method ever blocks a stage on a slow peer).
///
/// A link is built bound (so its [`address`](MeshLink::address) is known) but idle; the mesh
/// node [`start`](MeshLink::start)s it with the sink its events go to.
pub trait MeshLink: Send + Sync + 'static {
    /// This server's connectable address, e.g. `tcp://127.0.0.1:5000`.
    fn address(&self) -> &str;
    /// Starts receiving: from now on every event goes to `sink`. Called once, by the mesh
    /// node, before it connects to anyone; [`close`](MeshLink::close) drops the sink.
    fn start(&self, sink: EventSink);
    /// Keeps a connection to `server_id` at `address` (reconnecting as needed); a changed
    /// address replaces the old connection.
    fn connect(&self, server_id: &str, address: &str);
    /// Drops the connection to `server_id`.
    fn disconnect(&self, server_id: &str);
    /// The node heard nothing from `server_id` for its heartbeat timeout: drops every
    /// connection with it at once (a silently dead TCP connection would otherwise linger until
    /// the kernel gives up), fails what was queued for it, and dials it again.
    fn reset(&self, server_id: &str);
    /// Queues a frame for `target`. Fails at once when the peer is unknown or down.
    fn send(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), LinkError>;
    /// Whether the connection to `server_id` is up right now. The mesh asks before it keeps a
    /// server that went missing from the directory (missing *and* unreachable means gone),
    /// and starts a peer's silence clock when its connection comes up.
    fn is_connected(&self, server_id: &str) -> bool;
    /// Stops every task of the link.
    fn close(&self);
}
