//! Black-box tests of the `verification` binary: `--list`, `--ci --category`, `--serve`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use playhouse::Packet;
use playhouse_connector::{Connector, ConnectorConfig, TlsTrust, Transport};
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use verification::proto::{AuthenticateReply, AuthenticateRequest, EchoReply, EchoRequest};

const BIN: &str = env!("CARGO_BIN_EXE_verification");

/// A fresh scratch directory for a run's `verification-results.tap`.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("verification-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[test]
fn list_prints_every_category_with_its_test_count() {
    let output = Command::new(BIN)
        .arg("--list")
        .output()
        .expect("run --list");
    assert!(output.status.success(), "--list failed: {output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    for category in [
        "Connection",
        "Messaging",
        "Push",
        "PacketAutoDispose",
        "ServerLifecycle",
        "ActorCallback",
        "ActorSender",
        "StageCallback",
        "AsyncBlock",
        "Timer",
        "GameLoop",
        "ConnectorCallbackPerformance",
        "SharedServices",
        "Reconnection",
        "StageToStage",
        "StageToApi",
        "ApiToApi",
        "ApiToPlay",
        "SelfConnection",
        "ServiceRouting",
        "SystemMessage",
        "AutoDispose",
        "ProtocolConnection",
        "Compression",
        "Limits",
        "SessionResume",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(&format!("{category} ("))),
            "{category} missing from:\n{stdout}"
        );
    }
    let total: usize = stdout
        .lines()
        .filter_map(|line| {
            line.rsplit_once(" (")?
                .1
                .strip_suffix(')')?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(total >= 94, "only {total} tests listed");
}

#[test]
fn ci_runs_one_category_as_tap() {
    let dir = scratch_dir("ci");
    let output = Command::new(BIN)
        .args(["--ci", "--category", "messaging"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run --ci");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        output.status.success(),
        "exit {:?}:\n{stdout}",
        output.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let plan = lines.first().expect("plan line");
    let count: usize = plan
        .strip_prefix("1..")
        .expect("plan")
        .parse()
        .expect("count");
    assert!(count >= 10, "Messaging has only {count} tests");
    for (i, line) in lines[1..=count].iter().enumerate() {
        let prefix = format!("ok {} - Messaging: ", i + 1);
        assert!(line.starts_with(&prefix), "line {}: {line}", i + 2);
    }
    assert_eq!(
        lines.last().copied(),
        Some(format!("# {count} tests passed, 0 failed").as_str())
    );
    let saved = std::fs::read_to_string(dir.join("verification-results.tap")).expect("tap file");
    assert_eq!(saved, stdout);
}

#[test]
fn unknown_category_is_a_usage_error() {
    let output = Command::new(BIN)
        .args(["--ci", "--category", "NoSuchCategory"])
        .current_dir(scratch_dir("unknown"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "stdout: {:?}", output.stdout);
}

/// One client frame (SPEC §4): `[len][id_len][msg_id][seq u16][stage i64][payload]`.
fn client_frame(msg_id: &str, seq: u16, stage_id: i64, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![u8::try_from(msg_id.len()).expect("short id")];
    body.extend_from_slice(msg_id.as_bytes());
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&stage_id.to_le_bytes());
    body.extend_from_slice(payload);
    let mut frame = i32::try_from(body.len())
        .expect("len")
        .to_le_bytes()
        .to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// One server frame: `(msg_id, seq, stage_id, error_code, payload)` (uncompressed only).
async fn server_frame(stream: &mut TcpStream) -> (String, u16, i64, u16, Vec<u8>) {
    let mut len = [0; 4];
    stream.read_exact(&mut len).await.expect("frame length");
    let mut body = vec![0; usize::try_from(i32::from_le_bytes(len)).expect("len")];
    stream.read_exact(&mut body).await.expect("frame body");
    let id_len = usize::from(body[0]);
    let msg_id = String::from_utf8(body[1..1 + id_len].to_vec()).expect("utf-8 id");
    let rest = &body[1 + id_len..];
    let seq = u16::from_le_bytes([rest[0], rest[1]]);
    let stage_id = i64::from_le_bytes(rest[2..10].try_into().expect("stage"));
    let error = u16::from_le_bytes([rest[10], rest[11]]);
    let original_size = i32::from_le_bytes(rest[12..16].try_into().expect("size"));
    assert_eq!(original_size, 0, "unexpected compressed frame");
    (msg_id, seq, stage_id, error, rest[16..].to_vec())
}

#[tokio::test]
async fn serve_prints_one_json_line_serves_and_stops_on_sigterm() {
    let mut child = tokio::process::Command::new(BIN)
        .arg("--serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn --serve");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .await
        .expect("read the JSON line");
    let json: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    let servers = json["servers"].as_array().expect("servers array");
    let ids: Vec<&str> = servers.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["play-1", "play-2", "api-1", "api-2"]);
    // One key per listener that exists, every server with its mesh address.
    let keys = |server: &serde_json::Value| {
        let mut keys: Vec<String> = server
            .as_object()
            .expect("server object")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&servers[0]),
        [
            "admin",
            "admin_token",
            "id",
            "mesh",
            "tcp",
            "tls",
            "type",
            "ws",
            "wss"
        ]
    );
    assert_eq!(keys(&servers[1]), ["id", "mesh", "tcp", "type"]);
    assert_eq!(keys(&servers[2]), ["http", "id", "mesh", "type"]);
    assert_eq!(keys(&servers[3]), ["id", "mesh", "type"]);
    for server in servers {
        let mesh = server["mesh"].as_str().expect("mesh address");
        assert!(mesh.starts_with("tcp://127.0.0.1:"), "mesh address {mesh}");
    }
    assert_eq!(
        servers
            .iter()
            .map(|s| s["type"].as_str())
            .collect::<Vec<_>>(),
        [Some("play"), Some("play"), Some("api"), Some("api")]
    );
    let play = &servers[0];
    let tcp = play["tcp"].as_str().expect("tcp endpoint");

    // A raw client: frames written by hand from the layout in SPEC §4.
    let mut stream = TcpStream::connect(tcp).await.expect("connect to play-1");
    let auth = AuthenticateRequest {
        user_id: "cli_raw".into(),
        token: "t".into(),
    };
    let frame = client_frame("AuthenticateRequest", 1, 77_001, &auth.encode_to_vec());
    stream.write_all(&frame).await.expect("write");
    let (msg_id, seq, stage_id, error, payload) = server_frame(&mut stream).await;
    assert_eq!(
        (msg_id.as_str(), seq, stage_id, error),
        ("AuthenticateReply", 1, 77_001, 0)
    );
    let reply = AuthenticateReply::decode(&payload[..]).expect("AuthenticateReply");
    assert!(reply.success);
    assert_eq!(reply.account_id, "cli_raw");

    let echo = EchoRequest {
        content: "raw echo".into(),
        sequence: 9,
    };
    let frame = client_frame("EchoRequest", 2, 77_001, &echo.encode_to_vec());
    stream.write_all(&frame).await.expect("write");
    let (msg_id, seq, _, error, payload) = server_frame(&mut stream).await;
    assert_eq!((msg_id.as_str(), seq, error), ("EchoReply", 2, 0));
    let reply = EchoReply::decode(&payload[..]).expect("EchoReply");
    assert_eq!((reply.content.as_str(), reply.sequence), ("raw echo", 9));

    // The TLS endpoint through the real connector (an outside tool cannot know the generated
    // certificate, so it skips verification), and the WebSocket endpoint likewise.
    let tls: std::net::SocketAddr = play["tls"].as_str().expect("tls").parse().expect("addr");
    connector_echo(
        ConnectorConfig::default()
            .transport(Transport::tls().with_trust(TlsTrust::SkipVerification)),
        tls,
        77_003,
        "cli_tls",
    )
    .await;
    let ws: std::net::SocketAddr = play["ws"].as_str().expect("ws").parse().expect("addr");
    connector_echo(
        ConnectorConfig::default().transport(Transport::websocket()),
        ws,
        77_004,
        "cli_ws",
    )
    .await;

    // api-1's HTTP front door creates a stage on play-1; the same id again is a conflict.
    let http: std::net::SocketAddr = servers[2]["http"]
        .as_str()
        .expect("http")
        .parse()
        .expect("addr");
    let body = serde_json::json!({"stage_type": "TestStage", "stage_id": 77_002});
    let (status, reply) = verification::client::http_post_json(http, "/api/stages", &body)
        .await
        .expect("POST /api/stages");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["stage_id"], 77_002);
    let (status, reply) = verification::client::http_post_json(http, "/api/stages", &body)
        .await
        .expect("POST /api/stages again");
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error_code"], 8);
    let (status, reply) =
        verification::client::http_post_json(http, "/api/stages/get-or-create", &body)
            .await
            .expect("POST /api/stages/get-or-create");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["is_created"], false);
    // A raw client joins the stage the HTTP call created.
    let mut stream = TcpStream::connect(tcp).await.expect("connect to play-1");
    let auth = AuthenticateRequest {
        user_id: "cli_http_joiner".into(),
        token: "t".into(),
    };
    let frame = client_frame("AuthenticateRequest", 1, 77_002, &auth.encode_to_vec());
    stream.write_all(&frame).await.expect("write");
    let (msg_id, _, stage_id, error, _) = server_frame(&mut stream).await;
    assert_eq!(
        (msg_id.as_str(), stage_id, error),
        ("AuthenticateReply", 77_002, 0)
    );

    let pid = child.id().expect("pid").to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("--serve did not exit after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "--serve exited with {exit:?}");
    let mut rest = String::new();
    stdout
        .read_to_string(&mut rest)
        .await
        .expect("rest of stdout");
    assert!(rest.is_empty(), "more than one line on stdout: {rest:?}");
}

/// Connects through the real connector with `config`, authenticates into `stage_id` and echoes.
async fn connector_echo(
    config: ConnectorConfig,
    addr: std::net::SocketAddr,
    stage_id: i64,
    user: &str,
) {
    let connector = Connector::new(
        config
            .use_main_thread_callbacks(false)
            .request_timeout(Duration::from_secs(10)),
    );
    connector
        .connect(&addr.ip().to_string(), addr.port(), stage_id, "TestStage")
        .await
        .expect("connect");
    let auth = AuthenticateRequest {
        user_id: user.into(),
        token: "t".into(),
    };
    let reply = connector
        .authenticate(Packet::from_message(&auth))
        .await
        .expect("authenticate");
    let reply = reply
        .parse::<AuthenticateReply>()
        .expect("AuthenticateReply");
    assert!(reply.success);
    assert_eq!(reply.account_id, user);
    let echo = EchoRequest {
        content: format!("echo for {user}"),
        sequence: 3,
    };
    let reply = connector
        .request(Packet::from_message(&echo))
        .await
        .expect("echo");
    let reply = reply.parse::<EchoReply>().expect("EchoReply");
    assert_eq!(reply.content, format!("echo for {user}"));
    connector.disconnect().await;
}
