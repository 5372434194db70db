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
        crate::trace::TraceContext::parse(&self.header.traceparent)
    }

    /// Part of `trace` (sent as its `traceparent`). Without it, the node gives a message the
    /// trace current when it is sent ([`TraceContext::for_send`](crate::trace::TraceContext::for_send)):
    /// set it when a message is built in one task and sent from another.
    #[must_use]
    pub fn with_trace(mut self, trace: crate::trace::TraceContext) -> Route {
        self.header.traceparent = trace.traceparent();
        self
    }

    /// A message `msg_id` (e.g. a protobuf short type name).
    pub fn new(msg_id: impl Into<String>) -> Route {
        Route {
            header: RouteHeader {
                msg_id: msg_id.into(),
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
        self.header.account_id = account_id.into();
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
        &self.header.msg_id
    }

    /// The sending server's id (received messages).
    pub fn from(&self) -> &str {
        &self.header.from
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
        &self.header.account_id
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
        Packet::new(MsgId::from(self.route.msg_id()), self.payload.clone())
    }

    /// The error code of a reply.
    pub fn error_code(&self) -> ErrorCode {
        self.route.error_code()
    }
}
