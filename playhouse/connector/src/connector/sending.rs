//! Sending: the checks a packet passes before it is queued, and the async and callback forms
//! of send, request and authenticate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use playhouse_protocol::{ClientFrame, MAX_MSG_ID_LEN, Packet};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use super::{Connector, lock};
use crate::callbacks::{Event, ReplyCallback};
use crate::connection::command::{Command, Request, Responder, complete, deadline_after};
use crate::connection::handle::ConnectionHandle;
use crate::error::ConnectorError;

impl Connector {
    /// Checks that `packet` may go out now: connected, authenticated (unless `authenticate`),
    /// and encodable.
    fn admit(
        &self,
        packet: &Packet,
        authenticate: bool,
    ) -> Result<Arc<ConnectionHandle>, ConnectorError> {
        let connection = self.connection().ok_or(ConnectorError::Disconnected)?;
        if !connection.is_alive() {
            // "Not connected", or why the server ended it when that is known.
            return Err(connection.status.closed_error());
        }
        let config = lock(&self.inner.config);
        if !authenticate
            && !connection.status.authenticated.load(Ordering::SeqCst)
            && packet.msg_id != config.authenticate_msg_id.as_str()
        {
            return Err(ConnectorError::Unauthenticated);
        }
        let id_len = packet.msg_id.len();
        if id_len == 0 || id_len > MAX_MSG_ID_LEN {
            return Err(ConnectorError::Unsupported(
                "message ids must be 1..=255 bytes",
            ));
        }
        if ClientFrame::body_len_for(id_len, packet.payload.len()) > config.max_packet_size {
            return Err(ConnectorError::Unsupported(
                "packet exceeds max_packet_size",
            ));
        }
        Ok(connection)
    }

    fn report_error(&self, error: &ConnectorError, request: Packet) {
        self.inner.callbacks.emit_deferred(Event::Error {
            stage_id: self.stage_id(),
            stage_type: self.stage_type(),
            code: error.code(),
            request,
        });
    }

    /// Sends a one-way message (seq 0).
    ///
    /// # Errors
    /// [`ConnectorError::Disconnected`], [`ConnectorError::Unauthenticated`] (any id but the
    /// authenticate id before authentication), or [`ConnectorError::Unsupported`] for a packet
    /// that cannot be encoded or a full command queue. A failure is also reported to `on_error`.
    pub fn send(&self, packet: Packet) -> Result<(), ConnectorError> {
        let sent = self.admit(&packet, false).and_then(|connection| {
            connection
                .commands
                .try_send(Command::Send(packet.clone()))
                .map_err(|error| match error {
                    TrySendError::Full(_) => {
                        ConnectorError::Unsupported("the connector's command queue is full")
                    }
                    TrySendError::Closed(_) => ConnectorError::Disconnected,
                })
        });
        if let Err(error) = &sent {
            self.report_error(error, packet);
        }
        sent
    }

    /// Sends a request and waits for its reply, up to the configured `request_timeout`.
    ///
    /// # Errors
    /// [`ConnectorError::Server`] carries a non-zero error code from the server;
    /// [`ConnectorError::RequestTimeout`], [`ConnectorError::Disconnected`],
    /// [`ConnectorError::Unauthenticated`], [`ConnectorError::Protocol`],
    /// [`ConnectorError::Unsupported`] as for [`send`](Self::send).
    pub async fn request(&self, packet: Packet) -> Result<Packet, ConnectorError> {
        let timeout = lock(&self.inner.config).request_timeout;
        self.request_with_timeout(packet, timeout).await
    }

    /// [`request`](Self::request) with its own timeout.
    ///
    /// # Errors
    /// As for [`request`](Self::request).
    pub async fn request_with_timeout(
        &self,
        packet: Packet,
        timeout: Duration,
    ) -> Result<Packet, ConnectorError> {
        self.request_async(packet, timeout, false).await
    }

    async fn request_async(
        &self,
        packet: Packet,
        timeout: Duration,
        authenticate: bool,
    ) -> Result<Packet, ConnectorError> {
        // The timeout runs from this call. A request made while a resumable session
        // reconnects waits in the command queue until the connection task is back: if its
        // deadline passes before the task took it, it fails here (the task drops it unsent);
        // once taken, the task times it out at the same deadline.
        let deadline = deadline_after(timeout);
        let connection = self.admit(&packet, authenticate)?;
        let authenticate = authenticate || self.is_authenticate_id(&packet);
        let (sender, mut reply) = oneshot::channel();
        let taken = Arc::new(AtomicBool::new(false));
        let request = Request {
            packet,
            deadline,
            taken: Some(Arc::clone(&taken)),
            authenticate,
            responder: Responder::Future(sender),
        };
        let queued = async move {
            // Waiting for room here is the backpressure an async caller expects.
            connection
                .commands
                .send(Command::Request(request))
                .await
                .map_err(|_| ConnectorError::Disconnected)
        };
        match tokio::time::timeout_at(deadline, queued).await {
            Ok(sent) => sent?,
            Err(_) => return Err(ConnectorError::RequestTimeout),
        }
        tokio::select! {
            biased;
            result = &mut reply => return result.unwrap_or(Err(ConnectorError::Disconnected)),
            () = tokio::time::sleep_until(deadline) => {}
        }
        if taken.load(Ordering::SeqCst) {
            reply.await.unwrap_or(Err(ConnectorError::Disconnected))
        } else {
            Err(ConnectorError::RequestTimeout)
        }
    }

    fn is_authenticate_id(&self, packet: &Packet) -> bool {
        packet.msg_id == lock(&self.inner.config).authenticate_msg_id.as_str()
    }

    /// Sends a request; `callback` gets the reply or the error, through the callback queue (or
    /// on the connector's task with `use_main_thread_callbacks = false`), never synchronously
    /// inside this call. A failure is also reported to `on_error`.
    pub fn request_with_callback(
        &self,
        packet: Packet,
        callback: impl FnOnce(Result<Packet, ConnectorError>) + Send + 'static,
    ) {
        self.request_callback(packet, Box::new(callback), false);
    }

    fn request_callback(&self, packet: Packet, callback: ReplyCallback, authenticate: bool) {
        let timeout = lock(&self.inner.config).request_timeout;
        let responder = Responder::Callback {
            callback,
            request: packet.clone(),
        };
        let connection = match self.admit(&packet, authenticate) {
            Ok(connection) => connection,
            Err(error) => return self.fail_callback(responder, error),
        };
        let authenticate = authenticate || self.is_authenticate_id(&packet);
        let request = Request {
            packet,
            deadline: deadline_after(timeout),
            taken: None,
            authenticate,
            responder,
        };
        if let Err(error) = connection.commands.try_send(Command::Request(request)) {
            let (error, command) = match error {
                TrySendError::Full(command) => (
                    ConnectorError::Unsupported("the connector's command queue is full"),
                    command,
                ),
                TrySendError::Closed(command) => (ConnectorError::Disconnected, command),
            };
            if let Command::Request(request) = command {
                self.fail_callback(request.responder, error);
            }
        }
    }

    fn fail_callback(&self, responder: Responder, error: ConnectorError) {
        complete(
            &self.inner.callbacks,
            self.stage_id(),
            &self.stage_type(),
            responder,
            Err(error),
            Some(&self.inner.callbacks),
        );
    }

    /// Sends an authenticate request (normally with the configured `authenticate_msg_id`, but
    /// any id is accepted) and waits for the reply; success marks the connection authenticated.
    ///
    /// # Errors
    /// As for [`request`](Self::request), minus `Unauthenticated`; a refusal arrives as
    /// [`ConnectorError::Server`] (e.g.
    /// [`ErrorCode::AUTHENTICATION_FAILED`](playhouse_protocol::ErrorCode::AUTHENTICATION_FAILED)).
    pub async fn authenticate(&self, packet: Packet) -> Result<Packet, ConnectorError> {
        let timeout = lock(&self.inner.config).request_timeout;
        self.request_async(packet, timeout, true).await
    }

    /// [`authenticate`](Self::authenticate) with a typed login: `message`'s protobuf bytes
    /// under the configured
    /// [`authenticate_msg_id`](crate::ConnectorConfig::authenticate_msg_id) (the id a Play
    /// server expects, `"AuthenticateRequest"` unless both sides configure another). The
    /// server's `on_authenticate` reads it with `packet.parse::<M>()`; decode the reply with
    /// [`Packet::parse`] or [`Packet::decode`] and `?` (a
    /// [`PayloadError`](playhouse_protocol::PayloadError) converts into
    /// [`ConnectorError::Payload`]).
    ///
    /// ```no_run
    /// # use playhouse_connector::{Connector, ConnectorError};
    /// #[derive(Clone, PartialEq, prost::Message)]
    /// struct Login {
    ///     #[prost(string, tag = "1")]
    ///     token: String,
    /// }
    /// #[derive(Clone, PartialEq, prost::Message)]
    /// struct LoginReply {
    ///     #[prost(string, tag = "1")]
    ///     name: String,
    /// }
    /// impl prost::Name for LoginReply {
    ///     const NAME: &'static str = "LoginReply";
    ///     const PACKAGE: &'static str = "game";
    /// }
    /// # async fn run(connector: Connector) -> Result<(), ConnectorError> {
    /// let reply = connector.authenticate_message(&Login { token: "t".into() }).await?;
    /// let welcome: LoginReply = reply.decode()?;
    /// println!("welcome, {}", welcome.name);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As for [`authenticate`](Self::authenticate).
    pub async fn authenticate_message<M: prost::Message>(
        &self,
        message: &M,
    ) -> Result<Packet, ConnectorError> {
        let msg_id = lock(&self.inner.config).authenticate_msg_id.clone();
        self.authenticate(Packet::new(msg_id, message.encode_to_vec()))
            .await
    }

    /// [`authenticate`](Self::authenticate) with the outcome delivered like
    /// [`request_with_callback`](Self::request_with_callback).
    pub fn authenticate_with_callback(
        &self,
        packet: Packet,
        callback: impl FnOnce(Result<Packet, ConnectorError>) + Send + 'static,
    ) {
        self.request_callback(packet, Box::new(callback), true);
    }
}
