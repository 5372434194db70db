//! A client joining the stage: the authentication flow, step by step (SPEC §4), including a
//! returning account taking its actor back.

use std::sync::Arc;

use playhouse_protocol::{ErrorCode, MsgId, Packet, ServerFrame};

use super::StageRunner;
use crate::reply::error_frame;
use crate::session::handle::SessionHandle;
use crate::stage::actor::{ActorCell, ActorInit, ActorLink};
use crate::stage::context::Client;
use crate::stage::handle::JoinOutcome;
use crate::stage::model::{Actor, Stage};

impl<S: Stage> StageRunner<S> {
    /// The authentication flow, step by step (SPEC §4).
    pub(super) async fn join(
        &mut self,
        session: SessionHandle,
        reply_id: MsgId,
        seq: u16,
        packet: Packet,
    ) -> JoinOutcome {
        let stage_id = self.stage_id;
        let actor = (self.make_actor)(&ActorInit {
            stage_id,
            stage_type: &self.stage_type,
            services: &self.env.services,
        });
        let mut cell = ActorCell {
            actor,
            link: ActorLink::new(stage_id, session.clone()),
        };
        cell.actor.on_create(&mut cell.link).await;
        let reply = match cell.actor.on_authenticate(&mut cell.link, packet).await {
            Ok(reply) if !cell.link.account_id().is_empty() => reply,
            refused => {
                let refusal = refused
                    .err()
                    .unwrap_or_else(|| ErrorCode::INVALID_ACCOUNT_ID.into());
                cell.actor.on_destroy(&mut cell.link).await;
                let frame = match refusal.packet {
                    Some(packet) => {
                        ServerFrame::new(packet.msg_id, seq, stage_id, refusal.code, packet.payload)
                    }
                    None => error_frame(reply_id, seq, stage_id, refusal.code),
                };
                session.send(frame);
                return JoinOutcome::Rejected;
            }
        };
        let reply = ServerFrame::new(reply_id, seq, stage_id, ErrorCode::SUCCESS, reply.payload);
        let account = Arc::clone(cell.link.account_arc());

        if let Some(&key) = self.accounts.get(&account) {
            // Re-authentication as an existing account: re-attach the existing actor. The
            // actor built for this attempt only served to authenticate.
            cell.actor.on_destroy(&mut cell.link).await;
            let Some(existing) = self.actors.get_mut(&key) else {
                return JoinOutcome::Rejected;
            };
            let previous = existing.link.set_session(Some(session.clone()));
            self.disconnected.remove(&key);
            self.ctx.clients.insert(
                key,
                Client {
                    account_id: account,
                    session: session.clone(),
                },
            );
            // A second login while the old connection still looks alive (its drop not yet
            // noticed) replaces it: the stage sees it leave, then come back.
            if let Some(old) = previous {
                old.close();
                self.stage
                    .on_connection_changed(&mut self.ctx, existing, false)
                    .await;
            }
            self.stage
                .on_connection_changed(&mut self.ctx, existing, true)
                .await;
            session.send(reply);
            self.leave_if_asked(key).await;
            return JoinOutcome::Joined { actor: key };
        }

        if self.env.control.is_draining() {
            // A draining server admits no new player; a returning one (above) is no new one.
            cell.actor.on_destroy(&mut cell.link).await;
            let code = ErrorCode::SERVER_DRAINING;
            session.send(error_frame(reply.msg_id, seq, stage_id, code));
            return JoinOutcome::Rejected;
        }
        cell.actor.on_post_authenticate(&mut cell.link).await;
        if !self.stage.on_join_stage(&mut self.ctx, &mut cell).await {
            cell.actor.on_destroy(&mut cell.link).await;
            session.send(error_frame(
                reply.msg_id,
                seq,
                stage_id,
                ErrorCode::JOIN_STAGE_FAILED,
            ));
            return JoinOutcome::Rejected;
        }
        let key = self.next_actor;
        self.next_actor += 1;
        self.accounts.insert(Arc::clone(&account), key);
        self.ctx.clients.insert(
            key,
            Client {
                account_id: account,
                session: session.clone(),
            },
        );
        self.actors_joined();
        let cell = self.actors.entry(key).or_insert(cell);
        self.empty_since = None;
        self.stage.on_post_join_stage(&mut self.ctx, cell).await;
        session.send(reply);
        self.leave_if_asked(key).await;
        JoinOutcome::Joined { actor: key }
    }
}
