use std::io;

/// Why a frame could not be decoded. Every variant is a protocol error: the connection that
/// sent it should be closed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix is zero or negative.
    #[error("frame length {0} is not positive")]
    InvalidLength(i32),
    /// The body (or a decompressed payload) is longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The body is shorter than the fixed header.
    #[error("frame body of {len} bytes is shorter than the {min}-byte header")]
    BodyTooShort {
        /// Announced length.
        len: usize,
        /// Smallest valid body.
        min: usize,
    },
    /// The message id length byte is zero.
    #[error("message id is empty")]
    EmptyMsgId,
    /// The message id (plus the fixed header after it) runs past the body.
    #[error("message id of {id_len} bytes runs past a body of {len} bytes")]
    MsgIdOverrun {
        /// Announced id length.
        id_len: usize,
        /// Body length.
        len: usize,
    },
    /// The message id is not valid UTF-8.
    #[error("message id is not valid UTF-8")]
    InvalidUtf8,
    /// `original_size` is negative.
    #[error("original size {0} is negative")]
    InvalidOriginalSize(i32),
    /// The LZ4 block is malformed or does not decompress to `original_size` bytes.
    #[error("LZ4 payload does not decompress to {original_size} bytes")]
    Decompress {
        /// Announced uncompressed size.
        original_size: usize,
    },
    /// The stream ended inside a frame, or the transport failed.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
}

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The message id is empty or longer than 255 bytes.
    #[error("message id of {0} bytes is outside 1..=255")]
    MsgIdLength(usize),
    /// The body would exceed the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Body length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The transport failed.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
}
