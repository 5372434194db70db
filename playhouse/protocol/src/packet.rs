use bytes::Bytes;

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

    /// Parses the payload as a prost message.
    pub fn parse<M: prost::Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.payload.clone())
    }

    /// Whether the id is `M`'s short type name.
    pub fn is<M: prost::Name>(&self) -> bool {
        self.msg_id == M::NAME
    }
}
