//! What both directions share on the wire: the length-prefixed body and the message id at its
//! front, read and checked the same way by both codecs.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::frame::{LENGTH_PREFIX, MAX_MSG_ID_LEN};
use crate::packet::MsgId;

/// Splits one whole body off `src`, or asks for more bytes (`Ok(None)`), following the
/// tokio-util contract: on `None`, capacity for the rest of the frame is reserved.
pub(super) fn split_body(
    src: &mut BytesMut,
    max: usize,
    min: usize,
) -> Result<Option<Bytes>, DecodeError> {
    if src.len() < LENGTH_PREFIX {
        src.reserve(LENGTH_PREFIX - src.len());
        return Ok(None);
    }
    let announced = i32::from_le_bytes([src[0], src[1], src[2], src[3]]);
    if announced <= 0 {
        return Err(DecodeError::InvalidLength(announced));
    }
    let len = announced as usize;
    if len > max {
        return Err(DecodeError::TooLarge { len, max });
    }
    if len < min {
        return Err(DecodeError::BodyTooShort { len, min });
    }
    let total = LENGTH_PREFIX + len;
    if src.len() < total {
        src.reserve(total - src.len());
        return Ok(None);
    }
    src.advance(LENGTH_PREFIX);
    Ok(Some(src.split_to(len).freeze()))
}

/// Reads `[id_len][msg_id]` from the front of `body`; `fixed` is the header size after the id.
/// An empty id is an error unless `empty_allowed`.
pub(super) fn split_msg_id(
    body: &mut Bytes,
    fixed: usize,
    empty_allowed: bool,
) -> Result<MsgId, DecodeError> {
    let len = body.len();
    let id_len = body[0] as usize;
    if id_len == 0 && !empty_allowed {
        return Err(DecodeError::EmptyMsgId);
    }
    if 1 + id_len + fixed > len {
        return Err(DecodeError::MsgIdOverrun { id_len, len });
    }
    body.advance(1);
    MsgId::try_from(body.split_to(id_len)).map_err(|_| DecodeError::InvalidUtf8)
}

/// A message id the encoder can write: 1..=255 bytes.
pub(super) fn check_msg_id(msg_id: &MsgId) -> Result<(), EncodeError> {
    let len = msg_id.len();
    if len == 0 || len > MAX_MSG_ID_LEN {
        return Err(EncodeError::MsgIdLength(len));
    }
    Ok(())
}

/// A body the encoder may write: at most `max` bytes.
pub(super) fn check_body(len: usize, max: usize) -> Result<(), EncodeError> {
    if len > max {
        return Err(EncodeError::TooLarge { len, max });
    }
    Ok(())
}
