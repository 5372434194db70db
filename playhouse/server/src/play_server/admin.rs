//! The admin listener ([`PlayServer::listen_metrics`]): `GET /metrics`, the admin page and its
//! JSON, and the actions (close a stage, drain the server), behind a bearer token.
//!
//! Who may do what:
//! * bound to a loopback address, reads (`/metrics`, the page's JSON) are open, as before;
//! * bound anywhere else, every request but the page's static HTML needs the token;
//! * actions (`POST`) always need it.
//!
//! The token is [`PlayConfig::admin_token`](crate::PlayConfig::admin_token), or one generated
//! on the first `listen_metrics` and logged once (INFO). A refused request gets `401` and a
//! WARN line (at most one a second per listener, with how many were held back).

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::ToSocketAddrs;

use super::PlayServer;
use crate::limits::LogThrottle;

/// The admin page: plain HTML and JavaScript, no build step.
const PAGE: &str = include_str!("admin.html");

/// Who may read and act on one admin listener.
#[derive(Clone, Debug)]
pub(crate) struct Guard {
    token: Arc<str>,
    /// Reads without the token: only on a loopback bind.
    open_reads: bool,
    /// One WARN a second for refusals on this listener, however many there are.
    refusals: Arc<LogThrottle>,
}

impl Guard {
    pub(crate) fn new(token: Arc<str>, bound: SocketAddr) -> Guard {
        Guard {
            token,
            open_reads: bound.ip().is_loopback(),
            refusals: Arc::new(LogThrottle::new(std::time::Duration::from_secs(1))),
        }
    }

    /// `None` when the request may go on; else the `401` to answer (and a log line).
    fn refuse(&self, headers: &HeaderMap, action: bool, what: &str) -> Option<Response> {
        if !action && self.open_reads {
            return None;
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if same(given.as_bytes(), self.token.as_bytes()) {
            return None;
        }
        if let Some(suppressed) = self.refusals.allow() {
            tracing::warn!(
                suppressed,
                request = what,
                token_given = !given.is_empty(),
                "admin request refused: missing or wrong bearer token (401)"
            );
        }
        let refused = (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required (Authorization: Bearer <PlayConfig::admin_token>)\n",
        );
        Some(refused.into_response())
    }
}

/// Compares without stopping at the first difference (no timing hint of the prefix).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 128 random bits, hex.
pub(crate) fn generate_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: a token nobody can guess is still required; fall back on the
        // clock and address-space layout, and say so.
        tracing::warn!("no OS randomness for the admin token; set PlayConfig::admin_token");
        let seed = format!("{:?}{:p}", std::time::SystemTime::now(), &bytes);
        for (i, b) in seed.bytes().enumerate() {
            bytes[i % 16] ^= b;
        }
    }
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl PlayServer {
    /// The bearer token of this server's admin listener: [`crate::PlayConfig::admin_token`],
    /// or the one generated (and logged once) when none is configured.
    pub fn admin_token(&self) -> Arc<str> {
        Arc::clone(
            self.inner
                .admin_token
                .get_or_init(|| match &self.inner.config.admin_token {
                    Some(token) => Arc::from(token.as_str()),
                    None => {
                        let token = generate_token();
                        tracing::info!(
                            server = self.server_id(),
                            %token,
                            "admin token generated (set PlayConfig::admin_token to choose one); \
                             actions, and any request to a non-loopback admin listener, need \
                             `Authorization: Bearer <token>`"
                        );
                        Arc::from(token)
                    }
                }),
        )
    }

    /// Serves the admin endpoints over HTTP until the server stops, under
    /// [`crate::PlayConfig::metrics_http`] (see [`crate::serve_http`]); returns the bound
    /// address:
    /// * `GET /metrics` ([`PlayServer::metrics`]);
    /// * `GET /` the admin page, `GET /admin/state` its JSON (the cluster as the directory
    ///   sees it, this server's sessions and stages, counters for its charts);
    /// * `POST /stages/{id}/close` closes a stage; `POST /drain` (optional query
    ///   `within_secs`, default [`crate::PlayConfig::drain_timeout`]) starts
    ///   [`PlayServer::drain`] and answers `202 Accepted` with `{"draining":true,"stages":N}`.
    ///
    /// Bound to a loopback address, reads are open and actions need the bearer token
    /// ([`PlayServer::admin_token`]); bound anywhere else, every request but the page's HTML
    /// needs it. Refused requests get `401`. Feature `http` (on by default).
    pub async fn listen_metrics(&self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let guard = Guard::new(self.admin_token(), local);
        let app = self.admin_router(guard);
        let stop = self.inner.control.token().clone();
        let limits = self.inner.config.metrics_http.clone();
        tokio::spawn(crate::http_server::serve_http(
            listener,
            app,
            limits,
            stop.cancelled_owned(),
        ));
        tracing::info!(server = self.server_id(), %local, "metrics at GET /metrics, admin page at GET /");
        Ok(local)
    }

    fn admin_router(&self, guard: Guard) -> axum::Router {
        let s = self.clone();
        let g = guard.clone();
        let metrics = get(move |headers: HeaderMap| async move {
            if let Some(refused) = g.refuse(&headers, false, "GET /metrics") {
                return refused;
            }
            let content_type = [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)];
            (content_type, s.metrics()).into_response()
        });
        let (s, g) = (self.clone(), guard.clone());
        let state = get(move |headers: HeaderMap| async move {
            if let Some(refused) = g.refuse(&headers, false, "GET /admin/state") {
                return refused;
            }
            let json = [(header::CONTENT_TYPE, "application/json")];
            (json, s.admin_state()).into_response()
        });
        let (s, g) = (self.clone(), guard.clone());
        let close = post(move |headers: HeaderMap, Path(id): Path<i64>| async move {
            if let Some(refused) = g.refuse(&headers, true, "POST /stages/{id}/close") {
                return refused;
            }
            match s.inner.host.destroy(id) {
                Ok(true) => {
                    tracing::info!(stage_id = id, "stage close requested over HTTP");
                    (StatusCode::ACCEPTED, format!(r#"{{"closing":{id}}}"#)).into_response()
                }
                Ok(false) => (StatusCode::NOT_FOUND, "no such stage\n").into_response(),
                Err(code) => (StatusCode::SERVICE_UNAVAILABLE, format!("{code}\n")).into_response(),
            }
        });
        let (s, g) = (self.clone(), guard);
        let drain = post(move |headers: HeaderMap, query: RawQuery| async move {
            if let Some(refused) = g.refuse(&headers, true, "POST /drain") {
                return refused;
            }
            s.drain_from_http(query.0.as_deref()).into_response()
        });
        let page = get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) });
        axum::Router::new()
            .route("/", page)
            .route("/metrics", metrics)
            .route("/admin/state", state)
            .route("/stages/{id}/close", close)
            .route("/drain", drain)
    }

    /// The admin page's JSON: this server, its stages, the cluster, and the counters its
    /// charts difference each second.
    fn admin_state(&self) -> String {
        let metrics = &self.inner.metrics;
        let now = tokio::time::Instant::now();
        let mut out = String::with_capacity(4096);
        let _ = write!(
            out,
            r#"{{"server":{},"sessions":{},"actors":{},"messages_in":{},"latency":{{"bounds":{:?},"counts":{:?}}},"stages":["#,
            json_str(self.server_id()),
            self.session_count(),
            metrics.actors_now(),
            metrics.messages_in_total(),
            metrics.latency().bounds(),
            metrics.latency().counts(),
        );
        let mut stages = self.inner.host.stages();
        stages.sort_by_key(|s| s.stage_id());
        for (i, stage) in stages.iter().enumerate() {
            let _ = write!(
                out,
                r#"{}{{"id":{},"type":{},"actors":{},"queued":{},"age_secs":{:.1},"tick_overruns":{}}}"#,
                if i == 0 { "" } else { "," },
                stage.stage_id(),
                json_str(stage.stage_type()),
                stage.stats().actors(),
                stage.queued(),
                (now - stage.created()).as_secs_f64(),
                stage.stats().tick_overruns(),
            );
        }
        out.push_str(r#"],"cluster":["#);
        let mut servers = self.inner.center.all();
        if servers.is_empty() {
            // Not in a mesh: the cluster is this server.
            out.push_str(&format!(
                r#"{{"id":{},"type":"play","state":"running","rtt_ms":null}}"#,
                json_str(self.server_id())
            ));
        }
        servers.sort_by(|a, b| a.server_id.cmp(&b.server_id));
        for (i, server) in servers.iter().enumerate() {
            let kind = match server.server_type {
                playhouse_mesh::ServerType::Play => "play",
                playhouse_mesh::ServerType::Api => "api",
            };
            let state = match server.state {
                playhouse_mesh::ServerState::Running => "running",
                playhouse_mesh::ServerState::Disabled => "disabled",
                playhouse_mesh::ServerState::Draining => "draining",
            };
            let rtt = metrics
                .last_liveness(&server.server_id)
                .map_or("null".to_owned(), |d| {
                    format!("{:.3}", d.as_secs_f64() * 1e3)
                });
            let _ = write!(
                out,
                r#"{}{{"id":{},"type":"{kind}","state":"{state}","rtt_ms":{rtt}}}"#,
                if i == 0 { "" } else { "," },
                json_str(&server.server_id),
            );
        }
        out.push_str("]}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole_and_strings_are_escaped() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert_eq!(generate_token().len(), 32);
        assert_ne!(generate_token(), generate_token());
        assert_eq!(json_str("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }
}
