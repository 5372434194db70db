//! Compression: a 64 KiB echo round-trips through the connector intact, and on the wire its
//! reply really is LZ4-compressed (`original_size` set, body shorter than the payload), while
//! small or incompressible payloads go out as they are. The wire checks read raw frames.

use prost::Message;

use crate::client;
use crate::context::TestCtx;
use crate::proto::{EchoReply, EchoRequest};
use crate::raw::{RawClient, RawFrame};
use crate::runner::{Category, TestCase};
use crate::{TestResult, ensure, ensure_eq};

const SIZE: usize = 64 * 1024;

/// The Compression category (stage ids 25000..).
pub(super) fn category() -> Category {
    Category {
        name: "Compression",
        base: 25_000,
        tests: vec![
            TestCase::new("LargeEcho_64KiB_RoundTripsIntact", |t| {
                Box::pin(round_trip(t))
            }),
            TestCase::new("LargeEcho_CompressedOnTheWire", |t| {
                Box::pin(compressed_on_wire(t))
            }),
            TestCase::new("SmallReply_NotCompressed", |t| Box::pin(small(t))),
            TestCase::new("IncompressibleReply_SentAsIs", |t| {
                Box::pin(incompressible(t))
            }),
        ],
    }
}

/// 64 KiB of readable, repetitive text (compresses well).
fn compressible() -> String {
    let mut text = String::with_capacity(SIZE + 64);
    let mut line = 0;
    while text.len() < SIZE {
        text.push_str(&format!("PlayHouse compression line {:04}; ", line % 100));
        line += 1;
    }
    text.truncate(SIZE);
    text
}

/// 64 KiB of pseudo-random letters and digits (xorshift, fixed seed): LZ4 finds no matches.
fn incompressible_text() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let index = usize::try_from(state % ALPHABET.len() as u64).unwrap_or(0);
            char::from(ALPHABET[index])
        })
        .collect()
}

/// Authenticates a raw client into stage `offset` and returns the raw reply to one echo.
async fn raw_echo(t: &TestCtx, offset: i64, user: &str, content: &str) -> Result<RawFrame, String> {
    let mut raw = RawClient::connect(t.addr()).await?;
    raw.authenticate(t.stage_id(offset), user).await?;
    let echo = EchoRequest {
        content: content.to_owned(),
        sequence: 2,
    };
    raw.send("EchoRequest", 2, t.stage_id(offset), &echo.encode_to_vec())
        .await?;
    let reply = raw.reply(2, client::WAIT).await?;
    ensure_eq!(reply.msg_id.as_str(), "EchoReply", "reply msg id");
    ensure_eq!(reply.error_code, 0, "reply error code");
    Ok(reply)
}

async fn round_trip(t: TestCtx) -> TestResult {
    let connector = t.shared(1, "compress_user").await?;
    let content = compressible();
    let echo: EchoReply = client::request(
        &connector,
        &EchoRequest {
            content: content.clone(),
            sequence: 64,
        },
    )
    .await?;
    ensure_eq!(echo.content.len(), SIZE, "echoed length");
    ensure!(echo.content == content, "the 64 KiB echo came back altered");
    ensure_eq!(echo.sequence, 64, "sequence");
    Ok(())
}

async fn compressed_on_wire(t: TestCtx) -> TestResult {
    let content = compressible();
    let reply = raw_echo(&t, 2, "compress_raw", &content).await?;
    ensure!(
        reply.original_size > 0,
        "original_size is {}: the 64 KiB reply was not compressed",
        reply.original_size
    );
    ensure!(
        reply.body_len < SIZE,
        "the compressed frame body is {} bytes, not shorter than 64 KiB",
        reply.body_len
    );
    let original = usize::try_from(reply.original_size).map_err(|e| e.to_string())?;
    let payload = lz4_flex::block::decompress(&reply.payload, original)
        .map_err(|e| format!("the payload is not an LZ4 block of {original} bytes: {e}"))?;
    let echo = EchoReply::decode(&payload[..]).map_err(|e| format!("EchoReply: {e}"))?;
    ensure!(echo.content == content, "the decompressed echo differs");
    Ok(())
}

async fn small(t: TestCtx) -> TestResult {
    let reply = raw_echo(&t, 3, "compress_small", "tiny").await?;
    ensure_eq!(reply.original_size, 0, "original_size of a small reply");
    let echo = EchoReply::decode(&reply.payload[..]).map_err(|e| format!("EchoReply: {e}"))?;
    ensure_eq!(echo.content.as_str(), "tiny", "content");
    Ok(())
}

async fn incompressible(t: TestCtx) -> TestResult {
    let content = incompressible_text();
    let reply = raw_echo(&t, 4, "compress_random", &content).await?;
    ensure_eq!(
        reply.original_size,
        0,
        "original_size of an incompressible reply (compression would not save 10%)"
    );
    let echo = EchoReply::decode(&reply.payload[..]).map_err(|e| format!("EchoReply: {e}"))?;
    ensure!(echo.content == content, "the 64 KiB echo came back altered");
    Ok(())
}
