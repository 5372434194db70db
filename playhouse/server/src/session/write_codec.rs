//! The codec a session writes with: the server codec, which also writes frames shared with
//! other connections (a broadcast) in the encoding the first connection like this one made
//! (see [`SharedFrame`]). It is the session's own so that `ServerCodec`'s users keep one
//! item type.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytes::BytesMut;
use playhouse_protocol::{EncodeError, Encoder, ServerCodec, ServerFrame, SharedFrame};
use tokio_util::codec::FramedWrite;

use tokio::io::AsyncWrite;

/// The write half of a connection, whatever its transport.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A connection's write half, framed.
pub(crate) type Writer = FramedWrite<BoxWrite, WriteCodec>;

/// [`ServerCodec`], writing [`SharedFrame`]s too.
#[derive(Clone, Debug)]
pub(crate) struct WriteCodec(ServerCodec);

impl From<ServerCodec> for WriteCodec {
    fn from(codec: ServerCodec) -> Self {
        WriteCodec(codec)
    }
}

impl Deref for WriteCodec {
    type Target = ServerCodec;

    fn deref(&self) -> &ServerCodec {
        &self.0
    }
}

impl DerefMut for WriteCodec {
    fn deref_mut(&mut self) -> &mut ServerCodec {
        &mut self.0
    }
}

impl Encoder<ServerFrame> for WriteCodec {
    type Error = EncodeError;

    fn encode(&mut self, frame: ServerFrame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.0.encode(frame, dst)
    }
}

impl Encoder<Arc<SharedFrame>> for WriteCodec {
    type Error = EncodeError;

    fn encode(&mut self, shared: Arc<SharedFrame>, dst: &mut BytesMut) -> Result<(), EncodeError> {
        shared.encode_with(&mut self.0, dst)
    }
}
