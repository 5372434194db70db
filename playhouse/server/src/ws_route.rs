//! The Play server's WebSocket endpoint as an axum route, so a game's HTTP API and its
//! WebSocket share one port (as in the C# original); serve the router with
//! [`crate::serve_http`].

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use playhouse_transport::{WsServerStream, ws_accept_key, ws_server};

use crate::play_server::PlayServer;

impl PlayServer {
    /// An axum router with this server's WebSocket endpoint at `path` (binary messages, one
    /// frame each, exactly as [`PlayServer::listen_ws`]). Merge it into an application's
    /// router so its HTTP API and game clients share one port; `secure` names the transport
    /// `wss` (served over TLS) instead of `ws` in logs and metrics. Connections count against
    /// the same limits as every listener's; the client address comes from axum's
    /// `ConnectInfo<SocketAddr>`, which [`crate::serve_http`] provides.
    ///
    /// ```no_run
    /// # async fn demo(server: playhouse::PlayServer) -> std::io::Result<()> {
    /// use playhouse::{HttpLimits, serve_http};
    /// let app = axum::Router::new()
    ///     .route("/health", axum::routing::get(|| async { "ok" }))
    ///     .merge(server.websocket_router("/ws", false));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// let control = server.control();
    /// serve_http(listener, app, HttpLimits::default(), control.stop_requested()).await;
    /// # Ok(()) }
    /// ```
    pub fn websocket_router<S>(&self, path: &str, secure: bool) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let server = self.clone();
        let transport = if secure { "wss" } else { "ws" };
        axum::Router::new().route(
            path,
            axum::routing::get(move |request: Request| {
                let server = server.clone();
                async move { upgrade(server, transport, request) }
            }),
        )
    }
}

/// Answers a WebSocket upgrade request (RFC 6455 §4.2) and hands the upgraded connection to
/// the Play server.
fn upgrade(server: PlayServer, transport: &'static str, mut request: Request) -> Response {
    let Some(key) = handshake_key(request.headers()) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade (version 13)",
        )
            .into_response();
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |info| info.0);
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "this HTTP server cannot upgrade connections",
        )
            .into_response();
    };
    let max_message = playhouse_protocol::max_frame_len(server.max_packet_size());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WsServerStream::new(TokioIo::new(upgraded), max_message);
                server.serve_connection(ws, peer, transport);
            }
            Err(error) => tracing::debug!(%error, "WebSocket upgrade failed"),
        }
    });
    let accept = ws_accept_key(key.as_bytes());
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The client's `Sec-WebSocket-Key` when the headers ask for a version-13 WebSocket upgrade.
fn handshake_key(headers: &HeaderMap) -> Option<String> {
    let pairs = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    let key = ws_server::upgrade_key(pairs)?;
    std::str::from_utf8(key).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn upgrade_headers_are_checked() {
        let good = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert_eq!(
            handshake_key(&headers(&good)).as_deref(),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
        for skip in 0..good.len() {
            let partial: Vec<_> = good
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, pair)| *pair)
                .collect();
            assert_eq!(handshake_key(&headers(&partial)), None, "without {skip}");
        }
        let mut old = good;
        old[2] = ("sec-websocket-version", "8");
        assert_eq!(handshake_key(&headers(&old)), None);
    }

    #[test]
    fn accept_key_matches_rfc_6455() {
        assert_eq!(
            ws_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
