use std::fmt;

/// A wire status code (`u16`), carried by every server frame and every mesh reply.
///
/// Framework codes are associated constants; codes from 1000 up belong to the application,
/// and 60201..=60203 are raised by the connector itself, never sent by a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ErrorCode(pub u16);

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        impl ErrorCode {
            $($(#[$doc])* pub const $name: ErrorCode = ErrorCode($value);)*

            /// The constant's name for a framework code, `None` for application codes.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// The request succeeded.
    SUCCESS = 0;
    /// A server-to-server request got no reply in time.
    REQUEST_TIMEOUT = 1;
    /// The target server is unknown or down.
    SERVER_NOT_FOUND = 2;
    /// The stage does not exist (and no default stage type may create it).
    STAGE_NOT_FOUND = 3;
    /// The actor does not exist in the stage.
    ACTOR_NOT_FOUND = 4;
    /// `Actor::on_authenticate` refused the client.
    AUTHENTICATION_FAILED = 5;
    /// A message that needs an authenticated session arrived before authentication.
    NOT_AUTHENTICATED = 6;
    /// The session is already authenticated.
    ALREADY_AUTHENTICATED = 7;
    /// A stage with this id already exists.
    STAGE_ALREADY_EXISTS = 8;
    /// `Stage::on_create` refused, or the stage could not be started.
    STAGE_CREATION_FAILED = 9;
    /// `Stage::on_join_stage` refused the actor.
    JOIN_STAGE_FAILED = 10;
    /// The message could not be parsed.
    INVALID_MESSAGE = 11;
    /// No handler is registered for the message id.
    HANDLER_NOT_FOUND = 12;
    /// The stage type is not registered.
    INVALID_STAGE_TYPE = 13;
    /// A framework-level failure.
    SYSTEM_ERROR = 14;
    /// The user code returned an error without a code.
    UNCHECKED_CONTENTS_ERROR = 15;
    /// Authentication succeeded but left the account id empty.
    INVALID_ACCOUNT_ID = 16;
    /// The stage rejected the join request.
    JOIN_STAGE_REJECTED = 17;
    /// The stage's mailbox is full: a server-to-server message was refused rather than
    /// queued without bound. The stage is alive; the sender may retry later.
    STAGE_BUSY = 18;
    /// The reply would exceed `max_packet_size`; it was not sent.
    PACKET_TOO_LARGE = 20;
    /// The server hosts as many stages as it may (`max_stages`), or the client's address has
    /// created as many live stages as it may (`max_stages_per_source`); no new one was created.
    STAGE_LIMIT_REACHED = 21;
    /// This connection, or the client's address, creates stages faster than its creation rate
    /// allows.
    STAGE_CREATION_RATE_EXCEEDED = 22;
    /// A resumable session cannot be resumed: its resume window passed, its replay buffer
    /// overflowed, or the token is unknown. What the client missed is lost; it may
    /// authenticate again.
    SESSION_LOST = 23;
    /// The server is draining before it stops: it creates no stage and admits no new player
    /// (a returning player still gets its actor back). Try another server of its service.
    SERVER_DRAINING = 24;
    /// The stage was closed because its server drained and the stage could not move before the
    /// drain deadline. Sent in a [`CLOSE_MSG_ID`](crate::control::CLOSE_MSG_ID) frame right
    /// before the connection is closed.
    STAGE_DRAINED = 25;
    /// Server-to-server: the stage moved to another Play server, whose id is the reply's
    /// payload (UTF-8). The mesh retries there by itself and remembers the new location, so
    /// senders see this code only after too many hops.
    STAGE_MOVED = 26;
    /// An unexpected internal failure.
    INTERNAL_ERROR = 99;
    /// Connector: the connection is down (the request was not, or could not be, answered).
    CONNECTOR_DISCONNECTED = 60201;
    /// Connector: no reply within the request timeout.
    CONNECTOR_REQUEST_TIMEOUT = 60202;
    /// Connector: the operation needs an authenticated connection.
    CONNECTOR_UNAUTHENTICATED = 60203;
}

impl ErrorCode {
    /// First code reserved for application errors.
    pub const APPLICATION_BASE: u16 = 1000;

    /// Whether this is [`ErrorCode::SUCCESS`].
    pub fn is_success(self) -> bool {
        self.0 == 0
    }
}

impl From<u16> for ErrorCode {
    fn from(code: u16) -> Self {
        ErrorCode(code)
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> Self {
        code.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_match_the_spec() {
        assert_eq!(ErrorCode::AUTHENTICATION_FAILED.0, 5);
        assert_eq!(ErrorCode::INVALID_ACCOUNT_ID.0, 16);
        assert_eq!(ErrorCode::STAGE_BUSY.0, 18);
        assert_eq!(ErrorCode(18).name(), Some("STAGE_BUSY"));
        assert_eq!(ErrorCode::INTERNAL_ERROR.0, 99);
        assert_eq!(ErrorCode(60202).name(), Some("CONNECTOR_REQUEST_TIMEOUT"));
        assert_eq!(ErrorCode(1234).name(), None);
        assert_eq!(ErrorCode(3).to_string(), "3 (STAGE_NOT_FOUND)");
    }
}
