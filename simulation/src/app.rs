//! The application under test: a stage that applies numbered operations and tells clients
//! what it saw, and API handlers. Everything it reports is checked on the client side.
//!
//! Payloads are short ASCII words separated by spaces.
//!
//! ```text
//! client -> stage   Op "<n>"            request or one-way: apply operation n of this account
//!                   Dump ""             request: "<incarnation> <n,n,...>" this account's ops
//! stage -> client   OpReply "<n> <seq> <incarnation>"
//!                   Applied "<seq> <who> <n> <in_order:0|1>"   broadcast per applied op
//!                   Joined "<joins> <incarnation>"             after a first join
//!                   Attached "<joins> <history> <incarnation>" after a re-attach
//!                   Presence "<account> <0|1>"                 broadcast on connection change
//! server -> stage   Echo "<n>"          request: EchoReply "<n> <incarnation>"
//!                   MOp "<who> <n>"     one-way or request: like Op, for server `who`
//!                   MDump "<who>"       request: "<incarnation> <n,n,...>" server `who`'s ops
//! server -> api     ApiEcho "<n>"       request: "<server id> <n>"
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use playhouse::{
    Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, HandlerRegistry, Packet, Stage,
    StageContext, StageInit,
};

use crate::lifecycle::{ActorLog, StageBook, StageLog};

/// The stage type every scenario uses.
pub const STAGE_TYPE: &str = "Room";
/// The error a stage answers an operation with when it arrived out of order.
pub const OUT_OF_ORDER: ErrorCode = ErrorCode(1001);

/// Which boot of which server a stage lives in: stage state dies with its server, so an
/// acknowledged operation is only expected in the incarnation that acknowledged it.
#[derive(Debug)]
pub struct Boot {
    server_id: String,
    boot: u64,
    stages: AtomicU64,
}

impl Boot {
    /// Boot number `boot` of `server_id`.
    pub fn new(server_id: &str, boot: u64) -> Arc<Boot> {
        Arc::new(Boot {
            server_id: server_id.to_owned(),
            boot,
            stages: AtomicU64::new(0),
        })
    }
}

fn text(packet: &Packet) -> String {
    String::from_utf8_lossy(&packet.payload).into_owned()
}

/// The test stage.
#[derive(Debug)]
pub struct SimRoom {
    incarnation: String,
    log: StageLog,
    /// Broadcast sequence: every `Applied` carries the next one.
    seq: u64,
    /// Operations applied, by account (or server) id.
    ops: BTreeMap<String, Vec<u64>>,
    /// First joins by account.
    joins: BTreeMap<String, u32>,
}

impl SimRoom {
    /// A stage for `init`, in `boot`, reporting to `book`.
    pub fn new(init: &StageInit<'_>, boot: &Boot, book: &StageBook) -> SimRoom {
        let n = boot.stages.fetch_add(1, Ordering::Relaxed);
        SimRoom {
            incarnation: format!("{}.{}.{}.{n}", boot.server_id, boot.boot, init.stage_id),
            log: book.stage(STAGE_TYPE, init.stage_id),
            seq: 0,
            ops: BTreeMap::new(),
            joins: BTreeMap::new(),
        }
    }

    /// Applies operation `n` of `who`; returns its broadcast sequence and whether it came in
    /// order (after every earlier one of `who`).
    fn apply(&mut self, ctx: &StageContext<Self>, who: &str, n: u64) -> (u64, bool) {
        let ops = self.ops.entry(who.to_owned()).or_default();
        let in_order = ops.last().is_none_or(|last| *last < n);
        ops.push(n);
        self.seq += 1;
        let payload = format!("{} {who} {n} {}", self.seq, u8::from(in_order));
        ctx.broadcast(Packet::new("Applied", payload));
        (self.seq, in_order)
    }
}

impl Stage for SimRoom {
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
        let joins = self
            .joins
            .entry(actor.link.account_id().to_owned())
            .or_default();
        *joins += 1;
        let payload = format!("{joins} {}", self.incarnation);
        actor.link.send_to_client(Packet::new("Joined", payload));
    }

    async fn on_connection_changed(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<SimPlayer>,
        connected: bool,
    ) {
        actor.history.push(if connected { '1' } else { '0' });
        let account = actor.link.account_id().to_owned();
        let presence = format!("{account} {}", u8::from(connected));
        ctx.broadcast(Packet::new("Presence", presence));
        if connected {
            let joins = self.joins.get(&account).copied().unwrap_or(0);
            let payload = format!("{joins} {} {}", actor.history, self.incarnation);
            actor.link.send_to_client(Packet::new("Attached", payload));
        }
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<SimPlayer>,
        packet: Packet,
    ) {
        let account = actor.link.account_id().to_owned();
        match &*packet.msg_id {
            "Op" => {
                let Ok(n) = text(&packet).parse::<u64>() else {
                    return actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
                };
                let (seq, in_order) = self.apply(ctx, &account, n);
                if !in_order {
                    actor.link.reply_error(OUT_OF_ORDER);
                } else {
                    let payload = format!("{n} {seq} {}", self.incarnation);
                    actor.link.reply(Packet::new("OpReply", payload));
                }
            }
            "Dump" => {
                let ops = self.ops.get(&account).map(Vec::as_slice).unwrap_or(&[]);
                let list: Vec<String> = ops.iter().map(u64::to_string).collect();
                let payload = format!("{} {}", self.incarnation, list.join(","));
                actor.link.reply(Packet::new("DumpReply", payload));
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        let body = text(&packet);
        match &*packet.msg_id {
            "Echo" => {
                let payload = format!("{body} {}", self.incarnation);
                ctx.reply(Packet::new("EchoReply", payload));
            }
            // Never answered: only a failure of the mesh can end the request.
            "Hold" => {}
            "MOp" => {
                let mut words = body.split(' ');
                let (Some(who), Some(Ok(n))) = (words.next(), words.next().map(str::parse)) else {
                    return ctx.reply_error(ErrorCode::INVALID_MESSAGE);
                };
                let who = who.to_owned();
                let (seq, in_order) = self.apply(ctx, &who, n);
                if in_order {
                    let payload = format!("{n} {seq} {}", self.incarnation);
                    ctx.reply(Packet::new("MOpReply", payload));
                } else {
                    ctx.reply_error(OUT_OF_ORDER);
                }
            }
            "MDump" => {
                let ops = self.ops.get(&body).map(Vec::as_slice).unwrap_or(&[]);
                let list: Vec<String> = ops.iter().map(u64::to_string).collect();
                let payload = format!("{} {}", self.incarnation, list.join(","));
                ctx.reply(Packet::new("MDumpReply", payload));
            }
            _ => ctx.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

/// The test actor: its account is the authenticate payload; it remembers every connection
/// change (`0` lost, `1` re-attached) and reports its `on_destroy` to its boot's book.
#[derive(Debug)]
pub struct SimPlayer {
    history: String,
    /// Its handle on the book (the stage it joins files it there).
    pub log: ActorLog,
}

impl SimPlayer {
    /// An actor reporting to `book`.
    pub fn new(book: &StageBook) -> SimPlayer {
        SimPlayer {
            history: String::new(),
            log: book.actor(),
        }
    }
}

impl Actor for SimPlayer {
    async fn on_destroy(&mut self, _: &mut ActorLink) {
        self.log.destroyed();
    }

    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let account = text(&packet);
        if account.is_empty() {
            return Err(ErrorCode::AUTHENTICATION_FAILED.into());
        }
        link.set_account_id(account.clone());
        Ok(Packet::new("AuthenticateReply", account))
    }
}

/// The API handlers every simulated API server registers.
pub fn api_handlers(server_id: &str) -> impl FnOnce(&mut HandlerRegistry) + use<> {
    let me = server_id.to_owned();
    move |handlers| {
        handlers.add("ApiEcho", move |packet: Packet, _| {
            let payload = format!("{me} {}", text(&packet));
            async move { Ok::<_, ErrorCode>(Packet::new("ApiEchoReply", payload)) }
        });
    }
}
