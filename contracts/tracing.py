"""Tracing with OpenTelemetry, on only when the standard OTEL_* variables ask for it.

`configure_tracing(service)` installs an SDK tracer provider that exports spans by OTLP over
HTTP (protobuf; a BatchSpanProcessor, so spans leave on a background thread) when
OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, OTEL_SDK_DISABLED
is not "true" and OTEL_TRACES_EXPORTER does not say "none". The exporter reads the other
standard variables itself (headers, timeout, compression); OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES name the service, else `service` does.

Otherwise nothing is installed. Pipeline steps (`step`) then get the API's no-op spans, a
few microseconds against steps of seconds; the scorer's hot path decides once at start
(`Spans`) and, off, opens no span at all. Either way the scorer carries a caller's valid
`traceparent` trace id into its answer and the prediction log.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

log = logging.getLogger(__name__)

TRACE_ID_HEADER = "X-Trace-Id"  # the answer's header: the request's trace id, 32 hex digits
INSTRUMENTATION = "fraud"  # the tracer's name in every span's scope
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
HTTP_PROTOBUF = "http/protobuf"  # the one OTLP transport installed (no grpcio)

_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()
_TRACE_CONTEXT = TraceContextTextMapPropagator()


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard variables ask for spans exported by OTLP (see the module docstring)."""
    env = os.environ if environ is None else environ
    if _sdk_disabled(env) or not any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES):
        return False
    exporters = {name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
    if "otlp" not in exporters:
        if exporters - {"none", ""}:
            log.warning("OTEL_TRACES_EXPORTER=%s: only otlp is supported; no spans are exported", exporters)
        return False
    protocol = next((env[name].strip() for name in PROTOCOL_VARIABLES if env.get(name, "").strip()), HTTP_PROTOBUF)
    if protocol != HTTP_PROTOBUF:
        log.warning("OTLP protocol %r: only %s is installed; no spans are exported", protocol, HTTP_PROTOBUF)
        return False
    return True


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install OTLP export when the variables ask for it; whether spans are recorded from now on.

    True also when a provider was installed before (an earlier call, a test, an agent such
    as `opentelemetry-instrument`): it is kept, never replaced.
    """
    env = os.environ if environ is None else environ
    if not provider_installed() and tracing_requested(env):
        _install_otlp_provider(service_name)
        log.info("tracing on: %s exports spans by OTLP", service_name)
    return provider_installed() and not _sdk_disabled(env)


def provider_installed() -> bool:
    """Whether a real tracer provider is installed (the API's default is a no-op proxy)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _install_otlp_provider(service_name: str) -> None:
    # The SDK and the exporter load only here (~70 ms of imports): nothing when tracing is off.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = OTELResourceDetector().detect().attributes.get(SERVICE_NAME)  # OTEL_SERVICE_NAME wins
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: str(named or service_name)}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)  # its shutdown at exit flushes the spans still queued


def _sdk_disabled(env: Mapping[str, str]) -> bool:
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def step(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> contextlib.AbstractContextManager[trace.Span]:
    """A span around one pipeline step (build, materialize, fit, ...); a no-op span when tracing is off."""
    return trace.get_tracer(INSTRUMENTATION).start_as_current_span(name, attributes=attributes)


def current_trace_id() -> str | None:
    """The trace id of the current span, 32 hex digits; None outside any valid span."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def incoming_trace_id(headers: Mapping[str, str]) -> str | None:
    """The trace id of a caller's valid W3C `traceparent` header; None without one."""
    value = headers.get("traceparent")
    if value is None:
        return None
    context = trace.get_current_span(_TRACE_CONTEXT.extract({"traceparent": value})).get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


class Spans:
    """The spans of a hot path, decided once at start: off, not one span object is made.

    Even the API's no-op spans cost some microseconds each; off, `span` returns one shared
    no-op context manager and `request_trace_id` reads one header.
    """

    def __init__(self, tracer: Tracer | None = None) -> None:
        self._tracer = tracer

    @classmethod
    def for_service(cls, service_name: str) -> Spans:
        """On when `configure_tracing(service_name)` says spans are recorded, else off."""
        return cls(trace.get_tracer(INSTRUMENTATION) if configure_tracing(service_name) else None)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def request_trace_id(self, headers: Mapping[str, str], attributes: Mapping[str, AttributeValue]) -> str | None:
        """The trace id of the request being served.

        On: the current span's, the request span the web framework opened (a child of the
        caller's `traceparent`, if any), which gets `attributes`. Off: no span is touched; the
        trace id of the caller's valid `traceparent`, else None.
        """
        if self._tracer is None:
            return incoming_trace_id(headers)
        trace.get_current_span().set_attributes(attributes)
        return current_trace_id() or incoming_trace_id(headers)

    def span(self, name: str) -> contextlib.AbstractContextManager[Any]:
        """A child span of the current one; off, a shared no-op."""
        if self._tracer is None:
            return _NO_SPAN
        return self._tracer.start_as_current_span(name)

    def annotate(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Add attributes to the current span (check `enabled` first on a hot path: the mapping costs)."""
        if self._tracer is not None:
            trace.get_current_span().set_attributes(attributes)
