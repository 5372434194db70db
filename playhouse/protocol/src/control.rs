//! The framework's reserved message ids: the control frames a connection handles itself and
//! never hands to the application (nor counts in a resumable session's streams).

/// The heartbeat message id; sent with `seq` 0, stage 0 and an empty payload, echoed by the server.
pub const HEARTBEAT_MSG_ID: &str = "@Heart@Beat@";
/// The reserved message id of the capability handshake (see
/// [`Capabilities`](crate::capabilities::Capabilities)).
pub const HELLO_MSG_ID: &str = "@Hello@";
/// Server -> client, seq 0, right before the reply to a successful authentication: the
/// session is resumable; payload [`ResumeGrant`](crate::resume::ResumeGrant).
pub const SESSION_MSG_ID: &str = "@Session@";
/// Client -> server request on a new connection: resume a session (payload
/// [`ResumeRequest`](crate::resume::ResumeRequest)); the reply carries the count of client
/// frames the server received.
pub const RESUME_MSG_ID: &str = "@Resume@";
/// Either direction, seq 0: acknowledges data frames received so far (payload `u64` LE).
pub const ACK_MSG_ID: &str = "@Ack@";
/// Client -> server, seq 0: the client ends its resumable session on purpose.
pub const END_MSG_ID: &str = "@End@";
/// Server -> client, seq 0, right before the server closes the connection on purpose: the
/// frame's error code says why (e.g. [`ErrorCode::STAGE_DRAINED`]), and a resumable session
/// ends with it. Sent only to clients that sent a hello (the original's connectors never do).
///
/// [`ErrorCode::STAGE_DRAINED`]: crate::error_code::ErrorCode::STAGE_DRAINED
pub const CLOSE_MSG_ID: &str = "@Close@";
/// Server -> client, seq 0, to a resumable session whose stage moved to another server: the
/// connection closes after it, and the client resumes the same session (same token, same
/// counts) at the endpoint in the payload (a [`MoveNotice`](crate::resume::MoveNotice)), over
/// the same transport.
pub const MOVE_MSG_ID: &str = "@Move@";
/// Server -> client: the message id of the error reply (`INVALID_MESSAGE`) to a request whose
/// own id was empty. A reply like any other (counted in a resumable session's streams, not a
/// control frame); it has an id of its own because the original's connectors reject a frame
/// with an empty one.
pub const INVALID_MSG_ID: &str = "@Invalid@";

/// Whether `msg_id` is one of the framework's control frames (heartbeat, hello, and the
/// resume frames above): control frames are never counted in a resumable session's streams.
pub fn is_control_msg_id(msg_id: &str) -> bool {
    msg_id.starts_with('@')
        && matches!(
            msg_id,
            HEARTBEAT_MSG_ID
                | HELLO_MSG_ID
                | SESSION_MSG_ID
                | RESUME_MSG_ID
                | ACK_MSG_ID
                | END_MSG_ID
                | CLOSE_MSG_ID
                | MOVE_MSG_ID
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_ids_are_exactly_the_reserved_ones() {
        for id in [
            HEARTBEAT_MSG_ID,
            HELLO_MSG_ID,
            SESSION_MSG_ID,
            RESUME_MSG_ID,
            ACK_MSG_ID,
            END_MSG_ID,
            CLOSE_MSG_ID,
            MOVE_MSG_ID,
        ] {
            assert!(is_control_msg_id(id), "{id}");
        }
        for id in ["EchoRequest", "@", "@Other@", "Ack"] {
            assert!(!is_control_msg_id(id), "{id}");
        }
    }
}
