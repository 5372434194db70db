//! A server frame encoded once for many connections: a broadcast. Each connection's codec
//! writes the encoding that suits it (LZ4-compressed for a client that agreed to it and a
//! payload over the threshold, plain otherwise); the first connection that needs an encoding
//! makes it, the others copy its bytes.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::server::ServerCodec;
use crate::error::EncodeError;
use crate::frame::ServerFrame;

/// One frame for many connections (see the module docs). Cheap to share: `Arc<SharedFrame>`.
#[derive(Debug)]
pub struct SharedFrame {
    frame: ServerFrame,
    plain: OnceLock<Bytes>,
    compressed: OnceLock<Bytes>,
}

impl SharedFrame {
    /// `frame`, not encoded yet.
    pub fn new(frame: ServerFrame) -> Arc<Self> {
        Arc::new(SharedFrame {
            frame,
            plain: OnceLock::new(),
            compressed: OnceLock::new(),
        })
    }

    /// The frame.
    pub fn frame(&self) -> &ServerFrame {
        &self.frame
    }

    /// How many encodings were made so far (0, 1 or 2: plain and compressed).
    pub fn encodings(&self) -> usize {
        usize::from(self.plain.get().is_some()) + usize::from(self.compressed.get().is_some())
    }

    /// Appends the frame to `dst` as `codec` would encode it, encoding it only if no
    /// connection with the same compression setting did before. (A connection's writer calls
    /// this from an `Encoder<Arc<SharedFrame>>` of its own.)
    pub fn encode_with(
        &self,
        codec: &mut ServerCodec,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let cache = if codec.compresses(self.frame.payload.len()) {
            &self.compressed
        } else {
            &self.plain
        };
        if let Some(encoded) = cache.get() {
            dst.extend_from_slice(encoded);
            return Ok(());
        }
        let start = dst.len();
        codec.encode(self.frame.clone(), dst)?;
        let _ = cache.set(Bytes::copy_from_slice(&dst[start..]));
        Ok(())
    }
}
