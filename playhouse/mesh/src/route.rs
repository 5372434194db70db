//! [`Route`]: what a mesh message says about itself, the public face of the wire's route
//! header (`proto/route_header.proto`); [`RoutePacket`]: a route with its payload.

use bytes::Bytes;
use playhouse_protocol::{ErrorCode, MsgId, Packet};

use crate::wire::RouteHeader;

/// Where a mesh message goes and what it is.
///
/// A sender sets the message id and, as needed, the target stage, the account, the client
/// session, the stage to answer and the system/framework flags. The node fills in the rest:
/// this server's id and service, the request sequence, the reply and liveness flags, so
/// they cannot be forged by mistake. A received message's route also says who sent it and
/// whether it is a request; [`Mesh::reply`](crate::node::Mesh::reply) answers it.
///
/// ```
/// use playhouse_mesh::Route;
/// let route = Route::new("Chat").with_stage(7).with_account("alice");
/// assert_eq!((route.msg_id(), route.stage_id(), route.account_id()), ("Chat", 7, "alice"));
/// assert!(!route.is_request(), "a route is a request once the node sends it as one");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Route {
    pub(crate) header: RouteHeader,
}

impl Route {
    /// A route as its header: for carrying a message to another server (a moving stage's
    /// held messages), where [`Route::from_header`] rebuilds it.
    pub fn to_header(&self) -> RouteHeader {
        self.header.clone()
    }

    /// The route a header describes (see [`Route::to_header`]).
    pub fn from_header(header: RouteHeader) -> Route {
        Route { header }
    }

    /// The trace this message belongs to (`None`: untraced, e.g. a reply or an old sender).
    pub fn trace(&self) -> Option<crate::trace::TraceContext> {
        crate::trace::TraceContext::parse(text(&self.header.traceparent))
    }

    /// Part of `trace` (sent as its `traceparent`). Without it, the node gives a message the
    /// trace current when it is sent ([`TraceContext::for_send`](crate::trace::TraceContext::for_send)):
    /// set it when a message is built in one task and sent from another.
    #[must_use]
    pub fn with_trace(mut self, trace: crate::trace::TraceContext) -> Route {
        self.header.traceparent = Bytes::from(trace.traceparent());
        self
    }

    /// A message `msg_id` (e.g. a protobuf short type name; a [`MsgId`] is taken without a
    /// copy).
    pub fn new(msg_id: impl Into<MsgId>) -> Route {
        Route {
            header: RouteHeader {
                msg_id: msg_id.into().into_bytes(),
                ..RouteHeader::default()
            },
        }
    }

    /// For stage `stage_id` on the target Play server (0: none).
    #[must_use]
    pub fn with_stage(mut self, stage_id: i64) -> Route {
        self.header.stage_id = stage_id;
        self
    }

    /// About account `account_id`.
    #[must_use]
    pub fn with_account(mut self, account_id: impl Into<String>) -> Route {
        self.header.account_id = Bytes::from(account_id.into());
        self
    }

    /// Caused by client session `sid` of the sending server.
    #[must_use]
    pub fn with_sid(mut self, sid: u64) -> Route {
        self.header.sid = sid;
        self
    }

    /// For a request from a stage: the stage its reply goes back to.
    #[must_use]
    pub fn with_reply_stage(mut self, stage_id: i64) -> Route {
        self.header.reply_stage_id = stage_id;
        self
    }

    /// Handled by the receiver's system handlers instead of its API or stage handlers.
    #[must_use]
    pub fn with_system(mut self, is_system: bool) -> Route {
        self.header.is_system = is_system;
        self
    }

    /// A framework command (create / get-or-create / destroy stage).
    #[must_use]
    pub fn with_framework(mut self, is_framework: bool) -> Route {
        self.header.is_framework = is_framework;
        self
    }

    /// What the payload is.
    pub fn msg_id(&self) -> &str {
        text(&self.header.msg_id)
    }

    /// What the payload is, as a [`MsgId`] sharing the received frame's bytes (no copy).
    pub fn msg_id_shared(&self) -> MsgId {
        MsgId::try_from(self.header.msg_id.clone()).unwrap_or_default()
    }

    /// The sending server's id (received messages).
    pub fn from(&self) -> &str {
        text(&self.header.from)
    }

    /// The sending server's service id (received messages).
    pub fn service_id(&self) -> u32 {
        self.header.service_id
    }

    /// The target stage (0: none).
    pub fn stage_id(&self) -> i64 {
        self.header.stage_id
    }

    /// The account the message concerns.
    pub fn account_id(&self) -> &str {
        text(&self.header.account_id)
    }

    /// The client session on the sending server that caused it (0: none).
    pub fn sid(&self) -> u64 {
        self.header.sid
    }

    /// For a request from a stage: the stage to answer (0: none).
    pub fn reply_stage_id(&self) -> i64 {
        self.header.reply_stage_id
    }

    /// Whether the system handlers take it.
    pub fn is_system(&self) -> bool {
        self.header.is_system
    }

    /// Whether it is a framework command.
    pub fn is_framework(&self) -> bool {
        self.header.is_framework
    }

    /// Whether it is a request awaiting a reply (received messages).
    pub fn is_request(&self) -> bool {
        self.header.msg_seq != 0 && !self.header.is_reply
    }

    /// A reply's status (received replies).
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode(u16::try_from(self.header.error_code).unwrap_or(u16::MAX))
    }
}

/// A text field of the header. Received headers are checked to be UTF-8 when decoded
/// ([`decode_header`]), and sent ones are built from `str`s, so `""` is never seen in
/// practice for a non-empty field.
fn text(field: &Bytes) -> &str {
    std::str::from_utf8(field).unwrap_or_default()
}

/// Decodes a received route header: its text fields are slices of `encoded` (no copies),
/// and a header whose text is not UTF-8 is refused as `string` fields would be.
pub(crate) fn decode_header(encoded: Bytes) -> Option<RouteHeader> {
    let header = <RouteHeader as prost::Message>::decode(encoded).ok()?;
    let utf8 = [
        &header.msg_id,
        &header.from,
        &header.account_id,
        &header.traceparent,
    ]
    .into_iter()
    .all(|field| std::str::from_utf8(field).is_ok());
    utf8.then_some(header)
}

/// A mesh message: its route and payload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutePacket {
    /// Routing information.
    pub route: Route,
    /// Message body.
    pub payload: Bytes,
}

impl RoutePacket {
    /// The message as a [`Packet`] (id from the header).
    pub fn packet(&self) -> Packet {
        Packet::new(self.route.msg_id_shared(), self.payload.clone())
    }

    /// The error code of a reply.
    pub fn error_code(&self) -> ErrorCode {
        self.route.error_code()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message;

    use super::{Route, decode_header};

    #[test]
    fn a_decoded_header_shares_the_frame_and_refuses_text_that_is_not_utf8() {
        let route = Route::new("Chat").with_account("alice").with_stage(7);
        let encoded = Bytes::from(route.to_header().encode_to_vec());
        let decoded = Route::from_header(decode_header(encoded.clone()).expect("decodes"));
        assert_eq!(decoded, route);
        assert_eq!((decoded.msg_id(), decoded.account_id()), ("Chat", "alice"));
        let id = decoded.msg_id_shared();
        let frame = encoded.as_ptr_range();
        assert!(frame.contains(&id.as_bytes().as_ptr()), "no copy of the id");
        for field in 0..4 {
            let mut header = route.to_header();
            let bad = Bytes::from_static(&[0xff, 0xfe]);
            match field {
                0 => header.msg_id = bad,
                1 => header.from = bad,
                2 => header.account_id = bad,
                _ => header.traceparent = bad,
            }
            let encoded = Bytes::from(header.encode_to_vec());
            assert_eq!(decode_header(encoded), None, "field {field}");
        }
    }
}
