//! The tokio-util codecs, one per side of the wire:
//!
//! * `server`: [`ServerCodec`](server::ServerCodec) decodes client frames and encodes server
//!   frames, compressing for a client that opted in.
//! * `client`: [`ClientCodec`](client::ClientCodec) encodes client frames and decodes server
//!   frames, decompressing them.
//! * `shared`: [`SharedFrame`](shared::SharedFrame), one frame written to many connections
//!   (a broadcast), encoded once per kind of connection.
//! * `config`: [`CodecConfig`](config::CodecConfig), the limits both share.
//! * `framing`: the length-prefixed body and message id both read and check alike.
//! * `lz4`: payload compression and decompression.

pub(crate) mod client;
pub(crate) mod config;
mod framing;
mod lz4;
pub(crate) mod server;
pub(crate) mod shared;

#[cfg(test)]
mod tests;
