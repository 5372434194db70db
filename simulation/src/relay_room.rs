//! A stage that answers late and asks other servers: the application of `late_reply`,
//! `play_requester` and `crash_inflight`. Every reply names the request it answers, so a
//! caller can tell its own reply from a stale one.
//!
//! ```text
//! client -> Relay  Slow "<n> <ms>"   request: after <ms> (a stage timer) SlowReply "<n> <incarnation>"
//!                  Ping "<n>"        request: at once, Pong "<n> <incarnation>"
//!                  Ask "<n> <server> <stage|-> <msg_id> [<arg>]"
//!                                    request: the stage requests <server> (an API server when
//!                                    the stage is `-`, else that stage) with <msg_id> "<n> [<arg>]"
//!                                    from an async block, and answers when it ends:
//!                                    Asked "<n> <code> <ms it took> <reply words...>"
//! server -> Relay  Slow "<n> <ms>"   request: after <ms>, SlowReply "<n> <incarnation>"
//!                  Echo "<n>"        request: EchoReply "<n> <incarnation>"
//! server -> api    ApiSlow "<n> <ms>" request: after <ms>, ApiSlowReply "<server id> <n>"
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use playhouse::{
    ActorCell, ErrorCode, HandlerRegistry, Packet, PlayServerBuilder, ReplyTarget, Stage,
    StageContext, StageInit,
};

use crate::app::SimPlayer;
use crate::lifecycle::{StageBook, StageLog};

/// The stage type name.
pub const RELAY: &str = "Relay";

/// Which boot of which server a relay stage lives in (see [`crate::app::Boot`]).
#[derive(Debug)]
pub struct RelayBoot {
    server_id: String,
    boot: u64,
    stages: AtomicU64,
}

/// Registers the relay stage type on a Play server being built (boot `boot` of `server_id`,
/// whose stages and actors report to `book`).
pub fn register(
    builder: PlayServerBuilder,
    server_id: &str,
    boot: u64,
    book: &StageBook,
) -> PlayServerBuilder {
    let boot = Arc::new(RelayBoot {
        server_id: server_id.to_owned(),
        boot,
        stages: AtomicU64::new(0),
    });
    let (stages, actors) = (book.clone(), book.clone());
    builder.stage(
        RELAY,
        move |init| RelayRoom::new(init, &boot, &stages),
        move |_| SimPlayer::new(&actors),
    )
}

/// The API handlers of API server `server_id` that relay scenarios use.
pub fn api_handlers(server_id: &str) -> impl FnOnce(&mut HandlerRegistry) + use<> {
    let me = server_id.to_owned();
    move |handlers| {
        handlers.add("ApiSlow", move |packet: Packet, _| {
            let body = text(&packet);
            let mut words = body.split(' ');
            let n = words.next().unwrap_or_default().to_owned();
            let ms = words.next().and_then(|ms| ms.parse().ok()).unwrap_or(0);
            let payload = format!("{me} {n}");
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, ErrorCode>(Packet::new("ApiSlowReply", payload))
            }
        });
    }
}

fn text(packet: &Packet) -> String {
    String::from_utf8_lossy(&packet.payload).into_owned()
}

/// The relay stage: no state but its incarnation.
#[derive(Debug)]
pub struct RelayRoom {
    incarnation: String,
    log: StageLog,
}

impl RelayRoom {
    fn new(init: &StageInit<'_>, boot: &RelayBoot, book: &StageBook) -> RelayRoom {
        let n = boot.stages.fetch_add(1, Ordering::Relaxed);
        RelayRoom {
            incarnation: format!("{}.{}.{}.{n}", boot.server_id, boot.boot, init.stage_id),
            log: book.stage(RELAY, init.stage_id),
        }
    }

    /// Answers `target` with `SlowReply "<n> <incarnation>"` after `body`'s delay.
    fn slow(&self, ctx: &mut StageContext<Self>, target: ReplyTarget, body: &str) {
        let mut words = body.split(' ');
        let (Some(n), Some(Ok(ms))) = (words.next(), words.next().map(str::parse::<u64>)) else {
            return target.reply_error(ErrorCode::INVALID_MESSAGE);
        };
        let reply = Packet::new("SlowReply", format!("{n} {}", self.incarnation));
        let mut pending = Some((target, reply));
        let delay = Duration::from_millis(ms);
        ctx.add_count_timer(delay, delay, 1, move |_, _| {
            if let Some((target, reply)) = pending.take() {
                target.reply(reply);
            }
        });
    }

    /// Requests another server from an async block; answers `target` with the outcome.
    fn ask(ctx: &mut StageContext<Self>, target: ReplyTarget, body: &str) {
        let words: Vec<&str> = body.split(' ').collect();
        let (n, server, stage, msg_id, arg) = match words[..] {
            [n, server, stage, msg_id] => (n, server, stage, msg_id, None),
            [n, server, stage, msg_id, arg] => (n, server, stage, msg_id, Some(arg)),
            _ => return target.reply_error(ErrorCode::INVALID_MESSAGE),
        };
        let sender = ctx.sender();
        let payload = match arg {
            Some(arg) => format!("{n} {arg}"),
            None => n.to_owned(),
        };
        let packet = Packet::new(msg_id.to_owned(), payload);
        let request = match stage {
            "-" => futures_util::future::Either::Left(sender.request_to_api(server, packet)),
            stage => {
                let Ok(stage) = stage.parse() else {
                    return target.reply_error(ErrorCode::INVALID_MESSAGE);
                };
                futures_util::future::Either::Right(sender.request_to_stage(server, stage, packet))
            }
        };
        let n = n.to_owned();
        let start = tokio::time::Instant::now();
        ctx.request_with_callback(request, move |_, _, result| {
            let took = start.elapsed().as_millis();
            let (code, words) = match result {
                Ok(reply) => (ErrorCode::SUCCESS, text(&reply)),
                Err(error) => (error.code(), String::new()),
            };
            let payload = format!("{n} {} {took} {words}", code.0);
            target.reply(Packet::new("Asked", payload.trim_end().to_owned()));
        });
    }
}

impl Stage for RelayRoom {
    type Actor = SimPlayer;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        self.log.created();
        Ok(Packet::new("Created", self.incarnation.clone()))
    }

    async fn on_destroy(&mut self, _: &mut StageContext<Self>) {
        self.log.destroyed();
    }

    async fn on_post_join_stage(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<SimPlayer>,
    ) {
        self.log.joined(&actor.log);
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<SimPlayer>,
        packet: Packet,
    ) {
        // Requests only: every message here expects an answer.
        let Some(target) = actor.link.reply_target() else {
            return;
        };
        let body = text(&packet);
        match &*packet.msg_id {
            "Slow" => self.slow(ctx, target, &body),
            "Ping" => target.reply(Packet::new("Pong", format!("{body} {}", self.incarnation))),
            "Ask" => Self::ask(ctx, target, &body),
            _ => target.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        let Some(target) = ctx.server_reply_target() else {
            return;
        };
        let body = text(&packet);
        match &*packet.msg_id {
            "Slow" => self.slow(ctx, target, &body),
            "Echo" => target.reply(Packet::new(
                "EchoReply",
                format!("{body} {}", self.incarnation),
            )),
            _ => target.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}
