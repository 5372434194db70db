//! Typed dispatch for stages: handlers registered by prost message, what
//! [`HandlerRegistry::add_typed`](crate::HandlerRegistry::add_typed) is for API servers.
//!
//! A [`StageRoutes`] maps a message id (the message's short type name, `prost::Name::NAME`,
//! as [`Packet::from_message`] sets it) to a handler that takes the decoded message. It is
//! built once per stage type (a `static`), and a stage's `on_dispatch` /
//! `on_dispatch_server` hands it every packet: a registered id is decoded and routed, any
//! other packet comes back for the stage's own string `match`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use futures_util::future::BoxFuture;
use playhouse_protocol::{ErrorCode, Packet, PayloadError};

use super::actor::{ActorCell, ActorLink, ReplyTarget};
use super::context::StageContext;
use super::model::Stage;
use crate::reply::{ErrorReply, IntoReply};

/// An async client-message handler: any `async fn(&mut S, &mut StageContext<S>,
/// &mut ActorCell<S::Actor>, M) -> R` whose future is `Send`. Implemented for every such
/// function; name it only in bounds.
pub trait AsyncClientHandler<'a, S: Stage, M, R>:
    Fn(&'a mut S, &'a mut StageContext<S>, &'a mut ActorCell<S::Actor>, M) -> Self::Fut
{
    /// The handler's future.
    type Fut: Future<Output = R> + Send + 'a;
}

impl<'a, S, M, R, F, Fut> AsyncClientHandler<'a, S, M, R> for F
where
    S: Stage,
    F: Fn(&'a mut S, &'a mut StageContext<S>, &'a mut ActorCell<S::Actor>, M) -> Fut,
    Fut: Future<Output = R> + Send + 'a,
{
    type Fut = Fut;
}

/// An async server-message handler: any `async fn(&mut S, &mut StageContext<S>, M) -> R`
/// whose future is `Send`. Implemented for every such function; name it only in bounds.
pub trait AsyncServerHandler<'a, S: Stage, M, R>:
    Fn(&'a mut S, &'a mut StageContext<S>, M) -> Self::Fut
{
    /// The handler's future.
    type Fut: Future<Output = R> + Send + 'a;
}

impl<'a, S, M, R, F, Fut> AsyncServerHandler<'a, S, M, R> for F
where
    S: Stage,
    F: Fn(&'a mut S, &'a mut StageContext<S>, M) -> Fut,
    Fut: Future<Output = R> + Send + 'a,
{
    type Fut = Fut;
}

/// What calling a route did: ran to the end (a sync handler, or a refused payload), or left
/// a future to await (an async handler: the one allocation a dispatch may make).
enum Step<'a> {
    Done,
    Pending(BoxFuture<'a, ()>),
}

trait ClientRoute<S: Stage>: Send + Sync {
    fn call<'a>(
        &'a self,
        stage: &'a mut S,
        ctx: &'a mut StageContext<S>,
        actor: &'a mut ActorCell<S::Actor>,
        packet: Packet,
    ) -> Step<'a>;
}

trait ServerRoute<S: Stage>: Send + Sync {
    fn call<'a>(
        &'a self,
        stage: &'a mut S,
        ctx: &'a mut StageContext<S>,
        packet: Packet,
    ) -> Step<'a>;
}

/// A handler with the message type it decodes and the type it returns.
struct Route<F, M, R, Kind> {
    handler: F,
    _message: PhantomData<fn(M) -> (R, Kind)>,
}

impl<F, M, R, Kind> Route<F, M, R, Kind> {
    fn new(handler: F) -> Box<Self> {
        Box::new(Route {
            handler,
            _message: PhantomData,
        })
    }
}

/// Route kinds, so one `Route` type serves all four registrations: a plain `fn` handler, an
/// `async fn` one.
struct Plain;
struct Awaiting;

fn decode<M: prost::Message + prost::Name + Default>(packet: &Packet) -> Result<M, PayloadError> {
    let decoded = packet.decode::<M>();
    if let Err(error) = &decoded {
        tracing::debug!(%error, "undecodable message; answered INVALID_MESSAGE");
    }
    decoded
}

/// Answers the client request being dispatched (if it is one and is still unanswered).
fn answer_client(link: &mut ActorLink, out: impl IntoReply) {
    if !link.is_request() {
        return;
    }
    match out.into_reply() {
        None => {}
        Some(Ok(packet)) => link.reply(packet),
        Some(Err(ErrorReply { code, packet: None })) => link.reply_error(code),
        Some(Err(ErrorReply {
            code,
            packet: Some(packet),
        })) => link.reply_error_with(code, packet),
    }
}

/// Answers the server request being dispatched (if it is one and is still unanswered).
fn answer_server<S: Stage>(ctx: &mut StageContext<S>, out: impl IntoReply) {
    if ctx.server_reply.is_none() {
        return;
    }
    match out.into_reply() {
        None => {}
        Some(Ok(packet)) => ctx.reply(packet),
        Some(Err(ErrorReply { code, packet: None })) => ctx.reply_error(code),
        Some(Err(ErrorReply {
            code,
            packet: Some(packet),
        })) => ctx.reply_error_with(code, packet),
    }
}

impl<S, M, F, R> ClientRoute<S> for Route<F, M, R, Plain>
where
    S: Stage,
    M: prost::Message + prost::Name + Default,
    F: Fn(&mut S, &mut StageContext<S>, &mut ActorCell<S::Actor>, M) -> R + Send + Sync,
    R: IntoReply,
{
    fn call<'a>(
        &'a self,
        stage: &'a mut S,
        ctx: &'a mut StageContext<S>,
        actor: &'a mut ActorCell<S::Actor>,
        packet: Packet,
    ) -> Step<'a> {
        match decode::<M>(&packet) {
            Ok(message) => {
                let out = (self.handler)(stage, ctx, actor, message);
                answer_client(&mut actor.link, out);
            }
            Err(_) => actor.link.reply_error(ErrorCode::INVALID_MESSAGE),
        }
        Step::Done
    }
}

impl<S, M, R, F> ClientRoute<S> for Route<F, M, R, Awaiting>
where
    S: Stage,
    M: prost::Message + prost::Name + Default + Send + 'static,
    R: IntoReply,
    F: for<'h> AsyncClientHandler<'h, S, M, R> + Send + Sync,
{
    fn call<'a>(
        &'a self,
        stage: &'a mut S,
        ctx: &'a mut StageContext<S>,
        actor: &'a mut ActorCell<S::Actor>,
        packet: Packet,
    ) -> Step<'a> {
        let message = match decode::<M>(&packet) {
            Ok(message) => message,
            Err(_) => {
                actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
                return Step::Done;
            }
        };
        Step::Pending(Box::pin(async move {
            let out = (self.handler)(stage, ctx, &mut *actor, message).await;
            answer_client(&mut actor.link, out);
        }))
    }
}

impl<S, M, F, R> ServerRoute<S> for Route<F, M, R, Plain>
where
    S: Stage,
    M: prost::Message + prost::Name + Default,
    F: Fn(&mut S, &mut StageContext<S>, M) -> R + Send + Sync,
    R: IntoReply,
{
    fn call<'a>(
        &'a self,
        stage: &'a mut S,
        ctx: &'a mut StageContext<S>,
        packet: Packet,
    ) -> Step<'a> {
        match decode::<M>(&packet) {
            Ok(message) => {
                let out = (self.handler)(stage, ctx, message);
                answer_server(ctx, out);
            }
            Err(_) => ctx.reply_error(ErrorCode::INVALID_MESSAGE),
        }
        Step::Done
    }
}

impl<S, M, R, F> ServerRoute<S> for Route<F, M, R, Awaiting>
where
    S: Stage,
    M: prost::Message + prost::Name + Default + Send + 'static,
    R: IntoReply,
    F: for<'h> AsyncServerHandler<'h, S, M, R> + Send + Sync,
{
    fn call<'a>(
        &'a self,
        stage: &'a mut S,
        ctx: &'a mut StageContext<S>,
        packet: Packet,
    ) -> Step<'a> {
        let message = match decode::<M>(&packet) {
            Ok(message) => message,
            Err(_) => {
                ctx.reply_error(ErrorCode::INVALID_MESSAGE);
                return Step::Done;
            }
        };
        Step::Pending(Box::pin(async move {
            let out = (self.handler)(stage, &mut *ctx, message).await;
            answer_server(ctx, out);
        }))
    }
}

/// Typed handlers of a stage type, by message: each decodes its prost message from the
/// packet and answers with what it returns ([`IntoReply`]). Build it once per stage type (a
/// `static`); hand it every packet from [`Stage::on_dispatch`] and
/// [`Stage::on_dispatch_server`]. A packet whose id has no handler comes back for the string
/// `match`; one whose payload does not decode is answered with
/// [`ErrorCode::INVALID_MESSAGE`] and reaches no handler.
///
/// A handler is a function (or method) of the stage, its context, the actor (client messages
/// only) and the message: plain `fn` through [`client`](Self::client) /
/// [`server`](Self::server), `async fn` through [`client_async`](Self::client_async) /
/// [`server_async`](Self::server_async) when it awaits (another server, a timer). A
/// dispatch looks the id up in a map built once; only an async handler's future is
/// allocated.
///
/// ```
/// use std::sync::LazyLock;
/// use playhouse::{ActorCell, ErrorCode, Packet, Stage, StageContext, StageRoutes};
/// # use playhouse::testing::EchoActor as Player;
/// # #[derive(Clone, PartialEq, prost::Message)]
/// # struct AddRequest { #[prost(int64, tag = "1")] amount: i64 }
/// # impl prost::Name for AddRequest { const NAME: &'static str = "AddRequest"; const PACKAGE: &'static str = "demo"; }
/// # #[derive(Clone, PartialEq, prost::Message)]
/// # struct AddReply { #[prost(int64, tag = "1")] total: i64 }
/// # impl prost::Name for AddReply { const NAME: &'static str = "AddReply"; const PACKAGE: &'static str = "demo"; }
///
/// struct Counter {
///     total: i64,
/// }
///
/// impl Counter {
///     /// `AddRequest` → `AddReply`; a negative amount fails the request.
///     fn add(
///         &mut self,
///         _: &mut StageContext<Self>,
///         _: &mut ActorCell<Player>,
///         request: AddRequest,
///     ) -> Result<AddReply, ErrorCode> {
///         if request.amount < 0 {
///             return Err(ErrorCode(1001));
///         }
///         self.total += request.amount;
///         Ok(AddReply { total: self.total })
///     }
/// }
///
/// static ROUTES: LazyLock<StageRoutes<Counter>> =
///     LazyLock::new(|| StageRoutes::new().client(Counter::add));
///
/// impl Stage for Counter {
///     type Actor = Player;
///     async fn on_create(&mut self, _: &mut StageContext<Self>, _: Packet) -> Result<Packet, ErrorCode> {
///         Ok(Packet::empty("Created"))
///     }
///     async fn on_dispatch(&mut self, ctx: &mut StageContext<Self>, actor: &mut ActorCell<Player>, packet: Packet) {
///         // Typed messages first; anything else is still a packet.
///         let Some(packet) = ROUTES.dispatch(self, ctx, actor, packet).await else {
///             return;
///         };
///         match &*packet.msg_id {
///             "Reset" => self.total = 0,
///             _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
///         }
///     }
/// }
/// ```
pub struct StageRoutes<S: Stage> {
    client: HashMap<&'static str, Box<dyn ClientRoute<S>>>,
    server: HashMap<&'static str, Box<dyn ServerRoute<S>>>,
}

impl<S: Stage> fmt::Debug for StageRoutes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut client: Vec<_> = self.client.keys().collect();
        let mut server: Vec<_> = self.server.keys().collect();
        client.sort_unstable();
        server.sort_unstable();
        f.debug_struct("StageRoutes")
            .field("client", &client)
            .field("server", &server)
            .finish()
    }
}

impl<S: Stage> Default for StageRoutes<S> {
    fn default() -> Self {
        StageRoutes {
            client: HashMap::new(),
            server: HashMap::new(),
        }
    }
}

impl<S: Stage> StageRoutes<S> {
    /// No routes: every packet falls through.
    #[must_use]
    pub fn new() -> Self {
        StageRoutes::default()
    }

    /// Handles the client message `M` (by its short type name) with a plain function. A later
    /// registration for the same message replaces this one.
    #[must_use]
    pub fn client<M, R, F>(mut self, handler: F) -> Self
    where
        M: prost::Message + prost::Name + Default + 'static,
        R: IntoReply + 'static,
        F: Fn(&mut S, &mut StageContext<S>, &mut ActorCell<S::Actor>, M) -> R
            + Send
            + Sync
            + 'static,
    {
        let route: Box<Route<F, M, R, Plain>> = Route::new(handler);
        self.client.insert(M::NAME, route);
        self
    }

    /// Handles the client message `M` with an `async fn` (one that awaits: another server, a
    /// sleep). The stage runs nothing else until it returns, as with `on_dispatch` itself.
    #[must_use]
    pub fn client_async<M, R, F>(mut self, handler: F) -> Self
    where
        M: prost::Message + prost::Name + Default + Send + 'static,
        R: IntoReply + 'static,
        F: for<'h> AsyncClientHandler<'h, S, M, R> + Send + Sync + 'static,
    {
        let route: Box<Route<F, M, R, Awaiting>> = Route::new(handler);
        self.client.insert(M::NAME, route);
        self
    }

    /// Handles the server message `M` (from `send_to_stage` / `request_to_stage`) with a plain
    /// function.
    #[must_use]
    pub fn server<M, R, F>(mut self, handler: F) -> Self
    where
        M: prost::Message + prost::Name + Default + 'static,
        R: IntoReply + 'static,
        F: Fn(&mut S, &mut StageContext<S>, M) -> R + Send + Sync + 'static,
    {
        let route: Box<Route<F, M, R, Plain>> = Route::new(handler);
        self.server.insert(M::NAME, route);
        self
    }

    /// Handles the server message `M` with an `async fn`.
    #[must_use]
    pub fn server_async<M, R, F>(mut self, handler: F) -> Self
    where
        M: prost::Message + prost::Name + Default + Send + 'static,
        R: IntoReply + 'static,
        F: for<'h> AsyncServerHandler<'h, S, M, R> + Send + Sync + 'static,
    {
        let route: Box<Route<F, M, R, Awaiting>> = Route::new(handler);
        self.server.insert(M::NAME, route);
        self
    }

    /// Whether a client message id has a handler.
    pub fn handles_client(&self, msg_id: &str) -> bool {
        self.client.contains_key(msg_id)
    }

    /// Whether a server message id has a handler.
    pub fn handles_server(&self, msg_id: &str) -> bool {
        self.server.contains_key(msg_id)
    }

    /// Routes a client's packet (call it from [`Stage::on_dispatch`]): `None` once a handler
    /// took it (or refused its payload with `INVALID_MESSAGE`), `Some(packet)` when its id has
    /// no handler, for the string path.
    #[must_use = "a packet with no typed handler comes back: answer it (e.g. HANDLER_NOT_FOUND)"]
    pub async fn dispatch(
        &self,
        stage: &mut S,
        ctx: &mut StageContext<S>,
        actor: &mut ActorCell<S::Actor>,
        packet: Packet,
    ) -> Option<Packet> {
        let Some(route) = self.client.get(&*packet.msg_id) else {
            return Some(packet);
        };
        if let Step::Pending(running) = route.call(stage, ctx, actor, packet) {
            running.await;
        }
        None
    }

    /// Routes another server's packet (call it from [`Stage::on_dispatch_server`]); as
    /// [`dispatch`](Self::dispatch).
    #[must_use = "a packet with no typed handler comes back: answer it (e.g. HANDLER_NOT_FOUND)"]
    pub async fn dispatch_server(
        &self,
        stage: &mut S,
        ctx: &mut StageContext<S>,
        packet: Packet,
    ) -> Option<Packet> {
        let Some(route) = self.server.get(&*packet.msg_id) else {
            return Some(packet);
        };
        if let Step::Pending(running) = route.call(stage, ctx, packet) {
            running.await;
        }
        None
    }
}

impl ActorLink {
    /// Replies to the client request being dispatched with a prost message (its id is the
    /// message's short type name). Ignored, without encoding, for one-way messages.
    pub fn reply_message<M: prost::Message + prost::Name>(&mut self, message: &M) {
        if self.is_request() {
            self.reply(Packet::from_message(message));
        }
    }
}

impl<S: Stage> StageContext<S> {
    /// Replies to the server request being dispatched with a prost message.
    pub fn reply_message<M: prost::Message + prost::Name>(&mut self, message: &M) {
        if self.server_reply.is_some() {
            self.reply(Packet::from_message(message));
        }
    }
}

impl ReplyTarget {
    /// Sends a prost message as the reply.
    pub fn reply_message<M: prost::Message + prost::Name>(self, message: &M) {
        self.reply(Packet::from_message(message));
    }
}

#[cfg(test)]
mod tests;
