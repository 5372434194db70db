//! What both sides of a WebSocket share: where a PlayHouse frame ends in a byte stream (each
//! frame travels as one binary message), and the handshake's accept key.

use std::io;

/// Bytes of the frame length prefix.
const PREFIX: usize = 4;
/// The length (prefix included) of the whole PlayHouse frame at the front of `bytes`, if it
/// is all there; an error for a length that is not positive. Outgoing byte streams are cut
/// at these boundaries, one WebSocket message per frame.
pub(crate) fn whole_frame_len(bytes: &[u8]) -> io::Result<Option<usize>> {
    let Some(prefix) = bytes.first_chunk::<PREFIX>() else {
        return Ok(None);
    };
    let len = i32::from_le_bytes(*prefix);
    if len <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame length must be positive",
        ));
    }
    let total = PREFIX + len as usize;
    Ok((bytes.len() >= total).then_some(total))
}

/// The GUID RFC 6455 appends to a client's key before hashing it.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value answering a client's `Sec-WebSocket-Key` (RFC 6455):
/// base64 of the SHA-1 of the key and [`ACCEPT_GUID`]. Computed here rather than by
/// tungstenite, so that serving WebSocket needs no WebSocket client library.
pub fn ws_accept_key(client_key: &[u8]) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(client_key);
    sha1.update(ACCEPT_GUID);
    data_encoding::BASE64.encode(&sha1.digest().bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_rfc_6455s() {
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            ws_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
