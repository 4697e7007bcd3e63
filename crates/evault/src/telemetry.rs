//! What a server process says about itself: logs on standard error, and,
//! when an OTLP endpoint is configured, OpenTelemetry traces.
//!
//! Traces follow the standard `OTEL_*` variables: they are on when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! is set (and neither `OTEL_SDK_DISABLED=true` nor
//! `OTEL_TRACES_EXPORTER=none` says otherwise), exported over OTLP/gRPC
//! in batches (`OTEL_BSP_*`), sampled as `OTEL_TRACES_SAMPLER` says, under
//! the role's service name unless `OTEL_SERVICE_NAME` (or `service.name`
//! in `OTEL_RESOURCE_ATTRIBUTES`) names another. Off, nothing is
//! installed but the log: the vault's spans are disabled at their call
//! sites and cost what a disabled `tracing` span costs.
//!
//! The spans themselves are opened where the work is (the roles' crates);
//! trace context crosses processes in gRPC metadata
//! (`evault_proto::telemetry`). See `docs/tracing.md`.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

/// A process's telemetry, started by [`start`]: call [`Telemetry::stop`]
/// on the way out, so the spans still buffered are sent.
pub(crate) struct Telemetry {
    /// The trace pipeline, when traces are exported.
    provider: Option<SdkTracerProvider>,
}

/// Logs on standard error, filtered by `RUST_LOG` (default `info`), and
/// traces under `service` when an OTLP endpoint is configured. The OTLP
/// client needs the Tokio runtime that will run the process, entered
/// here; it must outlive [`Telemetry::stop`].
pub(crate) fn start(runtime: &tokio::runtime::Runtime, service: &str) -> Telemetry {
    let provider = {
        let _entered = runtime.enter();
        provider(service, |name| std::env::var(name).ok())
    };
    let provider = match provider {
        Ok(provider) => provider,
        Err(error) => {
            // Traces are not worth refusing to serve for.
            eprintln!("evault: traces off: {error}");
            None
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = subscriber(filter, provider.as_ref()).try_init();
    Telemetry { provider }
}

/// The process's subscriber: the log, filtered by `filter`, and the
/// traces of `provider` when there is one.
///
/// Without traces, no trace layer is added at all, not even an empty
/// one: `tracing_subscriber` takes an absent (`None`) layer as one that
/// wants every span, and the registry would then build each span (a
/// slab entry and its fields) for nobody, on every call and every
/// appended entry.
fn subscriber(
    filter: EnvFilter,
    provider: Option<&SdkTracerProvider>,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    // The log shows events only, as it always has: spans are for traces.
    let log = fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter.and(filter_fn(|metadata| metadata.is_event())));
    let registry = tracing_subscriber::registry().with(log);
    match provider {
        Some(provider) => {
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            let traces = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("evault"))
                .with_filter(LevelFilter::INFO);
            Box::new(registry.with(traces))
        }
        None => Box::new(registry),
    }
}

impl Telemetry {
    /// Sends the spans still buffered and stops exporting.
    pub(crate) fn stop(self) {
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                eprintln!("evault: flushing traces: {error}");
            }
        }
    }
}

/// Whether the variables read by `var` ask for traces to be exported.
fn exporting(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name| var(name).is_some_and(|v| !v.trim().is_empty());
    let is = |name, value: &str| var(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
}

/// The trace pipeline the variables read by `var` configure, or none. The
/// exporter itself reads the endpoint, headers, timeout and batch
/// settings from the process's environment.
fn provider(
    service: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<SdkTracerProvider>, String> {
    if !exporting(var) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource(service))
            .build(),
    ))
}

/// The process as traces name it: `OTEL_SERVICE_NAME` or the
/// `service.name` of `OTEL_RESOURCE_ATTRIBUTES` when set, `service`
/// otherwise; and the other attributes of `OTEL_RESOURCE_ATTRIBUTES`.
fn resource(service: &str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(service.to_string())
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn without_traces_spans_are_not_built() {
        let subscriber = subscriber(EnvFilter::new("info"), None);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("append", evault.role = "ingest");
            assert!(span.is_disabled(), "a span nobody exports was built");
            assert!(
                tracing::event_enabled!(tracing::Level::INFO),
                "the log still shows events"
            );
        });
    }

    #[test]
    fn with_traces_spans_are_built() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = subscriber(EnvFilter::new("info"), Some(&provider));
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::info_span!("append").is_disabled());
        });
    }

    #[test]
    fn without_an_endpoint_no_exporter_is_installed() {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let _entered = runtime.enter();
        for vars in [
            &[][..],
            &[
                ("OTEL_SERVICE_NAME", "x"),
                ("OTEL_TRACES_SAMPLER", "always_on"),
            ][..],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")][..],
        ] {
            let provider = provider("evault-tree", env(vars)).expect("no error");
            assert!(provider.is_none(), "{vars:?}");
        }
    }

    #[test]
    fn either_endpoint_turns_traces_on_unless_disabled() {
        assert!(exporting(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4317"
        )])));
        assert!(exporting(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4317"
        )])));
        assert!(!exporting(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ])));
        assert!(!exporting(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }
}
