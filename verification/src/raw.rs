//! A raw wire-protocol client for checks the connector hides on purpose: frames written by
//! hand from SPEC §4, server frames read byte for byte (compression flag included), and
//! whether the server closed the connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::client::auth_packet;

/// One server frame exactly as it came off the wire (the payload is *not* decompressed).
#[derive(Clone, Debug)]
pub struct RawFrame {
    /// The message id.
    pub msg_id: String,
    /// 0 for pushes, the request's sequence for replies.
    pub msg_seq: u16,
    /// The stage id.
    pub stage_id: i64,
    /// The error code.
    pub error_code: u16,
    /// The uncompressed payload size when the payload is LZ4-compressed, else 0.
    pub original_size: i32,
    /// The payload bytes as sent.
    pub payload: Vec<u8>,
    /// The frame body's length (everything after the 4-byte length prefix).
    pub body_len: usize,
}

/// One client frame: `[len][id_len][msg_id][seq u16][stage i64][payload]`, all little-endian.
pub fn client_frame(msg_id: &[u8], msg_seq: u16, stage_id: i64, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(1 + msg_id.len() + 10 + payload.len());
    body.push(u8::try_from(msg_id.len()).unwrap_or(u8::MAX));
    body.extend_from_slice(msg_id);
    body.extend_from_slice(&msg_seq.to_le_bytes());
    body.extend_from_slice(&stage_id.to_le_bytes());
    body.extend_from_slice(payload);
    let mut frame = i32::try_from(body.len())
        .unwrap_or(i32::MAX)
        .to_le_bytes()
        .to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A hand-framed TCP client.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
}

impl RawClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<RawClient, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("raw connect to {addr}: {e}"))?;
        Ok(RawClient { stream })
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("raw write: {e}"))
    }

    /// Writes one well-formed client frame.
    pub async fn send(
        &mut self,
        msg_id: &str,
        msg_seq: u16,
        stage_id: i64,
        payload: &[u8],
    ) -> Result<(), String> {
        self.write(&client_frame(msg_id.as_bytes(), msg_seq, stage_id, payload))
            .await
    }

    /// The capability handshake: asks for `requested` (sequence `msg_seq`) and returns the
    /// server's answer as it came.
    pub async fn hello(&mut self, msg_seq: u16, requested: u32) -> Result<RawFrame, String> {
        self.send("@Hello@", msg_seq, 0, &requested.to_le_bytes())
            .await?;
        self.reply(msg_seq, crate::client::WAIT).await
    }

    /// Authenticates as `user_id` into `stage_id` (sequence 1) and checks the reply.
    pub async fn authenticate(&mut self, stage_id: i64, user_id: &str) -> Result<(), String> {
        let auth = auth_packet(user_id);
        self.send(&auth.msg_id, 1, stage_id, &auth.payload).await?;
        let reply = self.reply(1, crate::client::WAIT).await?;
        if reply.error_code != 0 || reply.msg_id != "AuthenticateReply" {
            return Err(format!(
                "raw authenticate: {} with error {}",
                reply.msg_id, reply.error_code
            ));
        }
        Ok(())
    }

    /// The next frame, waiting at most `within`.
    pub async fn frame(&mut self, within: Duration) -> Result<RawFrame, String> {
        tokio::time::timeout(within, read_frame(&mut self.stream))
            .await
            .map_err(|_| format!("no frame within {within:?}"))?
    }

    /// The reply to request `msg_seq` (pushes and heartbeats before it are skipped).
    pub async fn reply(&mut self, msg_seq: u16, within: Duration) -> Result<RawFrame, String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.frame(left).await?;
            if frame.msg_seq == msg_seq {
                return Ok(frame);
            }
        }
    }

    /// Waits until the server closes the connection (end of stream or reset), skipping any
    /// frames; fails if it is still open after `within`.
    pub async fn closed_within(&mut self, within: Duration) -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => {
                    return Err(format!(
                        "the server kept the connection open for {within:?}"
                    ));
                }
                Ok(Ok(0) | Err(_)) => return Ok(()),
                Ok(Ok(_)) => {}
            }
        }
    }
}

async fn read_frame(stream: &mut TcpStream) -> Result<RawFrame, String> {
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| format!("read a frame length: {e}"))?;
    let body_len = usize::try_from(i32::from_le_bytes(len))
        .map_err(|_| format!("negative frame length {}", i32::from_le_bytes(len)))?;
    let mut body = vec![0u8; body_len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("read a {body_len}-byte frame body: {e}"))?;
    let id_len = usize::from(*body.first().ok_or("empty frame body")?);
    let header_end = 1 + id_len + 2 + 8 + 2 + 4;
    if body.len() < header_end {
        return Err(format!("frame body of {body_len} bytes is too short"));
    }
    let msg_id = String::from_utf8(body[1..=id_len].to_vec()).map_err(|_| "msg id not UTF-8")?;
    let rest = &body[1 + id_len..];
    let msg_seq = u16::from_le_bytes([rest[0], rest[1]]);
    let stage_id = i64::from_le_bytes(rest[2..10].try_into().map_err(|_| "stage id")?);
    let error_code = u16::from_le_bytes([rest[10], rest[11]]);
    let original_size = i32::from_le_bytes(rest[12..16].try_into().map_err(|_| "size")?);
    Ok(RawFrame {
        msg_id,
        msg_seq,
        stage_id,
        error_code,
        original_size,
        payload: rest[16..].to_vec(),
        body_len,
    })
}
