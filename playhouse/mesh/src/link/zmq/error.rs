//! [`ZmqLinkError`]: why a [`ZmqLink`](super::ZmqLink) could not be bound.

use zeromq::ZmqError;

/// Why [`ZmqLink::bind`](super::ZmqLink::bind) failed.
#[derive(Debug, thiserror::Error)]
pub enum ZmqLinkError {
    /// A server id must be 1 to 255 bytes and must not start with a zero byte (ZeroMQ
    /// reserves those identities).
    #[error("`{0}` cannot be a ZeroMQ identity")]
    InvalidServerId(String),
    /// The bind endpoint is malformed or could not be bound.
    #[error("binding the ZeroMQ socket failed: {0}")]
    Bind(#[source] ZmqError),
    /// Only `tcp://` endpoints are supported.
    #[error("`{0}` is not a tcp endpoint")]
    NotTcp(String),
    /// The socket is bound to an unspecified address (`0.0.0.0`, `::`), which peers cannot
    /// connect to: pass an advertised host.
    #[error("binding an unspecified address needs an advertised host")]
    UnspecifiedHost,
}
