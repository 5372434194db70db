//! The limits and compression settings both codecs share.

/// The default [`CodecConfig::max_packet_size`]: 2 MiB.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 2 * 1024 * 1024;

/// Limits and compression settings shared by both codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecConfig {
    /// Largest frame body accepted or produced, in bytes; also caps a decompressed payload.
    /// Default: [`DEFAULT_MAX_PACKET_SIZE`] (2 MiB).
    pub max_packet_size: usize,
    /// Server side, towards a client that opted in
    /// ([`ServerCodec::set_compression`](crate::codec::server::ServerCodec::set_compression)):
    /// payloads of at least this many bytes are LZ4-compressed when that saves at least 10%.
    /// `None` turns compression off for every client. Default: `Some(512)`.
    pub compression_threshold: Option<usize>,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            compression_threshold: Some(512),
        }
    }
}
