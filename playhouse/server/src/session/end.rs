//! Why a connection ended, and the end of a session: what is still queued is flushed, and the
//! stage is told the client is gone.

use std::fmt;

use futures_util::SinkExt;
use playhouse_protocol::{MOVE_MSG_ID, MoveNotice, ServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::handle::Outbound;
use super::state::{Session, State};

/// How long a connection closed after a last notice waits for its client to close it.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a connection ended. It decides what happens next (a resumable session outlives a lost
/// connection; a handed-over socket goes to the session it resumes) and is logged as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The client closed the connection.
    ClientClosed,
    /// Reading failed.
    TransportError,
    /// Nothing arrived for `idle_timeout`.
    IdleTimeout,
    /// A frame started and was not complete within `frame_timeout`.
    FrameTimeout,
    /// No successful authentication within `auth_timeout`.
    AuthTimeout,
    /// Writing failed.
    WriteFailed,
    /// A write did not complete within `write_timeout`.
    WriteTimeout,
    /// The client sent a frame no client may send.
    ProtocolError,
    /// The client sent a message before authenticating.
    BeforeAuth,
    /// The client sent messages faster than `rate_limit` allows.
    RateLimited,
    /// The server is stopping.
    ServerStopping,
    /// The server closed this connection (a slow consumer, a login elsewhere).
    ClosedByServer,
    /// This connection resumes another session: its socket goes to that session's task.
    HandedOver,
    /// The client does not acknowledge what it receives: the replay buffer overflowed.
    ReplayOverflow,
    /// The client did not come back within the resume window.
    WindowPassed,
    /// The client's frame count on resuming is impossible.
    ResumeImpossible,
    /// The server drained, and the client's stage could not move before the deadline.
    Drained,
    /// The client's stage moved to another server; the session goes on there.
    Moved,
}

impl End {
    /// Whether a connection that ended so may be resumed by the client: the network failed,
    /// not the client's conduct nor the server's decision.
    pub(crate) fn lost_connection(self) -> bool {
        matches!(
            self,
            End::ClientClosed
                | End::TransportError
                | End::IdleTimeout
                | End::FrameTimeout
                | End::WriteFailed
                | End::WriteTimeout
        )
    }

    /// The reason as logged.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            End::ClientClosed => "closed by the client",
            End::TransportError => "transport error",
            End::IdleTimeout => "idle timeout",
            End::FrameTimeout => "frame timeout: a frame started and did not finish in time",
            End::AuthTimeout => "auth timeout",
            End::WriteFailed => "write failed",
            End::WriteTimeout => "write timeout: the client does not read",
            End::ProtocolError => "protocol error",
            End::BeforeAuth => "message before authentication",
            End::RateLimited => "rate limited",
            End::ServerStopping => "server stopping",
            End::ClosedByServer => "closed by the server",
            End::HandedOver => "handed over to the session it resumes",
            End::ReplayOverflow => "session lost: the client does not acknowledge what it receives",
            End::WindowPassed => {
                "session lost: the client did not come back within the resume window"
            }
            End::ResumeImpossible => "session lost: the client's frame count is impossible",
            End::Drained => "the server drained; the stage closed at the drain deadline",
            End::Moved => "the stage moved to another server",
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Session {
    /// Closes the connection gracefully once a last notice (`@Move@`, `@Close@`) is out: the
    /// write side ends after it (FIN), and what the client sent meanwhile is read and dropped
    /// until it closes, for at most [`LINGER`]. Closing with unread input resets the
    /// connection (RST), and a client that had not read the notice yet loses it. With
    /// `stop_aware`, a stopping server does not wait for the client.
    pub(super) async fn close_after_notice(&mut self, stop_aware: bool) {
        let _ = self.writer.get_mut().shutdown().await;
        let mut sink = [0u8; 4096];
        let kill = self.kill.clone();
        let input = self.reader.get_mut();
        let drain_input = tokio::time::timeout(LINGER, async {
            while matches!(input.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        tokio::select! {
            _ = kill.cancelled(), if stop_aware => {}
            _ = drain_input => {}
        }
    }

    /// Flushes what is queued (bounded in time; a queued close notice is the last frame),
    /// then tells the stage the client is gone.
    pub(super) async fn close(mut self, end: End) {
        tracing::debug!(reason = end.as_str(), "disconnected");
        self.end_resume();
        self.rx.close();
        let stage_id = match &self.state {
            State::Joined { stage, .. } => stage.stage_id(),
            _ => 0,
        };
        let said_hello = self.capabilities.is_some();
        let transport = self.transport;
        let flush = async {
            while let Ok(outbound) = self.rx.try_recv() {
                let frame = match outbound {
                    Outbound::Frame(frame) => {
                        self.queued.release(&frame);
                        frame
                    }
                    Outbound::Shared(shared) => {
                        self.queued.release(shared.frame());
                        shared.frame().clone()
                    }
                    Outbound::Close(code) if said_hello => ServerFrame::close(stage_id, code),
                    Outbound::Close(_) => break,
                    // The stage moved as the server stops: the client still learns where.
                    Outbound::Moved(endpoints) => match endpoints.get(transport) {
                        Some(endpoint) if said_hello => {
                            let notice = MoveNotice {
                                endpoint: endpoint.clone(),
                            };
                            ServerFrame::move_notice(stage_id, &notice)
                        }
                        _ => break,
                    },
                    Outbound::Detached(_)
                    | Outbound::Freeze(_)
                    | Outbound::Thaw
                    | Outbound::Relay(_) => continue,
                };
                let last = frame.is_close() || frame.msg_id == MOVE_MSG_ID;
                if self.writer.feed(frame).await.is_err() {
                    return;
                }
                if last {
                    break;
                }
            }
            let _ = SinkExt::<ServerFrame>::flush(&mut self.writer).await;
            let _ = SinkExt::<ServerFrame>::close(&mut self.writer).await;
        };
        if end != End::ProtocolError && self.connected {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), flush).await;
        }
        self.ctx.relayed().remove(self.id);
        if let State::Joined { stage, actor } = self.state {
            stage.disconnected(actor, self.id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::End;

    #[test]
    fn only_a_failed_network_may_be_resumed() {
        let resumable = [
            End::ClientClosed,
            End::TransportError,
            End::IdleTimeout,
            End::FrameTimeout,
            End::WriteFailed,
            End::WriteTimeout,
        ];
        let final_ = [
            End::AuthTimeout,
            End::ProtocolError,
            End::BeforeAuth,
            End::RateLimited,
            End::ServerStopping,
            End::ClosedByServer,
            End::HandedOver,
            End::ReplayOverflow,
            End::WindowPassed,
            End::ResumeImpossible,
            End::Drained,
            End::Moved,
        ];
        assert!(resumable.iter().all(|end| end.lost_connection()));
        assert!(final_.iter().all(|end| !end.lost_connection()));
    }
}
