//! Helpers shared by the examples' integration tests: one HTTP request, and the example
//! processes as children ([`nodes`]).

pub(crate) mod nodes;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request to `addr` with an optional JSON body (`Connection: close`); returns
/// the status code and the parsed body (`Null` when it is not JSON).
pub(crate) async fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    http_as(addr, method, path, body, None).await
}

/// [`http`] with `Authorization: Bearer <token>` when a token is given.
pub(crate) async fn http_as(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let json = response.split("\r\n\r\n").nth(1).unwrap_or("null");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}
