//! The HTTP front door with every resource bounded: [`serve_http`] runs an axum router over any
//! PlayHouse [`Listener`] (TCP, TLS) with header, request and keep-alive timeouts and a
//! connection cap ([`HttpLimits`]). `axum::serve` has none of these: a client sending nothing,
//! or one byte a second, would hold its connection (and a file descriptor) forever.
//!
//! hyper's own `header_read_timeout` is not used: it starts when the previous response is
//! written, so an idle keep-alive connection would be cut after the header timeout (and
//! without it hyper closes no idle connection at all). Instead each connection has a
//! [`PhaseClock`], fed by its request handler and by a thin wrapper around its stream
//! ([`Metered`]), and a watcher beside hyper's connection future closes the connection when
//! the deadline of its phase passes:
//!
//! ```text
//!   opened ──first byte──▶ Head ──request complete──▶ Busy ──response──▶ Idle ──first byte──▶ Head ...
//!   (header_timeout)       (header_timeout)           (request_timeout)  (keep_alive_timeout)
//!                                                            └──101 Switching Protocols──▶ Upgraded (no deadline)
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use playhouse_transport::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fd_limit::clamp_connections;
use crate::limits::LogThrottle;

/// File descriptors an HTTP server leaves to the rest of the process when its
/// `max_connections` has to be lowered to fit `RLIMIT_NOFILE`.
const HTTP_FD_RESERVE: usize = 256;

/// Bounds on one HTTP server ([`serve_http`]): how long a client may take and how many may
/// be connected. Every field has a default suited to an internet-facing server; the API
/// server's HTTP front door and the metrics endpoint use the same ones.
///
/// ```
/// # use std::time::Duration;
/// let mut limits = playhouse::HttpLimits::default();
/// limits.max_connections = 256;
/// limits.request_timeout = Duration::from_secs(5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpLimits {
    /// A request head (request line and headers) must arrive complete within this, counted
    /// from its first byte, or from the connection's opening for its first request (a TLS
    /// handshake included). Otherwise the connection is closed. Default: 10 s.
    pub header_timeout: Duration,
    /// Reading a request's body and producing its response must finish within this.
    /// Otherwise the client gets `408 Request Timeout` and the connection is closed if the
    /// body had not arrived, `503 Service Unavailable` if the handler was slow.
    /// Default: 40 s, longer than the mesh's default request timeout (30 s), so a handler
    /// waiting on another server answers with the mesh's own error first.
    pub request_timeout: Duration,
    /// A keep-alive connection with no bytes in either direction for this long between two
    /// requests is closed. Default: 60 s.
    pub keep_alive_timeout: Duration,
    /// Connections open at once; a further one is closed as soon as it is accepted. Lowered
    /// at start, with a warning, if the process's file-descriptor limit (raised to the hard
    /// limit first, see [`crate::raise_fd_limit`]) would not leave 256 descriptors to the
    /// rest of the process. A WebSocket upgraded on this server stops counting here (the
    /// Play server's own limits apply to it). Default: 1,024.
    pub max_connections: usize,
    /// The largest request body axum's extractors (`Json`, `Bytes`, `String`, ...) accept;
    /// a larger one is answered `413 Payload Too Large`. A route's own
    /// [`DefaultBodyLimit`] takes precedence. Default: 2 MiB.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(40),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 1_024,
            max_body_bytes: 2 * 1024 * 1024,
        }
    }
}

/// Serves `app` over HTTP/1.1 on `listener` under `limits` until `shutdown` resolves; then
/// stops accepting, lets requests in flight finish (each bounded by the request timeout),
/// closes idle connections and returns once every HTTP connection has closed.
///
/// Handlers can extract [`ConnectInfo<SocketAddr>`](ConnectInfo) (the client's address), and
/// connection upgrades work: [`crate::PlayServer::websocket_router`] can be merged into
/// `app`. An upgraded connection leaves the HTTP limits behind. The process's file-descriptor
/// limit is raised to its hard limit first ([`crate::raise_fd_limit`]).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use playhouse::{HttpLimits, serve_http};
/// let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let stop = tokio_util::sync::CancellationToken::new();
/// tokio::spawn(serve_http(listener, app, HttpLimits::default(), stop.clone().cancelled_owned()));
/// // ... later:
/// stop.cancel();
/// # Ok(()) }
/// ```
pub async fn serve_http<L: Listener>(
    mut listener: L,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let local = listener.local_addr().ok();
    let default = HttpLimits::default().max_connections;
    let cap = clamp_connections(
        "HTTP server",
        limits.max_connections,
        default,
        HTTP_FD_RESERVE,
    )
    .min(Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(cap));
    let app = app.layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let timeouts = Timeouts::from(&limits);
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let refusals = LogThrottle::new(Duration::from_secs(1));
    let accept_errors = LogThrottle::new(Duration::from_secs(1));
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if let Some(suppressed) = accept_errors.allow() {
                        tracing::warn!(?local, %error, suppressed, "HTTP accept failed");
                    }
                    // E.g. out of file descriptors: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let connection = serve_connection(io, peer, app.clone(), timeouts, stop.clone());
                connections.spawn(async move {
                    connection.await;
                    drop(permit);
                });
            }
            Err(_) => {
                // Dropping the stream closes it before a byte is read.
                drop(io);
                if let Some(suppressed) = refusals.allow() {
                    tracing::warn!(
                        ?local,
                        %peer,
                        max_connections = cap,
                        suppressed,
                        "HTTP connection refused: too many open"
                    );
                }
            }
        }
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

/// The per-connection copy of the timeouts.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    header: Duration,
    request: Duration,
    keep_alive: Duration,
}

impl From<&HttpLimits> for Timeouts {
    fn from(limits: &HttpLimits) -> Self {
        Timeouts {
            header: limits.header_timeout,
            request: limits.request_timeout,
            keep_alive: limits.keep_alive_timeout,
        }
    }
}

/// Serves one HTTP connection until it closes, is upgraded, or (after `stop`) has finished
/// its request in flight.
async fn serve_connection<Io>(
    io: Io,
    peer: SocketAddr,
    app: Router,
    timeouts: Timeouts,
    stop: CancellationToken,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let clock = Arc::new(PhaseClock::new(timeouts));
    let phase = Arc::clone(&clock);
    let io = TokioIo::new(Metered {
        io,
        clock: Arc::clone(&clock),
    });
    let app = TowerToHyperService::new(app);
    let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
        phase.request_started();
        let body_done = Arc::new(AtomicBool::new(false));
        let mut request =
            request.map(|body| Body::new(WatchedBody::new(body, Arc::clone(&body_done))));
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = hyper::service::Service::call(&app, request);
        let phase = Arc::clone(&phase);
        async move {
            let response = match tokio::time::timeout(timeouts.request, response).await {
                Ok(Ok(response)) => response,
                Ok(Err(infallible)) => match infallible {},
                Err(_) => too_slow(body_done.load(Ordering::Acquire)),
            };
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                phase.upgraded();
            } else {
                phase.request_done();
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        // Replaced by the `PhaseClock` (see the module docs).
        .header_read_timeout(None)
        .serve_connection(io, handler)
        .with_upgrades();
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => Some(ended),
        () = clock.expired() => None,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                ended = connection.as_mut() => Some(ended),
                () = clock.expired() => None,
            }
        }
    };
    match ended {
        // Dropping the connection closes it.
        None => tracing::debug!(%peer, "HTTP connection timed out"),
        Some(Err(error)) => tracing::debug!(%peer, %error, "HTTP connection ended"),
        Some(Ok(())) => {}
    }
}

/// The answer to a request that did not complete within the request timeout.
fn too_slow(body_done: bool) -> Response<Body> {
    if body_done {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long to handle",
        )
            .into_response();
    }
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        "the request body did not arrive in time",
    )
        .into_response();
    // The rest of the body may still be on its way: this connection cannot carry another
    // request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that records when it has been read to the end, to tell a slow client
/// (408) from a slow handler (503).
struct WatchedBody {
    inner: Incoming,
    done: Arc<AtomicBool>,
}

impl WatchedBody {
    fn new(inner: Incoming, done: Arc<AtomicBool>) -> Self {
        if hyper::body::Body::is_end_stream(&inner) {
            done.store(true, Ordering::Release);
        }
        WatchedBody { inner, done }
    }
}

impl hyper::body::Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a connection stands between requests, and so which deadline applies.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request's first byte since `since` (the connection's opening when
    /// `first`, else the last byte of the previous exchange).
    Idle { since: Instant, first: bool },
    /// A request head is arriving; its first byte came at `since`.
    Head { since: Instant },
    /// A request is being read and handled: the request timeout applies instead.
    Busy,
    /// Protocols switched (WebSocket): no longer HTTP, no HTTP deadline.
    Upgraded,
}

/// A connection's [`Phase`], shared by its request handler, its stream and its watcher.
#[derive(Debug)]
struct PhaseClock {
    timeouts: Timeouts,
    phase: Mutex<Phase>,
    /// Wakes the watcher when a phase change may bring the deadline forward.
    changed: Notify,
}

impl PhaseClock {
    fn new(timeouts: Timeouts) -> Self {
        PhaseClock {
            timeouts,
            phase: Mutex::new(Phase::Idle {
                since: Instant::now(),
                first: true,
            }),
            changed: Notify::new(),
        }
    }

    /// Resolves once the deadline of the current phase has passed.
    async fn expired(&self) {
        loop {
            // Created before reading the deadline, so no change is missed.
            let changed = self.changed.notified();
            match self.deadline() {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        f(&mut self.phase.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// When the connection is to be closed unless something happens first.
    fn deadline(&self) -> Option<Instant> {
        match self.with(|phase| *phase) {
            Phase::Idle { since, first: true } | Phase::Head { since } => {
                Some(since + self.timeouts.header)
            }
            Phase::Idle { since, .. } => Some(since + self.timeouts.keep_alive),
            Phase::Busy | Phase::Upgraded => None,
        }
    }

    /// Bytes arrived: the start of a request head if the connection was idle.
    fn bytes_read(&self) {
        let started = self.with(|phase| {
            let idle = matches!(phase, Phase::Idle { .. });
            if idle {
                *phase = Phase::Head {
                    since: Instant::now(),
                };
            }
            idle
        });
        if started {
            self.changed.notify_waiters();
        }
    }

    /// Bytes went out: the end of a response is not idleness yet. (This only moves the
    /// deadline later: the watcher finds out when it wakes.)
    fn bytes_written(&self) {
        self.with(|phase| {
            if let Phase::Idle {
                since,
                first: false,
            } = phase
            {
                *since = Instant::now();
            }
        });
    }

    fn request_started(&self) {
        self.with(|phase| *phase = Phase::Busy);
    }

    fn request_done(&self) {
        self.with(|phase| {
            *phase = Phase::Idle {
                since: Instant::now(),
                first: false,
            }
        });
        self.changed.notify_waiters();
    }

    fn upgraded(&self) {
        self.with(|phase| *phase = Phase::Upgraded);
    }
}

/// A connection's stream, reporting its traffic to the [`PhaseClock`].
struct Metered<Io> {
    io: Io,
    clock: Arc<PhaseClock>,
}

impl<Io> fmt::Debug for Metered<Io> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metered")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Metered<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_read();
        }
        read
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Metered<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.bytes_written();
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.bytes_written();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
