//! A loopback TCP relay that can cut the connections it carries, from either end, under a
//! client that does not know it is there. TLS and WebSocket run end to end through it.
//!
//! * [`CutProxy::cut_client_side`]: the client-facing socket closes first (the client sees its
//!   connection end at once) and the server-facing one only after a hold, so the server still
//!   holds the old connection when the client comes back.
//! * [`CutProxy::cut_server_side`]: the server-facing socket closes first and the client-facing
//!   one after a hold; what the client writes meanwhile goes nowhere.
//!
//! It relays every connection it accepts (a reconnect goes through it again), can refuse them
//! all ([`CutProxy::set_down`]), and keeps every byte relayed each way, so a verifier can read
//! the frames the real connector exchanged ([`msg_ids`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The bytes one connection carried, each way.
#[derive(Debug, Default)]
pub struct Carried {
    /// From the server to the client.
    pub to_client: Vec<u8>,
    /// From the client to the server.
    pub to_server: Vec<u8>,
}

/// One relayed connection: second handles on both sockets (so a cut can close one end while
/// the other stays open) and the task copying between them.
#[derive(Debug)]
struct Link {
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    relay: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Shared {
    links: Mutex<Vec<Link>>,
    carried: Mutex<Vec<Arc<Mutex<Carried>>>>,
    accepted: AtomicUsize,
    down: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which end of a relayed connection closes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum First {
    Client,
    Server,
}

/// Relays every connection it accepts to one upstream address; stops when dropped.
#[derive(Debug)]
pub struct CutProxy {
    /// Where the client connects.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for link in lock(&self.shared.links).drain(..) {
            link.relay.abort();
        }
    }
}

impl CutProxy {
    /// Listens on an ephemeral port of 127.0.0.1 and relays to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<CutProxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("proxy bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&shared)));
        Ok(CutProxy {
            addr,
            shared,
            accept,
        })
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// While `down`, every new connection is closed as soon as it is accepted (the server is
    /// unreachable); connections already relayed are left alone.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Cuts every live connection from the client's side: the client-facing sockets close
    /// now, the server-facing ones after `hold`. Returns how many connections were cut.
    pub async fn cut_client_side(&self, hold: Duration) -> usize {
        self.cut(First::Client, hold).await
    }

    /// Cuts every live connection from the server's side: the server-facing sockets close
    /// now, the client-facing ones after `hold`. Returns how many connections were cut.
    pub async fn cut_server_side(&self, hold: Duration) -> usize {
        self.cut(First::Server, hold).await
    }

    async fn cut(&self, first: First, hold: Duration) -> usize {
        let links: Vec<Link> = lock(&self.shared.links)
            .drain(..)
            .filter(|link| !link.relay.is_finished())
            .collect();
        let mut later = Vec::with_capacity(links.len());
        for link in links {
            // Nothing may cross any more; the second handles keep both sockets open.
            link.relay.abort();
            let _ = link.relay.await;
            let (now, then) = match first {
                First::Client => (link.client, link.server),
                First::Server => (link.server, link.client),
            };
            let _ = now.shutdown(std::net::Shutdown::Both);
            later.push(then);
        }
        let cut = later.len();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            for socket in later {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        });
        cut
    }

    /// What each connection carried so far, in the order they were accepted.
    pub fn carried(&self) -> Vec<Carried> {
        lock(&self.shared.carried)
            .iter()
            .map(|carried| {
                let carried = lock(carried);
                Carried {
                    to_client: carried.to_client.clone(),
                    to_server: carried.to_server.clone(),
                }
            })
            .collect()
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.down.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let Ok(server) = TcpStream::connect(upstream).await else {
            continue;
        };
        match relay(client, server, &shared) {
            Ok(link) => lock(&shared.links).push(link),
            Err(error) => tracing::warn!(%error, "cut proxy: cannot relay a connection"),
        }
    }
}

/// Keeps a second handle on both sockets and starts copying between them.
fn relay(client: TcpStream, server: TcpStream, shared: &Shared) -> std::io::Result<Link> {
    let client = client.into_std()?;
    let server = server.into_std()?;
    let (client_handle, server_handle) = (client.try_clone()?, server.try_clone()?);
    let client = TcpStream::from_std(client)?;
    let server = TcpStream::from_std(server)?;
    let carried = Arc::new(Mutex::new(Carried::default()));
    lock(&shared.carried).push(Arc::clone(&carried));
    let relay = tokio::spawn(async move {
        // Borrowed halves: unlike owned ones they do not shut the socket down when dropped,
        // so aborting this task leaves both connections as they are.
        let (mut client, mut server) = (client, server);
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pipe(
            client_read,
            server_write,
            Arc::clone(&carried),
            First::Client,
        );
        let down = pipe(server_read, client_write, carried, First::Server);
        tokio::join!(up, down);
    });
    Ok(Link {
        client: client_handle,
        server: server_handle,
        relay,
    })
}

/// Copies `from` to `to`, keeping a copy of every byte; `sender` says whose bytes they are.
async fn pipe(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    carried: Arc<Mutex<Carried>>,
    sender: First,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                {
                    let mut carried = lock(&carried);
                    let log = match sender {
                        First::Client => &mut carried.to_server,
                        First::Server => &mut carried.to_client,
                    };
                    log.extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// The message ids of the frames in `bytes` (a plain TCP stream of SPEC §4 frames, either
/// direction: both start `[len i32][id_len u8][msg_id]`). A frame cut short at the end is
/// left out.
pub fn msg_ids(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let len = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let len = usize::try_from(len).map_err(|_| format!("negative frame length {len}"))?;
        let Some(body) = rest.get(4..4 + len) else {
            break;
        };
        let id_len = usize::from(*body.first().ok_or("empty frame body")?);
        let id = body
            .get(1..=id_len)
            .ok_or_else(|| format!("a {len}-byte frame body shorter than its msg id"))?;
        ids.push(String::from_utf8_lossy(id).into_owned());
        rest = &rest[4 + len..];
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::msg_ids;

    #[test]
    fn msg_ids_reads_whole_frames_only() {
        let frame = |id: &str| {
            let mut body = vec![u8::try_from(id.len()).unwrap()];
            body.extend_from_slice(id.as_bytes());
            body.extend_from_slice(&[0; 10]);
            let mut out = i32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
            out.extend_from_slice(&body);
            out
        };
        let mut bytes = frame("@Ack@");
        bytes.extend(frame("EchoReply"));
        let partial = frame("Cut");
        bytes.extend_from_slice(&partial[..6]);
        assert_eq!(msg_ids(&bytes).unwrap(), ["@Ack@", "EchoReply"]);
    }
}
