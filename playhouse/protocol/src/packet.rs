use bytes::Bytes;

use crate::error_code::ErrorCode;

/// A message id: valid UTF-8 that shares the frame's buffer (no copy on decode).
pub type MsgId = bytestring::ByteString;

/// A message: its id (for protobuf messages, the short type name, e.g. `EchoRequest`) and
/// its payload bytes. Cloning is cheap (reference-counted buffers); dropping frees them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Packet {
    /// What the message is; handlers and stages dispatch on it.
    pub msg_id: MsgId,
    /// The serialized message body.
    pub payload: Bytes,
}

impl Packet {
    /// A packet from an id and raw payload bytes.
    pub fn new(msg_id: impl Into<MsgId>, payload: impl Into<Bytes>) -> Self {
        Packet {
            msg_id: msg_id.into(),
            payload: payload.into(),
        }
    }

    /// A packet with an empty payload.
    pub fn empty(msg_id: impl Into<MsgId>) -> Self {
        Packet::new(msg_id, Bytes::new())
    }

    /// Serializes a prost message; the id is its short type name (`prost::Name::NAME`).
    ///
    /// ```
    /// # use playhouse_protocol::Packet;
    /// #[derive(Clone, PartialEq, prost::Message)]
    /// struct Ping { #[prost(uint32, tag = "1")] n: u32 }
    /// impl prost::Name for Ping {
    ///     const NAME: &'static str = "Ping";
    ///     const PACKAGE: &'static str = "demo";
    /// }
    /// let packet = Packet::from_message(&Ping { n: 3 });
    /// assert_eq!(packet.msg_id, "Ping");
    /// assert_eq!(packet.parse::<Ping>().unwrap().n, 3);
    /// ```
    pub fn from_message<M: prost::Message + prost::Name>(message: &M) -> Self {
        Packet::new(M::NAME, Bytes::from(message.encode_to_vec()))
    }

    /// Parses the payload as a prost message, whatever the packet's id says (see
    /// [`Packet::decode`] for the checked form).
    pub fn parse<M: prost::Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.payload.clone())
    }

    /// Decodes the packet as the message `M`: its id must be `M`'s short type name and its
    /// payload a valid `M`. The error says which of the two failed, and turns into
    /// [`ErrorCode::INVALID_MESSAGE`] with `?` in a handler.
    ///
    /// ```
    /// # use playhouse_protocol::{ErrorCode, Packet, PayloadError};
    /// #[derive(Clone, PartialEq, prost::Message)]
    /// struct Ping { #[prost(uint32, tag = "1")] n: u32 }
    /// impl prost::Name for Ping {
    ///     const NAME: &'static str = "Ping";
    ///     const PACKAGE: &'static str = "demo";
    /// }
    /// let ping: Ping = Packet::from_message(&Ping { n: 3 }).decode().unwrap();
    /// assert_eq!(ping.n, 3);
    ///
    /// let other = Packet::new("Pong", &b""[..]).decode::<Ping>().unwrap_err();
    /// assert!(matches!(other, PayloadError::WrongMessage { expected: "Ping", .. }));
    /// let garbage = Packet::new("Ping", &b"\xff"[..]).decode::<Ping>().unwrap_err();
    /// assert!(matches!(garbage, PayloadError::Invalid { .. }));
    /// assert_eq!(ErrorCode::from(garbage), ErrorCode::INVALID_MESSAGE);
    /// ```
    pub fn decode<M: prost::Message + prost::Name + Default>(&self) -> Result<M, PayloadError> {
        if self.msg_id != M::NAME {
            return Err(PayloadError::WrongMessage {
                expected: M::NAME,
                actual: self.msg_id.clone(),
            });
        }
        M::decode(self.payload.clone()).map_err(|source| PayloadError::Invalid {
            msg_id: self.msg_id.clone(),
            source,
        })
    }

    /// Whether the id is `M`'s short type name.
    pub fn is<M: prost::Name>(&self) -> bool {
        self.msg_id == M::NAME
    }
}

/// Why [`Packet::decode`] could not produce the message asked for. Either way the sender sent
/// something this side does not understand: [`ErrorCode::INVALID_MESSAGE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The packet is another message.
    #[error("expected a `{expected}`, got a `{actual}`")]
    WrongMessage {
        /// The short type name asked for.
        expected: &'static str,
        /// The packet's message id.
        actual: MsgId,
    },
    /// The id matches but the payload does not decode as that message.
    #[error("payload of `{msg_id}` does not decode: {source}")]
    Invalid {
        /// The packet's message id.
        msg_id: MsgId,
        /// What prost found wrong.
        source: prost::DecodeError,
    },
}

impl From<PayloadError> for ErrorCode {
    fn from(_: PayloadError) -> Self {
        ErrorCode::INVALID_MESSAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Ping {
        #[prost(string, tag = "1")]
        text: String,
    }

    impl prost::Name for Ping {
        const NAME: &'static str = "Ping";
        const PACKAGE: &'static str = "test";
    }

    #[test]
    fn decode_checks_the_id_then_the_payload() {
        let packet = Packet::from_message(&Ping { text: "hi".into() });
        assert_eq!(packet.decode::<Ping>().unwrap().text, "hi");

        let renamed = Packet::new("Pong", packet.payload.clone());
        assert_eq!(
            renamed.decode::<Ping>(),
            Err(PayloadError::WrongMessage {
                expected: "Ping",
                actual: MsgId::from_static("Pong"),
            })
        );
        // `parse` does not look at the id.
        assert_eq!(renamed.parse::<Ping>().unwrap().text, "hi");

        // Field 1 announced as a 5-byte string, 1 byte present.
        let truncated = Packet::new("Ping", &b"\x0a\x05h"[..]);
        let error = truncated.decode::<Ping>().unwrap_err();
        assert!(matches!(error, PayloadError::Invalid { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("payload of `Ping` does not decode")
        );
        assert_eq!(ErrorCode::from(error), ErrorCode::INVALID_MESSAGE);
    }
}
