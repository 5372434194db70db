//! The TCP link's framing: `[len: u32 LE][header_len: u32 LE][header][payload]`.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Encoder, LengthDelimitedCodec};

/// A frame: `(header, payload)`.
pub(super) type Frame = (Bytes, Bytes);

/// Writes a frame straight into the socket buffer; frames are read back with [`codec`].
#[derive(Debug)]
pub(super) struct FrameEncoder;

impl Encoder<Frame> for FrameEncoder {
    type Error = io::Error;

    fn encode(&mut self, (header, payload): Frame, dst: &mut BytesMut) -> io::Result<()> {
        let len = 4 + header.len() + payload.len();
        let len = u32::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mesh frame too large"))?;
        dst.reserve(4 + len as usize);
        dst.put_u32_le(len);
        dst.put_u32_le(header.len() as u32);
        dst.put_slice(&header);
        dst.put_slice(&payload);
        Ok(())
    }
}

/// Splits a received frame into `(header, payload)`.
pub(super) fn split_frame(mut frame: Bytes) -> Option<Frame> {
    if frame.len() < 4 {
        return None;
    }
    let header_len = frame.get_u32_le() as usize;
    if header_len > frame.len() {
        return None;
    }
    let header = frame.split_to(header_len);
    Some((header, frame))
}

/// Reads frames of at most `max_frame` bytes.
pub(super) fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_type::<u32>()
        .max_frame_length(max_frame)
        .new_codec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = BytesMut::new();
        let frame = (Bytes::from_static(b"head"), Bytes::from_static(b"body"));
        FrameEncoder.encode(frame.clone(), &mut buf).unwrap();
        let len = buf.get_u32_le() as usize;
        assert_eq!(len, buf.len());
        assert_eq!(split_frame(buf.freeze()), Some(frame));
        assert_eq!(split_frame(Bytes::from_static(&[9, 0, 0, 0, 1])), None);
    }

    #[test]
    fn empty_frames_round_trip_and_short_ones_are_malformed() {
        let mut buf = BytesMut::new();
        FrameEncoder
            .encode((Bytes::new(), Bytes::new()), &mut buf)
            .unwrap();
        assert_eq!(&buf[..], &[4, 0, 0, 0, 0, 0, 0, 0]);
        buf.advance(4);
        assert_eq!(
            split_frame(buf.freeze()),
            Some((Bytes::new(), Bytes::new()))
        );
        for short in [&b""[..], b"\0", b"\0\0\0"] {
            assert_eq!(split_frame(Bytes::from_static(short)), None);
        }
    }
}
