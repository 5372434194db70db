//! Compression is agreed, never imposed: a client that never sends the capability hello (the
//! original's connectors, SPEC §4 clients) never receives a compressed payload, even for a
//! 64 KiB reply that compresses well; a client that asks for LZ4 gets large replies
//! LZ4-compressed (`original_size` set, body shorter than the payload) while small or
//! incompressible ones go out as they are. A late, repeated or malformed hello is refused with
//! InvalidMessage and changes nothing; unknown capability bits are ignored. The connector asks
//! for LZ4 by default and round-trips a 64 KiB echo. The wire checks read raw frames.

use prost::Message;

use crate::check::TestResult;
use crate::client;
use crate::context::TestCtx;
use crate::counting_proxy::CountingProxy;
use crate::proto::{EchoReply, EchoRequest};
use crate::raw::{RawClient, RawFrame};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

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
            TestCase::new("NoHello_LargeEchoNeverCompressed", |t| {
                Box::pin(never_without_hello(t))
            }),
            TestCase::new("Hello_UnknownBitsIgnored", |t| Box::pin(unknown_bits(t))),
            TestCase::new("Hello_AfterAuthentication_Refused", |t| {
                Box::pin(late_hello(t))
            }),
            TestCase::new("Hello_Repeated_Refused", |t| Box::pin(repeated_hello(t))),
            TestCase::new("Connector_OptedIn_ReceivesLz4", |t| {
                Box::pin(connector_on_the_wire(t, true))
            }),
            TestCase::new("Connector_CompressionOff_ReceivesPlain", |t| {
                Box::pin(connector_on_the_wire(t, false))
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

/// The LZ4 capability bit.
const LZ4: u32 = 1;
/// The resumable-sessions capability bit (play-1 offers it too).
const RESUME: u32 = 2;
/// The named-stage-type capability bit: its parameter (the name) follows the bits, so asking
/// for it with a bare 4-byte hello is a malformed hello.
const STAGE_TYPE: u32 = 4;

/// Asks for `requested` with a hello (sequence 7) and returns the granted bits.
async fn hello(raw: &mut RawClient, requested: u32) -> Result<u32, String> {
    let reply = raw.hello(7, requested).await?;
    ensure_eq!(reply.msg_id.as_str(), "@Hello@", "hello reply msg id");
    ensure_eq!(reply.error_code, 0, "hello reply error code");
    let granted: [u8; 4] = reply
        .payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("hello reply payload of {} bytes", reply.payload.len()))?;
    Ok(u32::from_le_bytes(granted))
}

/// Sends one echo of `content` (sequence `seq`) and returns the raw reply.
async fn echo(
    raw: &mut RawClient,
    stage_id: i64,
    seq: u16,
    content: &str,
) -> Result<RawFrame, String> {
    let echo = EchoRequest {
        content: content.to_owned(),
        sequence: i32::from(seq),
    };
    raw.send("EchoRequest", seq, stage_id, &echo.encode_to_vec())
        .await?;
    let reply = raw.reply(seq, client::WAIT).await?;
    ensure_eq!(reply.msg_id.as_str(), "EchoReply", "reply msg id");
    ensure_eq!(reply.error_code, 0, "reply error code");
    Ok(reply)
}

/// A raw client in stage `offset` that asked for LZ4 (and was granted it) before
/// authenticating; returns the raw reply to one echo.
async fn raw_echo(t: &TestCtx, offset: i64, user: &str, content: &str) -> Result<RawFrame, String> {
    let mut raw = RawClient::connect(t.addr()).await?;
    let granted = hello(&mut raw, LZ4).await?;
    ensure_eq!(granted, LZ4, "granted capabilities");
    raw.authenticate(t.stage_id(offset), user).await?;
    echo(&mut raw, t.stage_id(offset), 2, content).await
}

/// Checks that `reply` carries `content` uncompressed.
fn plain(reply: &RawFrame, content: &str) -> TestResult {
    ensure_eq!(reply.original_size, 0, "original_size (compressed unasked)");
    let echo = EchoReply::decode(&reply.payload[..]).map_err(|e| format!("EchoReply: {e}"))?;
    ensure!(echo.content == content, "the echo came back altered");
    Ok(())
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

async fn never_without_hello(t: TestCtx) -> TestResult {
    let content = compressible();
    let mut raw = RawClient::connect(t.addr()).await?;
    raw.authenticate(t.stage_id(5), "compress_old_client")
        .await?;
    let reply = echo(&mut raw, t.stage_id(5), 2, &content).await?;
    ensure!(
        reply.body_len > SIZE,
        "the frame body is {} bytes, less than the 64 KiB payload",
        reply.body_len
    );
    plain(&reply, &content)
}

async fn unknown_bits(t: TestCtx) -> TestResult {
    let mut raw = RawClient::connect(t.addr()).await?;
    let granted = hello(&mut raw, !STAGE_TYPE).await?;
    ensure_eq!(
        granted,
        LZ4 | RESUME,
        "granted out of every bit asked for but the stage type's (the known ones: LZ4 and resume)"
    );
    raw.authenticate(t.stage_id(6), "compress_all_bits").await?;
    let reply = echo(&mut raw, t.stage_id(6), 2, &compressible()).await?;
    ensure!(reply.original_size > 0, "LZ4 was granted but not used");
    Ok(())
}

async fn late_hello(t: TestCtx) -> TestResult {
    let content = compressible();
    let mut raw = RawClient::connect(t.addr()).await?;
    raw.authenticate(t.stage_id(7), "compress_late_hello")
        .await?;
    let reply = raw.hello(3, LZ4).await?;
    ensure_eq!(
        reply.error_code,
        11,
        "a hello after authentication (InvalidMessage)"
    );
    // Refused, and nothing changed: still the original protocol, still connected.
    let reply = echo(&mut raw, t.stage_id(7), 4, &content).await?;
    plain(&reply, &content)
}

async fn repeated_hello(t: TestCtx) -> TestResult {
    let mut raw = RawClient::connect(t.addr()).await?;
    ensure_eq!(
        hello(&mut raw, 0).await?,
        0,
        "granted when asking for nothing"
    );
    let reply = raw.hello(8, LZ4).await?;
    ensure_eq!(reply.error_code, 11, "a second hello (InvalidMessage)");
    // The first hello's answer stands: no LZ4.
    raw.authenticate(t.stage_id(8), "compress_second_hello")
        .await?;
    let content = compressible();
    let reply = echo(&mut raw, t.stage_id(8), 2, &content).await?;
    plain(&reply, &content)
}

/// The real connector, through a proxy that counts the server's bytes: with compression on
/// (the default) a 64 KiB compressible echo arrives in far fewer bytes; off, in more than 64 KiB.
async fn connector_on_the_wire(t: TestCtx, compression: bool) -> TestResult {
    let proxy = CountingProxy::start(t.addr()).await?;
    let (connector, _tap) = t.connector(client::direct_config().compression(compression));
    let offset = if compression { 9 } else { 10 };
    client::connect(&connector, proxy.addr, t.stage_id(offset)).await?;
    let user = if compression {
        "compress_on"
    } else {
        "compress_off"
    };
    client::authenticate(&connector, user).await?;
    let before = proxy.bytes_from_server();
    let content = compressible();
    let echo: EchoReply = client::request(
        &connector,
        &EchoRequest {
            content: content.clone(),
            sequence: 1,
        },
    )
    .await?;
    ensure!(echo.content == content, "the 64 KiB echo came back altered");
    let received = proxy.bytes_from_server() - before;
    connector.disconnect().await;
    if compression {
        ensure!(
            received < (SIZE / 4) as u64,
            "{received} bytes on the wire for a 64 KiB compressible reply: not compressed"
        );
    } else {
        ensure!(
            received > SIZE as u64,
            "{received} bytes on the wire for a 64 KiB reply: compressed unasked"
        );
    }
    Ok(())
}
