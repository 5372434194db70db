//! LZ4 block compression of server payloads: only when it saves at least 10%, and never past
//! the size the receiver will accept once decompressed.

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;

/// Compresses `payload` into `dst` from offset `at` (growing `dst` as needed) and returns the
/// compressed length when that saves at least 10%; `None` leaves `dst` to be truncated by the
/// caller.
pub(super) fn compress_into(payload: &[u8], dst: &mut BytesMut, at: usize) -> Option<usize> {
    let original = payload.len();
    let bound = lz4_flex::block::get_maximum_output_size(original);
    dst.resize(at + bound, 0);
    match lz4_flex::block::compress_into(payload, &mut dst[at..]) {
        Ok(compressed) if compressed * 10 < original * 9 => Some(compressed),
        _ => None,
    }
}

/// Decompresses an LZ4 block announced as `original_size` bytes, capped at `max`.
pub(super) fn decompress(
    block: &[u8],
    original_size: usize,
    max: usize,
) -> Result<Bytes, DecodeError> {
    if original_size > max {
        return Err(DecodeError::TooLarge {
            len: original_size,
            max,
        });
    }
    let mut out = vec![0u8; original_size];
    match lz4_flex::block::decompress_into(block, &mut out) {
        Ok(written) if written == original_size => Ok(Bytes::from(out)),
        _ => Err(DecodeError::Decompress { original_size }),
    }
}
