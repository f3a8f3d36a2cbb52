"""Tracing is configured by the standard OTEL_* variables alone: on, spans reach an OTLP
endpoint over real HTTP; off, nothing is installed and nothing recorded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry import trace

from contracts.events import ScoringEvent
from contracts.prediction_log import prediction_table
from contracts.settings import REPO_ROOT
from contracts.tracing import Spans, configure_tracing, incoming_trace_id, provider_installed, step, tracing_requested
from tests.support.tracing import OtlpSink, clean_environment, recorded_spans, reset_tracer_provider

ENDPOINT = "http://127.0.0.1:4318"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture()
def sink() -> Iterator[OtlpSink]:
    served = OtlpSink()
    yield served
    served.close()


@pytest.mark.parametrize(
    "environ, requested",
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ENDPOINT}/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "false"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "console"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "console, otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, True),
    ],
)
def test_tracing_is_requested_only_by_an_otlp_endpoint_not_disabled(environ: dict, requested: bool) -> None:
    assert tracing_requested(environ) is requested


def test_without_otlp_variables_no_provider_is_installed_and_no_span_recorded() -> None:
    reset_tracer_provider()
    assert configure_tracing("fraud-test", environ={}) is False
    assert not provider_installed()
    assert not isinstance(trace.get_tracer_provider(), trace.NoOpTracerProvider)  # the API's proxy, untouched
    with step("features.build") as span:
        assert not span.is_recording()
    spans = Spans.for_service("fraud-test")
    assert not spans.enabled
    assert spans.request_trace_id({}, {}) is None
    with spans.span("score.predict"):
        assert not trace.get_current_span().get_span_context().is_valid  # no span was opened


def test_tracing_off_still_carries_a_callers_traceparent() -> None:
    assert Spans().request_trace_id({"traceparent": TRACEPARENT}, {}) == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("value", ["junk", "00-00000000000000000000000000000000-b7ad6b7169203331-01", ""])
def test_an_invalid_traceparent_gives_no_trace_id(value: str) -> None:
    assert incoming_trace_id({"traceparent": value}) is None


def test_a_provider_installed_before_is_kept_and_counts_as_on() -> None:
    with recorded_spans() as exporter:
        installed = trace.get_tracer_provider()
        assert configure_tracing("fraud-test", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}) is True
        assert trace.get_tracer_provider() is installed
        with step("train.fit"):
            pass
    assert [span.name for span in exporter.get_finished_spans()] == ["train.fit"]


EXPORTING = """
from contracts.tracing import configure_tracing, step
assert configure_tracing("fraud-test")
with step("features.build", {"fraud.transactions": 3}):
    with step("features.write"):
        pass
"""


@pytest.mark.parametrize("service_variable, service", [(None, "fraud-test"), ("custom-name", "custom-name")])
def test_otlp_variables_export_every_span_over_http_at_exit(
    sink: OtlpSink, service_variable: str | None, service: str
) -> None:
    extra = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}
    if service_variable:
        extra["OTEL_SERVICE_NAME"] = service_variable
    done = subprocess.run(
        [sys.executable, "-c", EXPORTING],
        env=clean_environment(**extra),
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    received = {name: (svc, span) for svc, name, span in sink.spans()}
    assert set(received) == {"features.build", "features.write"}
    assert {svc for svc, _ in received.values()} == {service}
    build, write = received["features.build"][1], received["features.write"][1]
    assert write.parent_span_id == build.span_id and write.trace_id == build.trace_id  # type: ignore[attr-defined]
    assert [(a.key, a.value.int_value) for a in build.attributes] == [("fraud.transactions", 3)]  # type: ignore[attr-defined]


def test_otel_sdk_disabled_exports_nothing(sink: OtlpSink) -> None:
    extra = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_SDK_DISABLED": "true"}
    script = EXPORTING.replace('assert configure_tracing("fraud-test")', 'assert not configure_tracing("fraud-test")')
    done = subprocess.run(
        [sys.executable, "-c", script], env=clean_environment(**extra), cwd=REPO_ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert sink.requests == []


def test_an_event_published_before_trace_ids_reads_and_logs_with_none() -> None:
    older = {
        "transaction": {
            "transaction_id": "old-1",
            "tx_datetime": "2024-02-13T10:00:00+00:00",
            "customer_id": 1,
            "terminal_id": 2,
            "tx_amount": 10.0,
            "device_id": None,
        },
        "features": {"amount": 10.0},
        "risk_score": 0.1,
        "decision": "approve",
        "model_version": "1",
        "latency_ms": 1.0,
        "scored_at": "2024-02-13T10:00:00.005+00:00",
    }
    event = ScoringEvent.from_fields({b"event": orjson.dumps(older)})
    assert event.trace_id is None
    assert prediction_table([("1-0", event)]).column("trace_id").to_pylist() == [None]
