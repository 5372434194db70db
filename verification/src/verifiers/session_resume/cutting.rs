//! Where and how a run's connection is cut: the transport, which end goes first, and the
//! cutter (the connector's own socket, or a relay between it and play-1).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use playhouse_connector::{ConnectorConfig, ReconnectPolicy, TlsTrust};

use crate::check::TestResult;
use crate::client;
use crate::context::TestCtx;
use crate::cut_proxy::CutProxy;
use crate::ensure;

/// How long the relay keeps the other end open after cutting one.
const HOLD: Duration = Duration::from_millis(150);

/// The transport a run connects over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transport {
    Tcp,
    Tls,
    WebSocket,
}

/// Which end of the connection goes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Client,
    Server,
}

/// One cut run: where, how, how many times in a row.
#[derive(Clone, Copy, Debug)]
pub(super) struct Run {
    pub(super) offset: i64,
    pub(super) transport: Transport,
    pub(super) side: Side,
    pub(super) cuts: usize,
}

impl Run {
    pub(super) fn new(offset: i64, transport: Transport, side: Side) -> Run {
        Run {
            offset,
            transport,
            side,
            cuts: 1,
        }
    }

    pub(super) fn cuts(self, cuts: usize) -> Run {
        Run { cuts, ..self }
    }

    pub(super) fn user(&self) -> String {
        format!("resume_user_{}", self.offset)
    }
}

/// A connector config that asks for resumable sessions and reconnects quickly.
pub(super) fn resumable(base: ConnectorConfig) -> ConnectorConfig {
    base.resume(true)
        .request_timeout(Duration::from_secs(10))
        .reconnect(ReconnectPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            jitter_seed: Some(27),
        })
}

/// The connector settings, host name and play-1 endpoint for `transport`.
pub(super) fn endpoint(
    t: &TestCtx,
    transport: Transport,
) -> (ConnectorConfig, &'static str, SocketAddr) {
    let servers = t.servers();
    let direct = resumable(client::direct_config());
    match transport {
        Transport::Tcp => (direct, "127.0.0.1", servers.play_tcp),
        Transport::Tls => (
            direct.transport(playhouse_connector::Transport::Tls {
                trust: TlsTrust::Config(servers.tls_client.clone()),
            }),
            // The generated certificate names `localhost`.
            "localhost",
            servers.play_tls,
        ),
        Transport::WebSocket => (
            direct.transport(playhouse_connector::Transport::websocket()),
            "127.0.0.1",
            servers.play_ws,
        ),
    }
}

/// Dials play-1 over TCP for the connector and keeps a second handle on every socket, so a
/// cut closes the connector's own socket (`shutdown(Both)`: its reads end, the server sees
/// the end) while the connector holds it.
#[derive(Clone, Debug, Default)]
pub(super) struct OwnSockets {
    sockets: Arc<Mutex<Vec<std::net::TcpStream>>>,
    dialed: Arc<AtomicUsize>,
}

type Dialing = Pin<Box<dyn Future<Output = std::io::Result<tokio::net::TcpStream>> + Send>>;

impl OwnSockets {
    pub(super) fn dialer(&self, addr: SocketAddr) -> impl Fn() -> Dialing + Send + Sync + 'static {
        let this = self.clone();
        move || {
            let this = this.clone();
            Box::pin(async move {
                this.dialed.fetch_add(1, Ordering::SeqCst);
                let stream = tokio::net::TcpStream::connect(addr).await?.into_std()?;
                this.sockets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(stream.try_clone()?);
                tokio::net::TcpStream::from_std(stream)
            })
        }
    }

    /// Shuts down every socket dialed so far; returns how many.
    fn cut(&self) -> usize {
        let sockets: Vec<_> = self
            .sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for socket in &sockets {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        sockets.len()
    }
}

/// How a run's connection is cut.
pub(super) enum Cutter {
    /// The connector's own TCP socket.
    Own(OwnSockets),
    /// A relay between the connector and play-1.
    Proxy(CutProxy, Side),
}

impl Cutter {
    pub(super) async fn cut(&self) -> TestResult {
        let cut = match self {
            Cutter::Own(sockets) => sockets.cut(),
            Cutter::Proxy(proxy, Side::Client) => proxy.cut_client_side(HOLD).await,
            Cutter::Proxy(proxy, Side::Server) => proxy.cut_server_side(HOLD).await,
        };
        ensure!(cut > 0, "there was no live connection to cut");
        Ok(())
    }

    /// Connections opened so far.
    pub(super) fn dialed(&self) -> usize {
        match self {
            Cutter::Own(sockets) => sockets.dialed.load(Ordering::SeqCst),
            Cutter::Proxy(proxy, _) => proxy.accepted(),
        }
    }
}
