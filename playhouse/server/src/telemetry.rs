//! OpenTelemetry export (feature `otlp`): the `tracing` spans of a server, sent over OTLP/HTTP
//! (protobuf) to a collector, in the traces the mesh already carries.
//!
//! [`otlp_layer`] gives a `tracing_subscriber` layer and an [`OtlpExport`] handle (flush,
//! shut down). Once it is made, a span that handles a mesh message (an API handler's
//! `handler`, a stage's `mesh`) has the sender's span, named in the route header's
//! `traceparent`, as its remote parent, and a message sent inside an exported span names that
//! span: one call across API and Play servers is one OTLP trace, with the trace id the log
//! lines carry as `trace_id`.
//!
//! Spans are batched on the SDK's own thread (a bounded queue of 2048 spans; when it is full,
//! spans are dropped, never waited for) and posted with hyper on the tokio runtime that made
//! the layer, one connection per batch, plain HTTP (the endpoint is a local collector or agent).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use playhouse_mesh::TraceContext;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

/// Whether a layer was made: until then, receiving a message costs one atomic load more.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// How long one export may take (connect, post, response).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a collector's response body read (it is normally empty).
const MAX_RESPONSE: usize = 64 * 1024;

/// The layer [`otlp_layer`] returns.
pub type OtlpLayer<S> = OpenTelemetryLayer<S, SdkTracer>;

/// Why OTLP export could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// [`otlp_layer`] was called outside a tokio runtime (exports run on it).
    #[error("otlp_layer must be called inside a tokio runtime")]
    NoRuntime,
    /// The exporter refused its configuration (e.g. an endpoint that is not a URL).
    #[error("OTLP exporter: {0}")]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
    /// Flushing or shutting down failed (e.g. the collector did not answer in time).
    #[error("OTLP export: {0}")]
    Export(#[from] opentelemetry_sdk::error::OTelSdkError),
    /// The runtime stopped while a flush waited.
    #[error("OTLP export interrupted: the runtime is stopping")]
    Interrupted,
}

/// Flushes and stops the export [`otlp_layer`] started. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OtlpExport {
    provider: SdkTracerProvider,
}

impl OtlpExport {
    /// Sends every span ended so far, and waits for the collector's answer.
    pub async fn flush(&self) -> Result<(), OtlpError> {
        let provider = self.provider.clone();
        // The SDK blocks the calling thread; the post it waits for runs on this runtime.
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .map_err(|_| OtlpError::Interrupted)??;
        Ok(())
    }

    /// Sends what is left and stops exporting; call before the runtime stops.
    pub async fn shutdown(self) -> Result<(), OtlpError> {
        let provider = self.provider;
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .map_err(|_| OtlpError::Interrupted)??;
        Ok(())
    }
}

/// A layer that exports spans to the OTLP/HTTP collector at `endpoint` (its base address,
/// e.g. `http://127.0.0.1:4318`; spans go to `/v1/traces` under it) as service
/// `service_name`, plus the handle that flushes and stops the export. Call inside the tokio
/// runtime the servers run on. The `OTEL_RESOURCE_ATTRIBUTES` variable adds attributes.
///
/// ```no_run
/// # async fn run() -> Result<(), playhouse::OtlpError> {
/// use tracing_subscriber::prelude::*;
/// let (otlp, export) = playhouse::otlp_layer("http://127.0.0.1:4318", "play-1")?;
/// tracing_subscriber::registry().with(otlp).init();
/// // ... run the servers ...
/// export.shutdown().await?;
/// # Ok(()) }
/// ```
pub fn otlp_layer<S>(
    endpoint: &str,
    service_name: &str,
) -> Result<(OtlpLayer<S>, OtlpExport), OtlpError>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| OtlpError::NoRuntime)?;
    let base = endpoint.trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(TokioHttp { runtime })
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("playhouse"));
    TraceContext::set_span_source(current_span);
    INSTALLED.store(true, Ordering::Release);
    Ok((layer, OtlpExport { provider }))
}

/// The exported span current on this thread, for a message sent now to name as its parent.
fn current_span() -> Option<TraceContext> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span = span.span_context();
    if !span.is_valid() {
        return None;
    }
    TraceContext::from_ids(
        u128::from_be_bytes(span.trace_id().to_bytes()),
        u64::from_be_bytes(span.span_id().to_bytes()),
    )
}

/// Makes `span` (not yet entered) the child of the remote span `trace` names: the span of the
/// server that sent the message `span` handles. Nothing unless a layer was made.
pub(crate) fn continue_remote(span: &tracing::Span, trace: TraceContext) {
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    let remote = SpanContext::new(
        TraceId::from_bytes(trace.trace_id_u128().to_be_bytes()),
        SpanId::from_bytes(trace.span_id_u64().to_be_bytes()),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    // Refused only when the span is disabled or no OTLP layer is in its subscriber.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// Posts on the runtime that made the layer: the SDK exports from its own thread, which has
/// no runtime, so the post is spawned there and awaited from here.
#[derive(Debug)]
struct TokioHttp {
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for TokioHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // The timer is made on the runtime (this thread has none).
        let posted = self
            .runtime
            .spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, post(request)).await });
        match posted.await {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => Err("OTLP post timed out".into()),
            Err(_) => Err("OTLP post interrupted: the runtime is stopping".into()),
        }
    }
}

/// One request on a new HTTP/1.1 connection.
async fn post(request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.scheme_str() != Some("http") {
        return Err("the OTLP endpoint must be an http:// address (no TLS)".into());
    }
    let authority = parts
        .uri
        .authority()
        .ok_or("the OTLP endpoint has no host")?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect(format!("{}:{port}", authority.host())).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()?;
    parts
        .headers
        .entry(hyper::header::HOST)
        .or_insert(authority.as_str().parse()?);
    let response = sender
        .send_request(hyper::Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}
