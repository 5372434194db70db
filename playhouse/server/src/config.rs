//! Play server settings, each with a documented default.

use std::time::Duration;

use playhouse_protocol::CodecConfig;

/// Settings of a Play server. Every field has a default suited to an internet-facing server.
#[derive(Clone, Debug)]
pub struct PlayConfig {
    /// Message id that authenticates a connection. Default: `AuthenticateRequest`; the reply id
    /// replaces `Request` with `Reply` (`AuthenticateReply`).
    pub authenticate_msg_id: String,
    /// A connection that has not authenticated within this time is closed. Default: 10 s.
    pub auth_timeout: Duration,
    /// A connection silent for this long is closed (clients heartbeat every 10 s).
    /// Default: 90 s.
    pub idle_timeout: Duration,
    /// Frame limits and compression. Default: 2 MiB bodies, LZ4 from 512 bytes.
    pub codec: CodecConfig,
    /// Messages queued for one stage before senders wait. Default: 4096.
    pub stage_mailbox_capacity: usize,
    /// Frames queued for one client before it counts as a slow consumer and is disconnected.
    /// Default: 1024.
    pub session_outbound_capacity: usize,
    /// How long a graceful stop waits for stages and connections. Default: 10 s.
    pub shutdown_timeout: Duration,
}

impl Default for PlayConfig {
    fn default() -> Self {
        PlayConfig {
            authenticate_msg_id: "AuthenticateRequest".to_owned(),
            auth_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            codec: CodecConfig::default(),
            stage_mailbox_capacity: 4096,
            session_outbound_capacity: 1024,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl PlayConfig {
    /// The reply id for the authenticate message.
    pub(crate) fn authenticate_reply_id(&self) -> String {
        reply_id(&self.authenticate_msg_id)
    }
}

/// `FooRequest` → `FooReply`; any other id gets `Reply` appended.
pub(crate) fn reply_id(request_id: &str) -> String {
    match request_id.strip_suffix("Request") {
        Some(stem) => format!("{stem}Reply"),
        None => format!("{request_id}Reply"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reply_ids() {
        assert_eq!(super::reply_id("AuthenticateRequest"), "AuthenticateReply");
        assert_eq!(super::reply_id("Login"), "LoginReply");
    }
}
