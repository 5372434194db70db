//! A stage that moved to another server (`@Move@`, e.g. a server draining before a deploy):
//! the session follows it there — same token, same counts, same unacknowledged frames, only
//! the address changes — through the resume of `reconnect`; or, when this connection cannot
//! follow (no resumable session, a dialer of one place), it ends saying where the stage went.

use std::sync::{Arc, PoisonError};

use playhouse_protocol::MoveNotice;

use super::close::End;
use super::task::Task;

impl Task {
    /// The server moved the stage: remembered, and the connection ends (the notice is the
    /// server's last frame on it).
    pub(super) fn on_move_notice(&mut self, payload: &[u8]) {
        let Some(notice) = MoveNotice::from_payload(payload) else {
            tracing::warn!(?payload, "a move notice without a host:port; ignored");
            return;
        };
        tracing::info!(endpoint = %notice.endpoint, "the server moved the stage");
        self.moving = Some(Arc::from(notice.endpoint));
    }

    /// As a connection ends after a move notice: the session's dialer dials the new endpoint
    /// from now on (for this resume and every later one), or, when it cannot, the connection
    /// ends with [`End::Moved`]. Any other end passes through.
    pub(super) fn follow_move(&mut self, end: End) -> End {
        if !end.lost_connection() {
            return end;
        }
        let Some(endpoint) = self.moving.take() else {
            return end;
        };
        let followed = self.session.is_some()
            && self
                .resume
                .as_mut()
                .is_some_and(|setup| setup.dial.move_to(Arc::clone(&endpoint)));
        if !followed {
            return End::Moved(endpoint);
        }
        *self
            .status
            .endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(endpoint);
        self.moved = true;
        end
    }
}
