//! A TCP proxy that puts real network faults between two mesh nodes, whatever link they run
//! (turmoil cannot host the ZeroMQ link: the `zeromq` crate opens its own sockets).
//!
//! A node reaches the server behind a proxy through it (the test directory advertises the
//! proxy's address). Every accepted connection is pumped both ways; [`Fault`] says what
//! happens to the bytes from now on. Bytes a fault swallowed are gone, so a direction that
//! lost any stays silent for good (a TCP stream cannot skip bytes): once the fault heals, only
//! new connections carry traffic, which is what a node must find out for itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the proxy does to traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Forward everything.
    Pass,
    /// Swallow everything both ways, send no FIN and no RST; new connections are accepted
    /// and go nowhere.
    Partition,
    /// Swallow what the dialing node sends (towards the server behind the proxy); the other
    /// direction passes.
    DropForward,
    /// Deliver everything this much later (in order).
    Delay(Duration),
    /// The server behind the proxy is frozen (SIGSTOP): nothing is read either way, new
    /// connections are accepted and never read; everything resumes when the fault changes.
    Freeze,
}

/// Which way bytes flow through a connection.
#[derive(Clone, Debug)]
enum Way {
    /// From the dialing node to the server behind the proxy.
    Forward,
    /// From the server, which counts here the connections it ends.
    Backward(Arc<AtomicUsize>),
}

/// The current reset token: connections accepted now end when it is cancelled.
type Resets = Arc<Mutex<CancellationToken>>;

/// A running proxy; stops accepting when dropped.
pub(crate) struct FaultProxy {
    address: SocketAddr,
    fault: watch::Sender<Fault>,
    resets: Resets,
    stop: CancellationToken,
    /// Connections the server behind the proxy closed (its side ended).
    closed_by_server: Arc<AtomicUsize>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.resets.lock().unwrap().cancel();
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream` (`tcp://host:port`).
    pub(crate) async fn start(upstream: &str) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("tcp://")
            .parse()
            .expect("a loopback address");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (fault, faults) = watch::channel(Fault::Pass);
        let resets: Resets = Arc::default();
        let stop = CancellationToken::new();
        let closed_by_server = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept_loop(
            listener,
            Upstream {
                address: upstream,
                closed: Arc::clone(&closed_by_server),
            },
            faults,
            Arc::clone(&resets),
            stop.clone(),
        ));
        FaultProxy {
            address,
            fault,
            resets,
            stop,
            closed_by_server,
        }
    }

    /// How many connections through the proxy the server behind it has closed so far (read
    /// to their end on its side, whatever the fault then does with the FIN).
    pub(crate) fn closed_by_server(&self) -> usize {
        self.closed_by_server.load(Ordering::SeqCst)
    }

    /// `tcp://127.0.0.1:port`.
    pub(crate) fn address(&self) -> String {
        format!("tcp://{}", self.address)
    }

    /// Applies `fault` from now on.
    pub(crate) fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Resets every connection through the proxy (RST to both ends); new ones pass.
    pub(crate) fn reset_all(&self) {
        let mut reset = self.resets.lock().unwrap();
        reset.cancel();
        *reset = CancellationToken::new();
    }
}

/// The server behind the proxy, and the count of connections it closed.
#[derive(Clone)]
struct Upstream {
    address: SocketAddr,
    closed: Arc<AtomicUsize>,
}

async fn accept_loop(
    listener: TcpListener,
    upstream: Upstream,
    faults: watch::Receiver<Fault>,
    resets: Resets,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else { continue };
        let reset = resets.lock().unwrap().clone();
        tokio::spawn(connection(client, upstream.clone(), faults.clone(), reset));
    }
}

async fn connection(
    client: TcpStream,
    upstream: Upstream,
    mut faults: watch::Receiver<Fault>,
    reset: CancellationToken,
) {
    let _ = client.set_nodelay(true);
    // Accepted while frozen: never read until thawed.
    while *faults.borrow_and_update() == Fault::Freeze {
        tokio::select! {
            _ = reset.cancelled() => return abort(client),
            changed = faults.changed() => if changed.is_err() { return },
        }
    }
    if *faults.borrow() == Fault::Partition {
        // Goes nowhere: read and forget, until the dialer gives up.
        let mut client = client;
        let mut buf = [0u8; 4096];
        loop {
            tokio::select! {
                _ = reset.cancelled() => return abort(client),
                read = client.read(&mut buf) => if !matches!(read, Ok(n) if n > 0) { return },
            }
        }
    }
    let Ok(server) = TcpStream::connect(upstream.address).await else {
        return abort(client);
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::spawn(pump(
        client_read,
        server_write,
        Way::Forward,
        faults.clone(),
        reset.clone(),
    ));
    tokio::spawn(pump(
        server_read,
        client_write,
        Way::Backward(upstream.closed),
        faults,
        reset,
    ));
}

/// Closes with an RST.
fn abort(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Reads one direction and hands what may pass to its writer (which applies delays).
async fn pump(
    mut from: OwnedReadHalf,
    to: OwnedWriteHalf,
    way: Way,
    mut faults: watch::Receiver<Fault>,
    reset: CancellationToken,
) {
    let (chunks, queued) = mpsc::unbounded_channel();
    tokio::spawn(write(to, queued, reset.clone()));
    let mut swallowed = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            _ = reset.cancelled() => return,
            read = from.read(&mut buf) => read,
        };
        let n = match read {
            Ok(n) if n > 0 => n,
            // The end (or an error): pass the FIN on, unless this direction is or went
            // silent (a partition swallows FINs too).
            _ => {
                if let Way::Backward(closed) = &way {
                    closed.fetch_add(1, Ordering::SeqCst);
                }
                let silent = match *faults.borrow() {
                    Fault::Partition | Fault::Freeze => true,
                    Fault::DropForward => matches!(way, Way::Forward),
                    Fault::Pass | Fault::Delay(_) => false,
                };
                if !swallowed && !silent {
                    let _ = chunks.send(None);
                }
                return;
            }
        };
        // Frozen mid-read: hold the chunk (and read nothing more) until thawed.
        while *faults.borrow_and_update() == Fault::Freeze {
            tokio::select! {
                _ = reset.cancelled() => return,
                changed = faults.changed() => if changed.is_err() { return },
            }
        }
        let delay = match *faults.borrow() {
            Fault::Pass | Fault::Freeze => Duration::ZERO,
            Fault::Delay(delay) => delay,
            Fault::Partition => {
                swallowed = true;
                Duration::ZERO
            }
            Fault::DropForward => {
                swallowed |= matches!(way, Way::Forward);
                Duration::ZERO
            }
        };
        if swallowed {
            continue;
        }
        let chunk = Bytes::copy_from_slice(&buf[..n]);
        if chunks.send(Some((Instant::now() + delay, chunk))).is_err() {
            return;
        }
    }
}

/// Writes chunks at their delivery time; `None` ends the direction with a FIN. A reset
/// closes the socket with an RST.
async fn write(
    mut to: OwnedWriteHalf,
    mut queued: mpsc::UnboundedReceiver<Option<(Instant, Bytes)>>,
    reset: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = reset.cancelled() => break,
            next = queued.recv() => next,
        };
        let (at, chunk) = match next {
            Some(Some(chunk)) => chunk,
            // A FIN; the other direction may still carry data.
            Some(None) => {
                let _ = to.shutdown().await;
                return;
            }
            // The reader stopped silently: keep the connection open, as a partition would,
            // until the proxy resets or stops.
            None => {
                reset.cancelled().await;
                break;
            }
        };
        tokio::select! {
            _ = reset.cancelled() => break,
            _ = tokio::time::sleep_until(at) => {}
        }
        if to.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = to.as_ref().set_zero_linger();
    to.forget();
}
