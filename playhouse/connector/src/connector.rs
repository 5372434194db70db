//! The public [`Connector`] handle: connection lifecycle, authentication gate, and the async and
//! callback forms of send and request.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use playhouse_protocol::{Capabilities, ErrorCode, MAX_STAGE_TYPE_LEN, Packet};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;

use crate::callbacks::{Callbacks, Event, SessionEvent};
use crate::config::ConnectorConfig;
use crate::connection::handle::ConnectionHandle;
use crate::connection::task::Setup;
use crate::error::ConnectorError;
use crate::pushes::{PushRoute, Pushes};
use crate::resume::{BoxIo, Dialer, Dialing, ResumeSetup};
use crate::transport;

mod sending;

/// A client connection to one stage on a PlayHouse play server.
///
/// Cheap to clone (all clones share one connection), `Send + Sync`. Create it inside a tokio
/// runtime (it remembers the runtime for [`connect_with_callback`](Self::connect_with_callback)
/// and direct-mode callbacks); one background task per connection owns the socket, so
/// heartbeats and timeouts run whether or not the game calls
/// [`main_thread_action`](Self::main_thread_action).
///
/// Dropping every clone closes the connection. (A handler that captures a clone keeps the
/// connector alive until it is replaced; call [`disconnect`](Self::disconnect) to close.)
#[derive(Clone)]
pub struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    config: Mutex<ConnectorConfig>,
    connection: Mutex<ConnectionState>,
    /// Stage of the current (or last) connection; the task updates it when it adopts the stage
    /// the server created for a stage-0 connect.
    stage_id: Arc<AtomicI64>,
    stage_type: Mutex<Arc<str>>,
    callbacks: Arc<Callbacks>,
    /// Where pushes go: the receiver [`Connector::pushes`] took, else `on_receive`.
    pushes: Arc<PushRoute>,
    runtime: Option<Handle>,
    /// Tells one `connect` call's attempt from the next.
    attempts: AtomicU64,
}

/// The connection, as the API sees it: none, being dialed, or handed to a task.
enum ConnectionState {
    Idle,
    /// A `connect` call is dialing; its attempt number.
    Connecting(u64),
    /// A connection task (possibly ended: see [`ConnectionHandle::is_alive`]).
    Connected(Arc<ConnectionHandle>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A dial of any stream type, type-erased.
fn boxed<Fut, S>(connecting: Fut) -> Dialing
where
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    Box::pin(async move { connecting.await.map(|stream| Box::pin(stream) as BoxIo) })
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("connected", &self.is_connected())
            .field("authenticated", &self.is_authenticated())
            .field("stage_id", &self.stage_id())
            .field("pending_requests", &self.pending_requests())
            .finish_non_exhaustive()
    }
}

/// Resets a `Connecting` state if the `connect` future is dropped mid-dial.
struct Attempt<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.inner.connection);
        if matches!(*state, ConnectionState::Connecting(id) if id == self.id) {
            *state = ConnectionState::Idle;
        }
    }
}

impl Connector {
    /// A disconnected connector.
    ///
    /// ```
    /// use playhouse_connector::{Connector, ConnectorConfig};
    /// let connector = Connector::new(ConnectorConfig::default());
    /// assert!(!connector.is_connected());
    /// ```
    pub fn new(config: ConnectorConfig) -> Self {
        let runtime = Handle::try_current().ok();
        let callbacks = Callbacks::new(
            config.use_main_thread_callbacks,
            config.callback_queue_capacity,
            runtime.clone(),
        );
        let pushes = Arc::new(PushRoute::new(config.push_queue_capacity));
        Connector {
            inner: Arc::new(Inner {
                config: Mutex::new(config),
                connection: Mutex::new(ConnectionState::Idle),
                stage_id: Arc::new(AtomicI64::new(0)),
                stage_type: Mutex::new(Arc::from("")),
                callbacks: Arc::new(callbacks),
                pushes,
                runtime,
                attempts: AtomicU64::new(0),
            }),
        }
    }

    /// A snapshot of the configuration.
    pub fn config(&self) -> ConnectorConfig {
        lock(&self.inner.config).clone()
    }

    /// Sets the timeout of requests made from now on (requests in flight keep theirs).
    pub fn set_request_timeout(&self, timeout: Duration) {
        lock(&self.inner.config).request_timeout = timeout;
    }

    /// Connects to `host:port` over the configured [`Transport`](crate::Transport) (TCP by
    /// default) and binds the connection to `stage_id` / `stage_type`
    /// (every frame carries that stage id). Also fires `on_connect(true)` or
    /// `on_connect(false)` — except for [`ConnectorError::AlreadyConnected`], which leaves the
    /// existing connection alone.
    ///
    /// A connector can connect again after a disconnect. Calling [`disconnect`](Self::disconnect)
    /// while this is dialing cancels it.
    ///
    /// A non-empty `stage_type` travels to the server (in the capability hello, before the
    /// login): a PlayHouse server joins the stage `stage_id` only if it is of that type, and
    /// creates it as that type when missing if clients may create it
    /// (`PlayServerBuilder::client_stage_types`, and the default stage type); otherwise the
    /// authentication fails with [`ErrorCode::INVALID_STAGE_TYPE`] or
    /// [`ErrorCode::STAGE_NOT_FOUND`]. An empty `stage_type` names none: the server's default
    /// stage type. (The C# original's servers ignore it.)
    ///
    /// # Errors
    /// [`ConnectorError::Connect`] when dialing fails or exceeds `connect_timeout`
    /// ([`io::ErrorKind::TimedOut`]); [`ConnectorError::NotWebSocket`] when a WebSocket
    /// transport's handshake gets no HTTP answer (a plain TCP port);
    /// [`ConnectorError::AlreadyConnected`];
    /// [`ConnectorError::Unsupported`] when the TLS settings cannot be built or `stage_type` is
    /// longer than 255 bytes.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        stage_id: i64,
        stage_type: &str,
    ) -> Result<(), ConnectorError> {
        let config = self.config();
        let options = match transport::dial_options(&config) {
            Ok(options) => options,
            Err(reason) => {
                self.inner.callbacks.emit_deferred(Event::Connect(false));
                return Err(ConnectorError::Unsupported(reason));
            }
        };
        let timeout = config.connect_timeout;
        let dial = move |endpoint: &str| {
            let (target, options) = (transport::host_port(endpoint), options.clone());
            async move {
                let (host, port) = target?;
                transport::dial(&host, port, &options, timeout).await
            }
        };
        let endpoint = transport::endpoint(host, port);
        self.connect_with_endpoint(&endpoint, dial, stage_id, stage_type)
            .await
    }

    /// Like [`connect`](Self::connect) through `dial`, which opens a byte stream to the server
    /// (any transport: a simulated network, a custom tunnel, a proxy). A resumable session
    /// ([`ConnectorConfig::resume`]) calls it again to reconnect after a drop.
    ///
    /// `dial` cannot be told to dial another address, so a resumable session whose stage the
    /// server moves to another server (`SessionEvent::Moved`) cannot follow it: it ends with
    /// [`SessionEvent::Lost`] and pending requests fail with [`ConnectorError::Moved`]. Use
    /// [`connect_with_endpoint`](Self::connect_with_endpoint) for a dialer that follows moves.
    ///
    /// # Errors
    /// [`ConnectorError::Connect`] when `dial` fails; [`ConnectorError::AlreadyConnected`].
    pub async fn connect_with<F, Fut, S>(
        &self,
        dial: F,
        stage_id: i64,
        stage_type: &str,
    ) -> Result<(), ConnectorError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let dial = Dialer::Fixed(Arc::new(move || boxed(dial())));
        self.connect_dialer(dial, stage_id, stage_type).await
    }

    /// Like [`connect_with`](Self::connect_with), but `dial` is told where to dial: first
    /// `endpoint`, then — once the server moved the session's stage to another server
    /// (`@Move@`, [`SessionEvent::Moved`]) — the `host:port` the server named, for this
    /// connection and every later reconnect of the session. `endpoint` is passed back as
    /// given (it may name anything the dialer understands); an endpoint from a move is
    /// always `host:port` (`[v6]:port` for an IPv6 address), for the transport the client
    /// connected with. [`connect`](Self::connect) is this with a dialer of
    /// [`ConnectorConfig::transport`].
    ///
    /// ```no_run
    /// # use playhouse_connector::{Connector, ConnectorConfig, ConnectorError};
    /// # async fn demo() -> Result<(), ConnectorError> {
    /// let connector = Connector::new(ConnectorConfig::default().resume(true));
    /// let dial = |endpoint: &str| tokio::net::TcpStream::connect(endpoint.to_owned());
    /// connector.connect_with_endpoint("127.0.0.1:34001", dial, 1, "GameRoom").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ConnectorError::Connect`] when `dial` fails; [`ConnectorError::AlreadyConnected`].
    pub async fn connect_with_endpoint<F, Fut, S>(
        &self,
        endpoint: &str,
        dial: F,
        stage_id: i64,
        stage_type: &str,
    ) -> Result<(), ConnectorError>
    where
        F: Fn(&str) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let dial = Dialer::Endpoint {
            dial: Arc::new(move |endpoint: &str| boxed(dial(endpoint))),
            endpoint: Arc::from(endpoint),
        };
        self.connect_dialer(dial, stage_id, stage_type).await
    }

    /// Dials once and hands the stream, and the dialer for reconnects, to a connection task.
    async fn connect_dialer(
        &self,
        dial: Dialer,
        stage_id: i64,
        stage_type: &str,
    ) -> Result<(), ConnectorError> {
        let attempt = self.begin_connect(stage_type)?;
        match dial.dial().await {
            Ok(stream) => self.attach(stream, Some(dial), stage_id, stage_type, &attempt),
            Err(error) => {
                drop(attempt);
                self.inner.callbacks.emit_deferred(Event::Connect(false));
                Err(transport::connect_error(error))
            }
        }
    }

    /// Like [`connect`](Self::connect) over an already open byte stream (any transport: a
    /// simulated network, a custom tunnel, an in-memory pipe). Fires `on_connect(true)`. The
    /// connector cannot dial such a stream again, so its sessions are not resumable; use
    /// [`connect_with`](Self::connect_with) for that.
    ///
    /// # Errors
    /// [`ConnectorError::AlreadyConnected`].
    pub fn connect_stream<S>(
        &self,
        stream: S,
        stage_id: i64,
        stage_type: &str,
    ) -> Result<(), ConnectorError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let attempt = self.begin_connect(stage_type)?;
        self.attach(Box::pin(stream), None, stage_id, stage_type, &attempt)
    }

    /// Claims the connector for a new connection to a stage of type `stage_type`.
    fn begin_connect(&self, stage_type: &str) -> Result<Attempt<'_>, ConnectorError> {
        if stage_type.len() > MAX_STAGE_TYPE_LEN {
            self.inner.callbacks.emit_deferred(Event::Connect(false));
            return Err(ConnectorError::Unsupported(
                "a stage type longer than 255 bytes",
            ));
        }
        let mut state = lock(&self.inner.connection);
        match &*state {
            ConnectionState::Connecting(_) => return Err(ConnectorError::AlreadyConnected),
            ConnectionState::Connected(connection) if connection.is_alive() => {
                return Err(ConnectorError::AlreadyConnected);
            }
            ConnectionState::Connected(_) | ConnectionState::Idle => {}
        }
        let id = self.inner.attempts.fetch_add(1, Ordering::SeqCst);
        *state = ConnectionState::Connecting(id);
        Ok(Attempt {
            inner: &self.inner,
            id,
        })
    }

    /// Hands a dialed stream to a new connection task.
    fn attach(
        &self,
        stream: BoxIo,
        dial: Option<Dialer>,
        stage_id: i64,
        stage_type: &str,
        attempt: &Attempt<'_>,
    ) -> Result<(), ConnectorError> {
        let failed = |error: io::Error| {
            self.inner.callbacks.emit_deferred(Event::Connect(false));
            Err(ConnectorError::Connect(error))
        };
        let Some(runtime) = self.runtime() else {
            return failed(io::Error::other(
                "no tokio runtime to run the connection on",
            ));
        };
        let mut state = lock(&self.inner.connection);
        if !matches!(*state, ConnectionState::Connecting(id) if id == attempt.id) {
            drop(state);
            return failed(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "disconnect() was called while connecting",
            ));
        }
        let config = self.config();
        let stage_type: Arc<str> = Arc::from(stage_type);
        self.inner.stage_id.store(stage_id, Ordering::SeqCst);
        *lock(&self.inner.stage_type) = Arc::clone(&stage_type);
        let endpoint = dial.as_ref().and_then(Dialer::endpoint);
        let resume = dial.filter(|_| config.resume).map(|dial| ResumeSetup {
            dial,
            policy: config.reconnect,
            attempt_timeout: config.connect_timeout,
        });
        let mut capabilities = Capabilities::NONE;
        if config.compression {
            capabilities = capabilities | Capabilities::LZ4;
        }
        if resume.is_some() {
            capabilities = capabilities | Capabilities::RESUME;
        }
        let setup = Setup {
            stage_id: Arc::clone(&self.inner.stage_id),
            stage_type,
            max_packet_size: config.max_packet_size,
            heartbeat_interval: config.heartbeat_interval,
            heartbeat_timeout: config.heartbeat_timeout,
            close_timeout: config.connect_timeout,
            capabilities,
            callbacks: Arc::clone(&self.inner.callbacks),
            pushes: Arc::clone(&self.inner.pushes),
            endpoint,
            resume,
        };
        let connection = ConnectionHandle::spawn(stream, setup, &runtime);
        *state = ConnectionState::Connected(Arc::new(connection));
        drop(state);
        self.inner.callbacks.emit_deferred(Event::Connect(true));
        Ok(())
    }

    /// The runtime to spawn on: the caller's, else the one the connector was created in.
    fn runtime(&self) -> Option<Handle> {
        Handle::try_current()
            .ok()
            .or_else(|| self.inner.runtime.clone())
    }

    /// Starts [`connect`](Self::connect) on a background task; the outcome arrives only as
    /// `on_connect(ok)`.
    pub fn connect_with_callback(&self, host: &str, port: u16, stage_id: i64, stage_type: &str) {
        let Some(runtime) = self.runtime() else {
            tracing::warn!("connect_with_callback: no tokio runtime; connect failed");
            self.inner.callbacks.emit_deferred(Event::Connect(false));
            return;
        };
        let this = self.clone();
        let (host, stage_type) = (host.to_owned(), stage_type.to_owned());
        drop(runtime.spawn(async move {
            if let Err(error) = this.connect(&host, port, stage_id, &stage_type).await {
                tracing::debug!(%error, "connect_with_callback failed");
            }
        }));
    }

    /// Closes the connection (flushing messages already sent, bounded by `connect_timeout`) and
    /// waits for its task to end. `on_disconnect` fires; pending requests fail with
    /// [`ConnectorError::Disconnected`]. Does nothing when not connected; cancels a `connect`
    /// that is still dialing.
    pub async fn disconnect(&self) {
        let idle = ConnectionState::Idle;
        let connection = match std::mem::replace(&mut *lock(&self.inner.connection), idle) {
            ConnectionState::Connected(connection) => connection,
            ConnectionState::Connecting(_) | ConnectionState::Idle => return,
        };
        connection.close().await;
    }

    fn connection(&self) -> Option<Arc<ConnectionHandle>> {
        match &*lock(&self.inner.connection) {
            ConnectionState::Connected(connection) => Some(Arc::clone(connection)),
            ConnectionState::Connecting(_) | ConnectionState::Idle => None,
        }
    }

    fn live_connection(&self) -> Option<Arc<ConnectionHandle>> {
        self.connection().filter(|connection| connection.is_alive())
    }

    /// Whether a connection is up. Becomes `false` as soon as the connection task notices the
    /// connection is gone (server close, error, heartbeat timeout) or `disconnect` is called.
    pub fn is_connected(&self) -> bool {
        self.live_connection().is_some()
    }

    /// Whether an authenticate request succeeded on the current connection.
    pub fn is_authenticated(&self) -> bool {
        self.live_connection()
            .is_some_and(|connection| connection.status.authenticated.load(Ordering::SeqCst))
    }

    /// The stage of the current (or last) connection. After connecting with stage 0, a
    /// successful authenticate adopts the stage id the server replied with.
    pub fn stage_id(&self) -> i64 {
        self.inner.stage_id.load(Ordering::SeqCst)
    }

    fn stage_type(&self) -> Arc<str> {
        Arc::clone(&lock(&self.inner.stage_type))
    }

    /// The endpoint (`host:port`) of the current (or last) connection: what
    /// [`connect`](Self::connect) or [`connect_with_endpoint`](Self::connect_with_endpoint)
    /// was given, or where the server moved the session since ([`SessionEvent::Moved`]; from
    /// the moment the connector follows the move, so also while it resumes there). `None`
    /// before the first connection and while a `connect` is dialing, and for
    /// [`connect_with`](Self::connect_with) and [`connect_stream`](Self::connect_stream), whose
    /// address the connector does not know.
    pub fn endpoint(&self) -> Option<String> {
        self.connection()
            .and_then(|connection| connection.status.endpoint())
            .map(|endpoint| endpoint.to_string())
    }

    /// Requests written and still awaiting their reply.
    pub fn pending_requests(&self) -> usize {
        self.connection().map_or(0, |connection| {
            connection.status.pending.load(Ordering::SeqCst)
        })
    }

    /// Runs every callback queued so far (events and callback-request replies) on the calling
    /// thread and returns how many ran. A game loop calls this once per frame. Callbacks queued
    /// while it runs wait for the next call; a nested call from inside a callback returns 0.
    pub fn main_thread_action(&self) -> usize {
        self.inner.callbacks.run_queued()
    }

    /// Replaces the handler for connect outcomes (`true`: connected).
    pub fn on_connect(&self, handler: impl FnMut(bool) + Send + 'static) {
        self.inner.callbacks.set_connect(Box::new(handler));
    }

    /// Replaces the handler called once per connection loss, whoever closed it.
    pub fn on_disconnect(&self, handler: impl FnMut() + Send + 'static) {
        self.inner.callbacks.set_disconnect(Box::new(handler));
    }

    /// Replaces the handler for what happens to a resumable session
    /// ([`ConnectorConfig::resume`]): reconnecting, resumed, lost, moved.
    pub fn on_session(&self, handler: impl FnMut(SessionEvent) + Send + 'static) {
        self.inner.callbacks.set_session(Box::new(handler));
    }

    /// The server's pushes as an async stream, whatever
    /// [`use_main_thread_callbacks`](ConnectorConfig::use_main_thread_callbacks) says (no
    /// [`main_thread_action`](Self::main_thread_action) needed). While the returned [`Pushes`]
    /// exists every push goes to it, none to [`on_receive`](Self::on_receive); each push is
    /// delivered once, in order, across reconnections and resumed sessions. A later call takes
    /// the pushes over (the earlier receiver returns what it holds, then ends); dropping it
    /// hands pushes back to `on_receive`. The receiver holds up to
    /// [`push_queue_capacity`](ConnectorConfig::push_queue_capacity) pushes; when it is full
    /// the connection stops reading until there is room (nothing is dropped) — so read it
    /// from a task of its own, or drop it: replies queued behind unread pushes wait too.
    ///
    /// ```no_run
    /// # use playhouse_connector::{Connector, ConnectorConfig};
    /// # async fn run(connector: Connector) {
    /// let mut pushes = connector.pushes();
    /// tokio::spawn(async move {
    ///     while let Some(push) = pushes.recv().await {
    ///         println!("push {} ({} bytes)", push.packet.msg_id, push.packet.payload.len());
    ///     }
    /// });
    /// # }
    /// ```
    pub fn pushes(&self) -> Pushes {
        self.inner.pushes.take()
    }

    /// Replaces the handler for server pushes: `(stage_id, stage_type, packet)`. Not called
    /// while a [`Pushes`] receiver from [`pushes`](Self::pushes) exists.
    pub fn on_receive(&self, handler: impl FnMut(i64, &str, Packet) + Send + 'static) {
        self.inner.callbacks.set_receive(Box::new(handler));
    }

    /// Replaces the handler for failed [`send`](Self::send)s and failed callback-form requests:
    /// `(stage_id, stage_type, code, request)`. (Async requests report through their `Result`.)
    pub fn on_error(&self, handler: impl FnMut(i64, &str, ErrorCode, Packet) + Send + 'static) {
        self.inner.callbacks.set_error(Box::new(handler));
    }
}

#[cfg(test)]
mod tests;
