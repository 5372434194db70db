//! A client's hello payload: the capabilities it asks for and the parameters that go with
//! them (see [`Capabilities`] for the handshake itself).
//!
//! ```text
//! +-----------------+------------------------------------------------------+-----------+
//! | requested: u32  | if requested has STAGE_TYPE: [type_len: u8][UTF-8]   | reserved  |
//! +-----------------+------------------------------------------------------+-----------+
//! ```
//!
//! Bytes after the parameters a server knows are ignored, so clients newer than the server
//! keep working.
//!
//! ```
//! use playhouse_protocol::{Capabilities, Hello};
//!
//! let hello = Hello::from(Capabilities::LZ4).naming("Arena");
//! let wire = hello.to_payload();
//! assert_eq!(&wire[..], &[5, 0, 0, 0, 5, b'A', b'r', b'e', b'n', b'a']);
//! assert_eq!(Hello::from_payload(&wire), Some(hello));
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::capabilities::Capabilities;

/// Longest stage type a hello can name, in bytes (its length travels in one byte).
pub const MAX_STAGE_TYPE_LEN: usize = u8::MAX as usize;

/// What a client's hello asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    /// The protocol extensions asked for.
    pub requested: Capabilities,
    /// With [`Capabilities::STAGE_TYPE`]: the stage type this connection's logins name
    /// (1..=[`MAX_STAGE_TYPE_LEN`] bytes).
    pub stage_type: Option<String>,
}

impl From<Capabilities> for Hello {
    fn from(requested: Capabilities) -> Hello {
        Hello {
            requested,
            stage_type: None,
        }
    }
}

impl Hello {
    /// Names `stage_type` for this connection's logins, and asks for
    /// [`Capabilities::STAGE_TYPE`]. An empty name names nothing.
    pub fn naming(mut self, stage_type: &str) -> Hello {
        if stage_type.is_empty() {
            self.requested = Capabilities(self.requested.0 & !Capabilities::STAGE_TYPE.0);
            self.stage_type = None;
        } else {
            self.requested = self.requested | Capabilities::STAGE_TYPE;
            self.stage_type = Some(stage_type.to_owned());
        }
        self
    }

    /// The hello frame's payload. A stage type longer than [`MAX_STAGE_TYPE_LEN`] cannot be
    /// named: check it first (the Connector refuses it at `connect`).
    pub fn to_payload(&self) -> Bytes {
        let name = self.stage_type.as_deref().filter(|_| self.names_type());
        let mut out = BytesMut::with_capacity(4 + name.map_or(0, |n| 1 + n.len()));
        out.put_u32_le(self.requested.0);
        if let Some(name) = name {
            let len = name.len().min(MAX_STAGE_TYPE_LEN);
            out.put_u8(len as u8);
            out.put_slice(&name.as_bytes()[..len]);
        }
        out.freeze()
    }

    /// Reads a hello payload; `None` when it is shorter than 4 bytes, or asks for
    /// [`Capabilities::STAGE_TYPE`] without a well-formed, non-empty UTF-8 name.
    pub fn from_payload(payload: &[u8]) -> Option<Hello> {
        let requested = Capabilities::from_payload(payload)?;
        let mut hello = Hello::from(requested);
        if hello.names_type() {
            let (&len, rest) = payload[4..].split_first()?;
            let name = rest.get(..usize::from(len)).filter(|n| !n.is_empty())?;
            hello.stage_type = Some(std::str::from_utf8(name).ok()?.to_owned());
        }
        Some(hello)
    }

    fn names_type(&self) -> bool {
        self.requested.contains(Capabilities::STAGE_TYPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_alone_are_four_bytes_and_trailing_bytes_are_ignored() {
        let hello = Hello::from(Capabilities::RESUME);
        assert_eq!(&hello.to_payload()[..], &[2, 0, 0, 0]);
        assert_eq!(Hello::from_payload(&[2, 0, 0, 0, 9, 9]), Some(hello));
        assert_eq!(Hello::from_payload(&[2, 0, 0]), None);
    }

    #[test]
    fn a_named_type_round_trips_and_an_empty_name_names_nothing() {
        let hello = Hello::from(Capabilities::RESUME).naming("Room");
        assert!(hello.requested.contains(Capabilities::STAGE_TYPE));
        let wire = hello.to_payload();
        assert_eq!(&wire[..], &[6, 0, 0, 0, 4, b'R', b'o', b'o', b'm']);
        assert_eq!(Hello::from_payload(&wire), Some(hello.clone()));
        let unnamed = hello.naming("");
        assert_eq!(unnamed, Hello::from(Capabilities::RESUME));
    }

    #[test]
    fn a_malformed_type_is_an_invalid_hello() {
        // Bit set, but no length, an empty name, a short name, or bytes that are not UTF-8.
        for bad in [
            &[4, 0, 0, 0][..],
            &[4, 0, 0, 0, 0],
            &[4, 0, 0, 0, 3, b'a'],
            &[4, 0, 0, 0, 1, 0xff],
        ] {
            assert_eq!(Hello::from_payload(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_longest_name_fits_its_length_byte() {
        let name = "x".repeat(MAX_STAGE_TYPE_LEN);
        let hello = Hello::default().naming(&name);
        let wire = hello.to_payload();
        assert_eq!(wire.len(), 4 + 1 + MAX_STAGE_TYPE_LEN);
        assert_eq!(Hello::from_payload(&wire), Some(hello));
    }
}
