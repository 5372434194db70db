//! Mailbox messages handed to stage code: a client's message to its actor, a message from
//! another server, a join, a dropped connection.

use playhouse_protocol::Packet;
use tokio::time::Instant;
use tracing::Instrument;

use super::StageRunner;
use crate::session::handle::SessionId;
use crate::stage::actor::ReplyTarget;
use crate::stage::handle::StageMsg;
use crate::stage::model::Stage;
use crate::stage::relay_order::Relayed;

impl<S: Stage> StageRunner<S> {
    pub(super) async fn handle(&mut self, msg: StageMsg) {
        if !matches!(msg, StageMsg::Client { .. }) {
            self.handled_until = None; // what runs now takes time no handler accounts for
        }
        match msg {
            StageMsg::Join {
                session,
                reply_id,
                seq,
                packet,
                done,
            } => {
                let outcome = self.join(session, reply_id, seq, packet).await;
                let _ = done.send(outcome);
            }
            StageMsg::Client {
                actor,
                session,
                seq,
                packet,
                queued,
                order: 0,
            } => self.dispatch(actor, session, seq, packet, queued).await,
            StageMsg::Client {
                actor,
                session,
                seq,
                packet,
                queued,
                order,
            } => {
                let message = Relayed {
                    actor,
                    seq,
                    packet,
                    queued,
                };
                self.relayed(session, order, message).await;
            }
            StageMsg::Disconnected { actor, session } => self.disconnected(actor, session).await,
            StageMsg::Server { packet } => {
                let playhouse_mesh::RoutePacket {
                    route: header,
                    payload,
                } = packet;
                let request = Packet::new(header.msg_id_shared(), payload);
                let trace = header.trace();
                // The header moves into the reply target: no copy per message.
                self.ctx.server_reply = self
                    .env
                    .mesh
                    .get()
                    .map(|mesh| ReplyTarget::mesh(mesh.clone(), header));
                match trace {
                    Some(trace) => {
                        let span = tracing::info_span!("mesh", trace_id = %trace.trace_id());
                        #[cfg(feature = "otlp")]
                        crate::telemetry::continue_remote(&span, trace);
                        let handled = self.stage.on_dispatch_server(&mut self.ctx, request);
                        trace.scope(handled).instrument(span).await;
                    }
                    None => self.stage.on_dispatch_server(&mut self.ctx, request).await,
                }
                self.ctx.server_reply = None;
            }
            StageMsg::Close { farewell } => self.begin_close(farewell),
            StageMsg::Move { target, done } => self.move_to(target, done).await,
        }
    }

    pub(super) async fn dispatch(
        &mut self,
        actor: u64,
        session: SessionId,
        seq: u16,
        packet: Packet,
        queued: Instant,
    ) {
        let Some(cell) = self.actors.get_mut(&actor) else {
            return;
        };
        if cell.link.session().map(|s| s.id) != Some(session) {
            return; // from a connection the actor has since replaced
        }
        cell.link.begin(packet.msg_id.clone(), seq);
        // Back to back in one run of the mailbox, a handler starts when the last one ended:
        // one clock read per message instead of two.
        let after = self.handled_until.take();
        let started = self
            .env
            .metrics
            .collects()
            .then(|| after.map_or_else(Instant::now, |end| end.max(queued)));
        // Debug level: no cost per message unless asked for (RUST_LOG=playhouse=debug).
        let span = tracing::debug_span!("actor", account = %cell.link.account_id());
        self.stage
            .on_dispatch(&mut self.ctx, cell, packet)
            .instrument(span)
            .await;
        if let Some(started) = started {
            let ended = Instant::now();
            let waited = started.saturating_duration_since(queued);
            self.env.metrics.handled(waited, ended - started);
            self.handled_until = Some(ended);
        }
        cell.link.end();
        self.leave_if_asked(actor).await;
    }
}
