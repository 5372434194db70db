//! What every client session of one server shares: its settings, the stage host clients log
//! into, the registry of resumable sessions, and the signal that stops them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use playhouse_protocol::{Capabilities, MsgId};
use tokio_util::sync::CancellationToken;

use super::handle::SessionId;
use super::relay::RelayedSessions;
use super::resume::registry::ResumeRegistry;
use crate::config::PlayConfig;
use crate::limits::StageQuota;
use crate::metrics::Metrics;
use crate::stage::host::StageHost;

/// Shared by the sessions of one server.
#[derive(Debug)]
pub(crate) struct SessionContext {
    config: PlayConfig,
    /// The message that authenticates a client, and the id of its reply.
    auth_msg_id: MsgId,
    auth_reply_id: MsgId,
    host: Arc<StageHost>,
    /// What clients from one source address may create by logging in.
    stage_quota: Arc<StageQuota>,
    metrics: Arc<Metrics>,
    /// Every session's kill switch is a child of this: a stop reaches even a session that
    /// waits on a full stage mailbox.
    stop: CancellationToken,
    /// Resumable sessions by token.
    resumes: ResumeRegistry,
    /// Sessions whose stage moved away, relayed to it from here.
    relayed: RelayedSessions,
    next_session_id: AtomicU64,
}

impl SessionContext {
    pub(crate) fn new(config: PlayConfig, host: Arc<StageHost>, metrics: Arc<Metrics>) -> Self {
        SessionContext {
            auth_msg_id: MsgId::from(config.authenticate_msg_id.as_str()),
            auth_reply_id: MsgId::from(config.authenticate_reply_id()),
            stage_quota: Arc::new(StageQuota::new(
                config.max_stages_per_source,
                config.stage_creation_rate_per_source,
            )),
            config,
            host,
            metrics,
            stop: CancellationToken::new(),
            resumes: ResumeRegistry::default(),
            relayed: RelayedSessions::default(),
            next_session_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn config(&self) -> &PlayConfig {
        &self.config
    }

    pub(crate) fn auth_msg_id(&self) -> &MsgId {
        &self.auth_msg_id
    }

    pub(crate) fn auth_reply_id(&self) -> &MsgId {
        &self.auth_reply_id
    }

    /// Where clients' logins find or create their stages.
    pub(crate) fn host(&self) -> &StageHost {
        &self.host
    }

    /// The stages clients from one source address may create.
    pub(crate) fn stage_quota(&self) -> &Arc<StageQuota> {
        &self.stage_quota
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether the server is stopping (no new logins).
    pub(crate) fn is_stopping(&self) -> bool {
        self.host.control().is_stopping()
    }

    /// Cancelled when the server closes every connection.
    pub(crate) fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    pub(crate) fn resumes(&self) -> &ResumeRegistry {
        &self.resumes
    }

    pub(crate) fn relayed(&self) -> &RelayedSessions {
        &self.relayed
    }

    pub(crate) fn next_session_id(&self) -> SessionId {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The protocol extensions this server grants to a client that asks for them.
    pub(crate) fn offered_capabilities(&self) -> Capabilities {
        let lz4 = if self.config.codec.compression_threshold.is_some() {
            Capabilities::LZ4
        } else {
            Capabilities::NONE
        };
        let resume = if self.config.resume.is_some() {
            Capabilities::RESUME
        } else {
            Capabilities::NONE
        };
        // A stage type named by the client is always honoured (or refused with a code).
        lz4 | resume | Capabilities::STAGE_TYPE
    }
}
