//! Handler tables by message id: API handlers and system handlers, registered by
//! controllers, plain async functions or typed (prost message in, prost message out). They
//! answer as stage handlers do: with an [`IntoReply`] value.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use playhouse_mesh::{Mesh, RoutePacket};
use playhouse_protocol::{ErrorCode, Packet};
use tokio::sync::Semaphore;

use crate::api_sender::ApiSender;
use crate::limits::throttled;
use crate::mesh_reply;
use crate::reply::{ErrorReply, IntoReply};

/// A handler's answer: `None` sends nothing.
type Answer = Option<Result<Packet, ErrorReply>>;
type Handler = Arc<dyn Fn(Packet, ApiSender) -> BoxFuture<'static, Answer> + Send + Sync>;

/// Registers handlers: what a [`Controller`] fills in.
///
/// A handler is an async function of the request packet and an [`ApiSender`] (the request's
/// context plus everything a sender can do). It answers as a stage handler does: its `Ok`
/// value is the reply, its `Err` an [`ErrorCode`] or an [`ErrorReply`] (a code and a packet)
/// that the requester sees; a typed handler may return anything [`IntoReply`]. One-way
/// messages run the handler and drop its result.
#[derive(Default, Clone)]
pub struct HandlerRegistry {
    handlers: HashMap<String, Handler>,
    system: HashMap<String, Handler>,
}

impl fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerRegistry")
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field("system", &self.system.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn boxed<F, Fut, E>(handler: F) -> Handler
where
    F: Fn(Packet, ApiSender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Packet, E>> + Send + 'static,
    E: Into<ErrorReply>,
{
    Arc::new(move |packet, sender| {
        let answer = handler(packet, sender);
        Box::pin(async move { Some(answer.await.map_err(Into::into)) })
    })
}

fn typed<Req, R, F, Fut>(handler: F) -> Handler
where
    Req: prost::Message + Default + 'static,
    R: IntoReply,
    F: Fn(Req, ApiSender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |packet: Packet, sender| {
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            let Ok(request) = packet.parse::<Req>() else {
                return Some(Err(ErrorCode::INVALID_MESSAGE.into()));
            };
            handler(request, sender).await.into_reply()
        })
    })
}

impl HandlerRegistry {
    /// Handles `msg_id` with an async function of the packet.
    pub fn add<F, Fut, E>(&mut self, msg_id: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(Packet, ApiSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Packet, E>> + Send + 'static,
        E: Into<ErrorReply>,
    {
        self.handlers.insert(msg_id.into(), boxed(handler));
        self
    }

    /// Handles the message `Req` (by its short type name): the payload is decoded
    /// (`InvalidMessage` if it cannot be) and the handler's [`IntoReply`] value answers, as a
    /// typed stage handler's does (`Ok(message)` is the reply).
    pub fn add_typed<Req, R, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        Req: prost::Message + prost::Name + Default + 'static,
        R: IntoReply,
        F: Fn(Req, ApiSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        self.handlers.insert(Req::NAME.to_owned(), typed(handler));
        self
    }

    /// Handles system message `msg_id` (sent with `send_to_system` / `request_to_system`).
    pub fn add_system<F, Fut, E>(&mut self, msg_id: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(Packet, ApiSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Packet, E>> + Send + 'static,
        E: Into<ErrorReply>,
    {
        self.system.insert(msg_id.into(), boxed(handler));
        self
    }

    /// Typed form of [`HandlerRegistry::add_system`].
    pub fn add_system_typed<Req, R, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        Req: prost::Message + prost::Name + Default + 'static,
        R: IntoReply,
        F: Fn(Req, ApiSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        self.system.insert(Req::NAME.to_owned(), typed(handler));
        self
    }

    /// Whether a (non-system) handler exists for `msg_id`.
    pub fn contains(&self, msg_id: &str) -> bool {
        self.handlers.contains_key(msg_id)
    }

    fn get(&self, system: bool, msg_id: &str) -> Option<&Handler> {
        if system {
            self.system.get(msg_id)
        } else {
            self.handlers.get(msg_id)
        }
    }

    /// Runs the handler for `packet` on its own task and replies with its result;
    /// `HandlerNotFound` when there is none, `SystemError` when `limit` is exhausted,
    /// `InternalError` when the handler panics.
    pub(crate) fn dispatch(
        &self,
        mesh: &Mesh,
        packet: RoutePacket,
        sender: ApiSender,
        limit: &Arc<Semaphore>,
    ) -> bool {
        let header = packet.route;
        let Some(handler) = self.get(header.is_system(), header.msg_id()) else {
            return false;
        };
        let Ok(permit) = Arc::clone(limit).try_acquire_owned() else {
            throttled!(warn, msg_id = %header.msg_id(), "too many handlers running; refused");
            mesh_reply::send_code(mesh, &header, ErrorCode::SYSTEM_ERROR);
            return true;
        };
        let request = Packet::new(header.msg_id_shared(), packet.payload);
        let run = handler(request, sender);
        let mesh = mesh.clone();
        let trace = header.trace();
        let span = tracing::info_span!(
            "handler",
            server = mesh.server_id(),
            msg_id = %header.msg_id(),
            account = header.account_id(),
            trace_id = tracing::field::Empty,
        );
        if let Some(trace) = trace {
            span.record("trace_id", trace.trace_id());
            #[cfg(feature = "otlp")]
            crate::telemetry::continue_remote(&span, trace);
        }
        let run = async move {
            match trace {
                Some(trace) => trace.scope(run).await,
                None => run.await,
            }
        };
        let task = async move {
            let answer = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(answer) => answer,
                Err(_) => {
                    throttled!(error, msg_id = %header.msg_id(), "handler panicked");
                    Some(Err(ErrorCode::INTERNAL_ERROR.into()))
                }
            };
            drop(permit);
            match answer {
                None => {}
                Some(Ok(reply)) => mesh_reply::send(&mesh, &header, ErrorCode::SUCCESS, reply),
                Some(Err(ErrorReply { code, packet: None })) => {
                    mesh_reply::send_code(&mesh, &header, code);
                }
                Some(Err(ErrorReply {
                    code,
                    packet: Some(packet),
                })) => mesh_reply::send(&mesh, &header, code, packet),
            }
        };
        tokio::spawn(tracing::Instrument::instrument(task, span));
        true
    }
}

/// A group of handlers registered together (the original's API controller).
pub trait Controller: Send + Sync + 'static {
    /// Adds this controller's handlers.
    fn handles(&self, handlers: &mut HandlerRegistry);
}
