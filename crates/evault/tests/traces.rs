//! OpenTelemetry traces as an operator sees them: the four roles as
//! separate processes on PostgreSQL, exporting to an OTLP collector (one
//! in this test), and one append with a `traceparent` of the caller's
//! own, followed from the gateway to the signature that covers it; and
//! `evault up`, whose spans say which role they are, sending what it
//! still holds when it is stopped.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::{AppendRequest, EvidenceStatement};
use evault_test_support::{Roles, ServerProcess, succeeded};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

const ORIGIN: &str = "vault.example/traces";

/// The caller's trace and span, as its `traceparent` names them.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

/// A span as the collector received it, with its service's name.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

impl Received {
    fn trace(&self) -> String {
        hex(&self.span.trace_id)
    }

    fn attribute(&self, key: &str) -> Option<String> {
        string(&self.span.attributes, key)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn string(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            Some(Value::IntValue(i)) => Some(i.to_string()),
            _ => None,
        })
}

/// An OTLP/gRPC trace collector keeping every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("lock");
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| string(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// A collector serving on a port of its own, in `runtime`, and the
    /// address to export to.
    fn start(runtime: &tokio::runtime::Runtime) -> (Collector, String) {
        let collector = Collector::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (collector, endpoint)
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().expect("lock").clone()
    }
}

/// `command` exporting its traces to `endpoint`, every `delay_ms`, under
/// the names the vault gives its services.
fn exporting(command: &mut std::process::Command, endpoint: &str, delay_ms: u32) {
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", delay_ms.to_string())
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("OTEL_TRACES_SAMPLER")
        .env_remove("OTEL_SDK_DISABLED");
}

/// Appends one statement to the vault at `url` as the holder of `token`,
/// in the caller's trace ([`TRACE`], [`CALLER`]); panics unless it gets
/// a receipt.
fn append(runtime: &tokio::runtime::Runtime, url: &str, token: &str, content: &str) {
    let mut request = tonic::Request::new(AppendRequest {
        statement: Some(EvidenceStatement {
            sha256: evault_core::hash::sha256(content.as_bytes()).to_vec(),
            size: content.len() as u64,
            media_type: "text/plain".into(),
            name: "traced.txt".into(),
            labels: vec![],
            content: None,
        }),
    });
    let metadata = request.metadata_mut();
    let bearer = format!("Bearer {}", token.trim());
    metadata.insert("authorization", bearer.parse().expect("header"));
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    metadata.insert("traceparent", traceparent.parse().expect("header"));
    let url = url.to_string();
    let appended = runtime.block_on(async move {
        let mut client = IngestServiceClient::connect(url).await.expect("connect");
        client.append(request).await
    });
    let receipt = appended.expect("appended").into_inner().receipt;
    assert!(receipt.is_some(), "no receipt");
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// What the collector holds of the caller's append: the spans of its
/// trace, and those of the batch traces linked to it.
struct Followed {
    mine: Vec<Received>,
    batches: Vec<Received>,
}

fn follow(spans: &[Received]) -> Followed {
    let mine: Vec<Received> = spans
        .iter()
        .filter(|s| s.trace() == TRACE)
        .cloned()
        .collect();
    let linked: HashSet<String> = spans
        .iter()
        .filter(|s| s.span.links.iter().any(|l| hex(&l.trace_id) == TRACE))
        .map(Received::trace)
        .collect();
    let batches = spans
        .iter()
        .filter(|s| linked.contains(&s.trace()))
        .cloned()
        .collect();
    Followed { mine, batches }
}

impl Followed {
    fn has(&self, service: &str, name: &str) -> bool {
        self.mine
            .iter()
            .chain(&self.batches)
            .any(|s| s.service == service && s.span.name == name)
    }

    fn complete(&self) -> bool {
        self.has("evault-gateway", "evault.v1.IngestService/Append")
            && self.has("evault-ingest", "append")
            && self.has("evault-ingest", "batch")
            && self.has("evault-tree", "sequence")
            && self.has("evault-tree", "commit")
            && self.has("evault-signer", "sign")
    }
}

#[test]
fn one_append_is_followed_from_the_caller_to_its_signature() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (collector, endpoint) = Collector::start(&runtime);

    let tmp = tempfile::tempdir().expect("tempdir");
    let schema = evault_test_support::PgSchema::create_blocking("evault_traces");
    let signer_schema = evault_test_support::PgSchema::create_blocking("evault_traces_signer");
    let evault = || evault_test_support::command(env!("CARGO_BIN_EXE_evault"));
    let key = tmp.path().join("signing.key");
    succeeded(
        &evault()
            .args(["keygen", "--origin", ORIGIN, "--key-file", &path(&key)])
            .output()
            .expect("keygen"),
    );
    let issuer = tmp.path().join("issuer");
    let token = succeeded(
        &evault()
            .args(["token", "--data-dir", &path(&issuer), "--sub", "traces"])
            .args(["--scope", "evault.append"])
            .output()
            .expect("token"),
    );
    let roles = Roles::start(
        env!("CARGO_BIN_EXE_evault"),
        ORIGIN,
        (&schema.url, &signer_schema.url),
        &key,
        &issuer,
        |_, command| exporting(command, &endpoint, 100),
    );

    // One append through the gateway, in the caller's trace.
    append(
        &runtime,
        &roles.gateway.url,
        &token,
        "evidence followed by its trace\n",
    );

    // The spans arrive within a few export periods; a bound, not a
    // measure.
    let deadline = Instant::now() + Duration::from_secs(30);
    let followed = loop {
        let followed = follow(&collector.spans());
        if followed.complete() || Instant::now() >= deadline {
            break followed;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let services: Vec<(String, String)> = collector
        .spans()
        .iter()
        .map(|s| (s.service.clone(), s.span.name.clone()))
        .collect();
    assert!(followed.complete(), "spans received: {services:?}");

    // The caller's traceparent is honoured: the gateway's span is its
    // child, and ingest's server span the gateway's.
    let gateway_span = followed
        .mine
        .iter()
        .find(|s| s.service == "evault-gateway")
        .expect("gateway span");
    assert_eq!(hex(&gateway_span.span.parent_span_id), CALLER);
    let ingest_server = followed
        .mine
        .iter()
        .find(|s| s.service == "evault-ingest" && s.span.name == "evault.v1.IngestService/Append")
        .expect("ingest server span");
    assert_eq!(ingest_server.span.parent_span_id, gateway_span.span.span_id);

    // The append names its batch, whose trace holds the signature.
    let append = followed
        .mine
        .iter()
        .find(|s| s.span.name == "append")
        .expect("append span");
    let batch_trace = append
        .attribute("evault.batch.trace_id")
        .expect("batch named");
    let batch = followed
        .batches
        .iter()
        .find(|s| s.span.name == "batch")
        .expect("batch span");
    assert_eq!(batch.trace(), batch_trace);
    assert_eq!(
        append.attribute("evault.batch.span_id"),
        Some(hex(&batch.span.span_id))
    );
    assert!(
        batch
            .span
            .links
            .iter()
            .any(|l| l.span_id == append.span.span_id)
    );
    assert_eq!(batch.attribute("evault.batch.links").as_deref(), Some("1"));
    let sign = followed
        .batches
        .iter()
        .find(|s| s.service == "evault-signer" && s.span.name == "sign")
        .expect("sign span");
    assert_eq!(sign.trace(), batch_trace);
    assert_eq!(sign.attribute("evault.role").as_deref(), Some("signer"));

    drop(roles);
    schema.drop_blocking();
    signer_schema.drop_blocking();
}

#[test]
fn up_names_each_spans_role_and_sends_its_spans_when_stopped() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (collector, endpoint) = Collector::start(&runtime);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut up = evault_test_support::command(env!("CARGO_BIN_EXE_evault"));
    up.args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path());
    // Ten minutes between exports: what the collector gets, it gets
    // because the vault was stopped.
    exporting(&mut up, &endpoint, 600_000);
    let vault = ServerProcess::start(up);
    let token = std::fs::read_to_string(tmp.path().join("dev-token")).expect("dev token");
    append(
        &runtime,
        &vault.url,
        &token,
        "evidence traced in one process\n",
    );
    vault.stop();

    let spans = collector.spans();
    let named: Vec<(String, String, Option<String>)> = spans
        .iter()
        .map(|s| {
            (
                s.service.clone(),
                s.span.name.clone(),
                s.attribute("evault.role"),
            )
        })
        .collect();
    for (name, role) in [
        ("append", "ingest"),
        ("batch", "ingest"),
        ("sequence", "tree"),
        ("commit", "tree"),
        ("sign", "signer"),
    ] {
        assert!(
            named.iter().any(|(service, n, r)| service == "evault"
                && n == name
                && r.as_deref() == Some(role)),
            "no {name} span of {role}: {named:?}"
        );
    }
    // One process: the append's batch, sequenced and signed in it, is
    // still one trace linked to the append.
    let followed = follow(&spans);
    assert!(followed.mine.iter().any(|s| s.span.name == "append"));
    assert!(followed.batches.iter().any(|s| s.span.name == "sign"));
}
