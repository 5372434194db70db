//! A resumable session's state as it moves with its stage to another server.

use playhouse_protocol::{Capabilities, ResumeToken, ServerFrame};

/// A resumable session's state as it moves: its token, and both numbered streams.
#[derive(Debug)]
pub(crate) struct SessionState {
    pub(crate) token: ResumeToken,
    /// Frames sent to the client; the last `unacked` ones are not acknowledged.
    pub(crate) sent: u64,
    pub(crate) unacked: Vec<ServerFrame>,
    /// Frames received from the client, and how many of those were acknowledged.
    pub(crate) received: u64,
    pub(crate) acked: u64,
    pub(crate) capabilities: Capabilities,
}
