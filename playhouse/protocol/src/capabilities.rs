//! The capability handshake: how a client opts in to what the original protocol lacks.
//!
//! The C# original's connectors (C#, C++, Java, Unity, Unreal, JavaScript) speak SPEC §4 and
//! nothing more: they cannot decompress LZ4 payloads. So a server never *imposes* an extension;
//! a client *asks* for it, and old clients, which never ask, see exactly the original wire.
//!
//! The handshake is one ordinary frame in each direction, with the reserved message id
//! [`HELLO_MSG_ID`](crate::control::HELLO_MSG_ID) (like the heartbeat's `@Heart@Beat@`):
//!
//! ```text
//! client -> server  msg_id "@Hello@", seq N (1..=65535), stage any, payload [requested: u32 LE]
//! server -> client  msg_id "@Hello@", seq N, error 0,                 payload [granted: u32 LE]
//! ```
//!
//! * It may be sent once, before the authenticate request (heartbeats may precede it). The
//!   server grants the intersection of what was requested and what it is configured to offer;
//!   unknown bits are ignored, so clients newer than the server keep working. A hello sent with
//!   seq 0 is applied without a reply.
//! * A second hello, or one after authentication, is answered with
//!   [`ErrorCode::INVALID_MESSAGE`](crate::error_code::ErrorCode::INVALID_MESSAGE) and changes
//!   nothing.
//! * The payload may be longer than 4 bytes: parameters of the capabilities asked for follow
//!   (see [`Hello`](crate::hello::Hello)), and anything after them is reserved and ignored. A
//!   payload shorter than 4 bytes, or with a malformed parameter, is an invalid hello.
//!
//! ```
//! use playhouse_protocol::Capabilities;
//!
//! let asked = Capabilities::LZ4;
//! let wire = asked.to_payload();
//! assert_eq!(&wire[..], &[1, 0, 0, 0]);
//! let granted = Capabilities::from_payload(&wire).unwrap() & Capabilities::LZ4;
//! assert!(granted.contains(Capabilities::LZ4));
//! ```

use std::fmt;
use std::ops::{BitAnd, BitOr};

use bytes::Bytes;

/// A set of protocol extensions, as a bit set (`u32`, little-endian on the wire).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(pub u32);

impl Capabilities {
    /// No extension: the original protocol.
    pub const NONE: Capabilities = Capabilities(0);
    /// Bit 0: the client decompresses LZ4 payloads (`original_size > 0`), so the server may
    /// compress large replies and pushes to it.
    pub const LZ4: Capabilities = Capabilities(1);
    /// Bit 1: the client resumes dropped sessions (see the `resume` module docs): the server
    /// grants a resume token at authentication, numbers the session's frames and keeps what
    /// the client has not acknowledged.
    pub const RESUME: Capabilities = Capabilities(2);
    /// Bit 2: the client names the stage type its logins join or create (carried in the
    /// hello's payload, see [`Hello`](crate::hello::Hello)); a server that grants it honours
    /// the name or refuses the login with
    /// [`ErrorCode::INVALID_STAGE_TYPE`](crate::error_code::ErrorCode::INVALID_STAGE_TYPE).
    pub const STAGE_TYPE: Capabilities = Capabilities(4);

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The 4-byte payload of a hello frame.
    pub fn to_payload(self) -> Bytes {
        Bytes::copy_from_slice(&self.0.to_le_bytes())
    }

    /// Reads a hello payload: its first 4 bytes (later bytes are reserved and ignored);
    /// `None` when it is shorter than 4 bytes.
    pub fn from_payload(payload: &[u8]) -> Option<Capabilities> {
        let bits: [u8; 4] = payload.get(..4)?.try_into().ok()?;
        Some(Capabilities(u32::from_le_bytes(bits)))
    }
}

impl BitAnd for Capabilities {
    type Output = Capabilities;

    fn bitand(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 & rhs.0)
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;

    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        if self.contains(Capabilities::LZ4) {
            set.entry(&"lz4");
        }
        if self.contains(Capabilities::RESUME) {
            set.entry(&"resume");
        }
        if self.contains(Capabilities::STAGE_TYPE) {
            set.entry(&"stage_type");
        }
        let known = Capabilities::LZ4.0 | Capabilities::RESUME.0 | Capabilities::STAGE_TYPE.0;
        let unknown = self.0 & !known;
        if unknown != 0 {
            set.entry(&format_args!("{unknown:#x}"));
        }
        set.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_ignores_trailing_bytes() {
        let caps = Capabilities(0x8000_0001);
        assert_eq!(Capabilities::from_payload(&caps.to_payload()), Some(caps));
        assert_eq!(
            Capabilities::from_payload(&[1, 0, 0, 0, 9, 9]),
            Some(Capabilities::LZ4)
        );
    }

    #[test]
    fn short_payloads_are_invalid() {
        assert_eq!(Capabilities::from_payload(&[]), None);
        assert_eq!(Capabilities::from_payload(&[1, 0, 0]), None);
    }

    #[test]
    fn set_operations() {
        let both = Capabilities::LZ4 | Capabilities(8);
        assert!(both.contains(Capabilities::LZ4));
        assert!(!Capabilities::NONE.contains(Capabilities::LZ4));
        assert!(Capabilities::NONE.contains(Capabilities::NONE));
        assert_eq!(both & Capabilities::LZ4, Capabilities::LZ4);
        assert!((Capabilities(8) & Capabilities::LZ4).is_empty());
        assert_eq!(format!("{both:?}"), "{\"lz4\", 0x8}");
        let resume = Capabilities::LZ4 | Capabilities::RESUME;
        assert_eq!(format!("{resume:?}"), "{\"lz4\", \"resume\"}");
    }
}
