//! OTLP export (feature `otlp`): one mesh request from an API server to a stage on a Play
//! server, which asks the API server in turn, is one OpenTelemetry trace. A real collector
//! stands in for an OpenTelemetry Collector: an axum server on a real socket that accepts
//! `POST /v1/traces` and decodes the protobuf body with the OTLP message types. The spans it
//! receives share one trace id, and each hop's span is the child of the sender's span.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use playhouse::Packet;
use prost::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;
use tracing_subscriber::prelude::*;

mod support;

use support::trace_room::cluster;

/// A collector on a real socket: its base address, and the spans it has been sent (with the
/// service each came from).
async fn collector() -> (String, mpsc::Receiver<(String, Span)>) {
    let (spans, received) = mpsc::channel(4096);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let spans = spans.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP body");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref()?.value.clone());
                    let service = match service {
                        Some(Value::StringValue(name)) => name,
                        _ => String::new(),
                    };
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        spans.send((service.clone(), span)).await.unwrap();
                    }
                }
                let answer = ExportTraceServiceResponse::default().encode_to_vec();
                ([("content-type", "application/x-protobuf")], answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn one_mesh_request_is_one_otlp_trace_across_the_api_and_play_servers() {
    let (endpoint, mut received) = collector().await;
    let (otlp, export) = playhouse::otlp_layer(&endpoint, "mesh-trace-otlp").unwrap();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(otlp));
    let (looked_up, _handled) = mpsc::channel(8);
    let (play, api) = cluster(looked_up).await;

    // The caller's span on api-1: the request is made and awaited inside it.
    let call = tracing::info_span!("client call");
    let reply = async {
        api.sender()
            .request_to_stage("play-1", 9, Packet::empty("Ask"))
            .await
    }
    .instrument(call)
    .await
    .unwrap();
    assert_eq!(&*reply.msg_id, "Found");

    // The spans end as the handler and the stage finish; each flush posts what has ended.
    let mut spans: HashMap<&str, Span> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while spans.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the collector got only {:?}",
            spans.keys()
        );
        export.flush().await.unwrap();
        while let Ok((service, span)) = received.try_recv() {
            assert_eq!(service, "mesh-trace-otlp");
            let key = match (span.name.as_str(), attribute(&span, "msg_id").as_deref()) {
                ("client call", _) => "call",
                ("mesh", _) => "stage",
                ("handler", Some("Lookup")) => "lookup",
                _ => continue,
            };
            spans.insert(key, span);
        }
    }

    let (call, stage, lookup) = (&spans["call"], &spans["stage"], &spans["lookup"]);
    let trace = hex(&call.trace_id);
    assert!(call.parent_span_id.is_empty(), "the call starts the trace");
    for (name, span) in [("stage", stage), ("lookup", lookup)] {
        assert_eq!(
            hex(&span.trace_id),
            trace,
            "{name} span is in the call's trace"
        );
    }
    assert_eq!(
        stage.parent_span_id, call.span_id,
        "play-1's span: child of api-1's call"
    );
    assert_eq!(
        lookup.parent_span_id, stage.span_id,
        "api-1's handler: child of the stage's"
    );
    // The log lines' trace id is the OTLP trace id.
    assert_eq!(
        attribute(stage, "trace_id").as_deref(),
        Some(trace.as_str())
    );
    assert_eq!(
        attribute(lookup, "trace_id").as_deref(),
        Some(trace.as_str())
    );

    play.stop().await;
    api.stop().await;
    export.shutdown().await.unwrap();
}
