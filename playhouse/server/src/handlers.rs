//! Handler tables by message id: API handlers and system handlers, registered by
//! controllers, plain async functions or typed (prost message in, prost message out).

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

type Handler =
    Arc<dyn Fn(Packet, ApiSender) -> BoxFuture<'static, Result<Packet, ErrorCode>> + Send + Sync>;

/// Registers handlers: what a [`Controller`] fills in.
///
/// A handler is an async function of the request packet and an [`ApiSender`] (the request's
/// context plus everything a sender can do); its `Ok` value is the reply, its `Err` the error
/// code the requester sees. One-way messages run the handler and drop its result.
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

fn boxed<F, Fut>(handler: F) -> Handler
where
    F: Fn(Packet, ApiSender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Packet, ErrorCode>> + Send + 'static,
{
    Arc::new(move |packet, sender| Box::pin(handler(packet, sender)))
}

fn typed<Req, Rep, F, Fut>(handler: F) -> Handler
where
    Req: prost::Message + Default + 'static,
    Rep: prost::Message + prost::Name + 'static,
    F: Fn(Req, ApiSender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Rep, ErrorCode>> + Send + 'static,
{
    let handler = Arc::new(handler);
    boxed(move |packet: Packet, sender| {
        let handler = Arc::clone(&handler);
        async move {
            let request = packet
                .parse::<Req>()
                .map_err(|_| ErrorCode::INVALID_MESSAGE)?;
            let reply = handler(request, sender).await?;
            Ok(Packet::from_message(&reply))
        }
    })
}

impl HandlerRegistry {
    /// Handles `msg_id` with an async function of the packet.
    pub fn add<F, Fut>(&mut self, msg_id: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(Packet, ApiSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Packet, ErrorCode>> + Send + 'static,
    {
        self.handlers.insert(msg_id.into(), boxed(handler));
        self
    }

    /// Handles the message `Req` (by its short type name): the payload is decoded
    /// (`InvalidMessage` if it cannot be) and the `Rep` returned is the reply.
    pub fn add_typed<Req, Rep, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        Req: prost::Message + prost::Name + Default + 'static,
        Rep: prost::Message + prost::Name + 'static,
        F: Fn(Req, ApiSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Rep, ErrorCode>> + Send + 'static,
    {
        self.handlers.insert(Req::NAME.to_owned(), typed(handler));
        self
    }

    /// Handles system message `msg_id` (sent with `send_to_system` / `request_to_system`).
    pub fn add_system<F, Fut>(&mut self, msg_id: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(Packet, ApiSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Packet, ErrorCode>> + Send + 'static,
    {
        self.system.insert(msg_id.into(), boxed(handler));
        self
    }

    /// Typed form of [`HandlerRegistry::add_system`].
    pub fn add_system_typed<Req, Rep, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        Req: prost::Message + prost::Name + Default + 'static,
        Rep: prost::Message + prost::Name + 'static,
        F: Fn(Req, ApiSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Rep, ErrorCode>> + Send + 'static,
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
            tracing::warn!(msg_id = %header.msg_id(), "too many handlers running; refused");
            let _ = mesh.reply(
                &header,
                ErrorCode::SYSTEM_ERROR,
                Packet::empty(header.msg_id()),
            );
            return true;
        };
        let request = Packet::new(header.msg_id(), packet.payload);
        let run = handler(request, sender);
        let mesh = mesh.clone();
        tokio::spawn(async move {
            let result = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!(msg_id = %header.msg_id(), "handler panicked");
                    Err(ErrorCode::INTERNAL_ERROR)
                }
            };
            drop(permit);
            let reply = match result {
                Ok(reply) => mesh.reply(&header, ErrorCode::SUCCESS, reply),
                Err(code) => mesh.reply(&header, code, Packet::empty(header.msg_id())),
            };
            if let Err(error) = reply {
                tracing::debug!(%error, "reply not delivered");
            }
        });
        true
    }
}

/// A group of handlers registered together (the original's API controller).
pub trait Controller: Send + Sync + 'static {
    /// Adds this controller's handlers.
    fn handles(&self, handlers: &mut HandlerRegistry);
}
