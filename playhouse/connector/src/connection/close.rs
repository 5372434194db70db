//! Why a connection ended, and winding it up: the connection marked dead, every request settled,
//! the disconnect reported, and (when the client asked to close) what was queued flushed.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use playhouse_protocol::{ClientFrame, DecodeError, ErrorCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::command::{Command, Responder};
use super::task::Task;
use crate::callbacks::{Event, SessionEvent};
use crate::error::{CloseCause, ConnectorError};

/// Why a connection ended.
#[derive(Debug)]
pub(super) enum End {
    /// `disconnect()`.
    Client,
    /// Every connector handle was dropped.
    Dropped,
    /// The server closed the stream at a frame boundary.
    ServerClosed,
    /// The transport failed (including a stream cut inside a frame).
    Io(io::Error),
    /// The server sent an undecodable frame.
    Protocol(DecodeError),
    /// The server answered in HTTP: a WebSocket or HTTP port.
    HttpPort,
    /// Nothing arrived for the heartbeat timeout.
    Silent(Duration),
    /// The resumable session could not be resumed.
    SessionLost,
    /// The server closed the connection on purpose and said why (`@Close@`).
    Closed(ErrorCode),
    /// The server said the stage moved to another server (`@Move@`): this connection is
    /// over, the session resumes there.
    MoveNotice,
    /// The stage moved to this endpoint and the connection could not follow it.
    Moved(Arc<str>),
}

impl End {
    /// Whether the connection (not the session) is over, so a session may resume.
    pub(super) fn lost_connection(&self) -> bool {
        matches!(
            self,
            End::ServerClosed | End::Io(_) | End::Silent(_) | End::MoveNotice
        )
    }
}

impl Task {
    /// The likely cause of an end the server chose, when it is worth naming: an HTTP answer,
    /// or a close (clean or reset) before authentication succeeded.
    fn cause(&self, end: &End) -> Option<CloseCause> {
        let authenticated = self.status.authenticated.load(Ordering::SeqCst);
        match end {
            End::HttpPort => Some(CloseCause::HttpPort),
            End::Closed(code) => Some(CloseCause::Closed(*code)),
            End::Moved(endpoint) => Some(CloseCause::Moved(Arc::clone(endpoint))),
            End::ServerClosed if !authenticated => Some(CloseCause::BeforeAuthentication),
            End::Io(error)
                if !authenticated
                    && matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::UnexpectedEof
                    ) =>
            {
                Some(CloseCause::BeforeAuthentication)
            }
            _ => None,
        }
    }

    /// Marks the connection dead, settles every request, reports the disconnect and, for a
    /// client-initiated close, flushes what was queued before it.
    pub(super) async fn finish<W>(
        mut self,
        end: End,
        commands: &mut mpsc::Receiver<Command>,
        write: &mut W,
        close_timeout: Duration,
    ) where
        W: AsyncWrite + Unpin,
    {
        match &end {
            End::Protocol(error) => {
                tracing::warn!(%error, "protocol error from the server; connection closed");
            }
            End::HttpPort => {
                tracing::warn!("the server answered in HTTP: a WebSocket port? connection closed");
            }
            End::Silent(limit) => {
                tracing::warn!(
                    ?limit,
                    "nothing received from the server; connection dropped"
                );
            }
            End::Io(error) => tracing::info!(%error, "connection lost"),
            End::SessionLost => tracing::info!("resumable session lost"),
            End::Closed(code) => tracing::info!(%code, "the server closed the connection"),
            End::Moved(endpoint) => {
                tracing::warn!(%endpoint, "the stage moved and this connection cannot follow it");
            }
            End::MoveNotice => tracing::debug!("the server moved the stage"),
            End::ServerClosed => tracing::debug!("server closed the connection"),
            End::Client | End::Dropped => tracing::debug!("connection closed by the client"),
        }
        let cause = self.cause(&end);
        if let Some(cause) = &cause {
            tracing::warn!(error = %cause.clone().error(), "connection closed");
        }
        *self
            .status
            .cause
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = cause.clone();
        self.status.alive.store(false, Ordering::SeqCst);
        self.status.authenticated.store(false, Ordering::SeqCst);
        self.release_stalled();

        // Nothing new gets in; what is already queued is settled here.
        commands.close();
        let graceful = matches!(end, End::Client);
        let mut unsent = Vec::new();
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Send(packet) if graceful => {
                    let frame = ClientFrame::new(packet.msg_id, 0, self.stage_id, packet.payload);
                    self.encode(frame);
                }
                Command::Send(_) => {}
                Command::Request(request) => unsent.push(request.responder),
            }
        }
        let had_session = self.session.is_some();
        if graceful && self.session.take().is_some() {
            // Leaving on purpose: the server need not keep the session.
            self.encode(ClientFrame::end_session());
        }
        let ends_session = matches!(end, End::Closed(_) | End::Moved(_));
        if matches!(end, End::SessionLost) || (ends_session && had_session) {
            self.callbacks.emit(Event::Session(SessionEvent::Lost));
        }

        // on_disconnect first: by the time a failed request is observed, it is queued.
        self.callbacks.emit(Event::Disconnect);

        let error = || match (&end, &cause) {
            (_, Some(cause)) => cause.clone().error(),
            (End::Protocol(error), None) => ConnectorError::Protocol(error.to_string()),
            (End::SessionLost, None) => ConnectorError::SessionLost,
            _ => ConnectorError::Disconnected,
        };
        let in_flight: Vec<Responder> = self.pending.drain().map(|p| p.responder).collect();
        self.publish_pending();
        for responder in in_flight.into_iter().chain(unsent) {
            self.complete(responder, Err(error()));
        }

        if graceful {
            let flush = async {
                write.write_all_buf(&mut self.out).await?;
                write.shutdown().await
            };
            let flushed = if close_timeout.is_zero() {
                flush.await
            } else {
                tokio::time::timeout(close_timeout, flush)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            };
            if let Err(error) = flushed {
                tracing::debug!(%error, "could not flush before closing");
            }
        }
    }
}
