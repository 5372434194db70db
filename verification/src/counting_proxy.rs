//! A one-connection TCP relay that counts the bytes the server sends, so a verifier can see
//! what the real connector received on the wire without looking inside it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Relays the first connection it accepts to `upstream`.
#[derive(Debug)]
pub struct CountingProxy {
    /// Where the client connects.
    pub addr: SocketAddr,
    from_server: Arc<AtomicU64>,
}

impl CountingProxy {
    /// Listens on an ephemeral port of 127.0.0.1 and relays to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<CountingProxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("proxy bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let from_server = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&from_server);
        tokio::spawn(async move {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let up = async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                let _ = server_write.shutdown().await;
            };
            let down = async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            counter.fetch_add(n as u64, Ordering::SeqCst);
                            if client_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = client_write.shutdown().await;
            };
            tokio::join!(up, down);
        });
        Ok(CountingProxy { addr, from_server })
    }

    /// Bytes relayed from the server to the client so far.
    pub fn bytes_from_server(&self) -> u64 {
        self.from_server.load(Ordering::SeqCst)
    }
}
