"""Tracing the scorer over real HTTP, Feast, Redis and MLflow, spans kept by the SDK's
in-memory exporter: a request is one trace of its five steps, its id is in the answer's
header and, through the event and the real worker, in the prediction log. A scorer started
with tracing off opens no span at all."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from contracts.settings import Settings
from contracts.tracing import TRACE_ID_HEADER
from monitoring.prediction_log import read_prediction_log
from serving.app import create_app
from serving.worker import Worker, WorkerConfig
from tests.support.servers import served
from tests.support.tracing import recorded_spans

STEPS = ["score.online_read", "score.request_features", "score.predict", "score.reasons", "score.publish"]
CALLER_TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@dataclass(frozen=True)
class Traced:
    """A scorer started with tracing on, its own scoring stream, and where its spans land."""

    url: str
    spans: InMemorySpanExporter
    settings: Settings


@pytest.fixture(scope="module")
def traced(settings, scorer_url, trained_model, online_until) -> Iterator[Traced]:
    # `scorer_url` first: the session's scorer is built before any provider exists (tracing off).
    local = Settings(**{**settings.model_dump(), "scoring_stream": f"fraud:test-tracing:{uuid.uuid4().hex[:8]}"})
    with recorded_spans() as exporter, served(create_app(local)) as url:
        yield Traced(url, exporter, local)
    client = redis.Redis.from_url(settings.redis_url)
    client.delete(local.scoring_stream)
    client.close()


@pytest.fixture(scope="module")
def payments(transactions, online_until, live_customers) -> pd.DataFrame:
    """Live-day payments of a customer no other test scores or replays."""
    live = transactions[transactions["tx_datetime"] >= online_until]
    return live[live["customer_id"] == live_customers[len(live_customers) // 2]]


def body(tx: pd.Series) -> dict:
    return {
        "transaction_id": f"trace-{uuid.uuid4().hex[:12]}",
        "tx_datetime": tx["tx_datetime"].isoformat(),
        "customer_id": int(tx["customer_id"]),
        "terminal_id": int(tx["terminal_id"]),
        "tx_amount": float(tx["tx_amount"]),
        "device_id": tx["device_id"],
    }


def trace_of(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if format_trace_id(s.context.trace_id) == trace_id]


def assert_request_with_steps(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    """One request span named `name` with the five steps as its children, in order; returns it."""
    (request,) = [s for s in spans if s.name == name]
    children = sorted((s for s in spans if s is not request), key=lambda s: s.start_time or 0)
    assert [s.name for s in children] == STEPS
    assert all(s.parent is not None and s.parent.span_id == request.context.span_id for s in children)
    assert all(request.start_time <= s.start_time and s.end_time <= request.end_time for s in children)  # type: ignore[operator]
    assert request.kind == SpanKind.SERVER
    return request


def test_a_score_request_is_one_trace_of_its_five_steps_named_in_the_header(traced, payments, trained_model) -> None:
    traced.spans.clear()
    response = httpx.post(f"{traced.url}/score", json=body(payments.iloc[0]), timeout=10)
    assert response.status_code == 200, response.text
    trace_id = response.headers[TRACE_ID_HEADER]
    assert len(trace_id) == 32 and int(trace_id, 16)
    spans = trace_of(traced.spans, trace_id)
    request = assert_request_with_steps(spans, "POST /score")
    assert request.parent is None  # the caller sent no traceparent: a new trace
    assert request.attributes is not None
    assert request.attributes["fraud.transactions"] == 1
    assert request.attributes["fraud.model_version"] == trained_model.version
    assert request.attributes["http.route"] == "/score"


def test_a_callers_traceparent_makes_the_request_its_child(traced, payments) -> None:
    traced.spans.clear()
    response = httpx.post(
        f"{traced.url}/score", json=body(payments.iloc[0]), headers={"traceparent": TRACEPARENT}, timeout=10
    )
    assert response.headers[TRACE_ID_HEADER] == CALLER_TRACE
    request = assert_request_with_steps(trace_of(traced.spans, CALLER_TRACE), "POST /score")
    assert request.parent is not None and format_span_id(request.parent.span_id) == CALLER_SPAN


def test_a_batch_request_is_one_trace_counting_its_payments(traced, payments) -> None:
    traced.spans.clear()
    rows = [body(tx) for _, tx in payments.head(3).iterrows()]
    response = httpx.post(f"{traced.url}/score/batch", json={"transactions": rows}, timeout=10)
    assert response.status_code == 200, response.text
    request = assert_request_with_steps(trace_of(traced.spans, response.headers[TRACE_ID_HEADER]), "POST /score/batch")
    assert request.attributes is not None and request.attributes["fraud.transactions"] == len(rows)


def test_a_rejected_body_is_a_request_span_without_steps(traced, payments) -> None:
    traced.spans.clear()
    response = httpx.post(f"{traced.url}/score", json={**body(payments.iloc[0]), "tx_amount": -1}, timeout=10)
    assert response.status_code == 422
    (request,) = traced.spans.get_finished_spans()
    assert request.name == "POST /score" and request.kind == SpanKind.SERVER
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 422


def test_the_prediction_log_row_written_by_the_worker_carries_the_trace_id(
    traced, payments, feature_store, tmp_path: Path
) -> None:
    sent = body(payments.iloc[-1])
    response = httpx.post(f"{traced.url}/score", json=sent, timeout=10)
    trace_id = response.headers[TRACE_ID_HEADER]
    client = redis.Redis.from_url(traced.settings.redis_url)
    deadline = time.monotonic() + 10
    while client.xlen(traced.settings.scoring_stream) == 0:  # the publisher sends from its own thread
        assert time.monotonic() < deadline, "the scorer's event never reached the stream"
        time.sleep(0.05)
    logged = Settings(**{**traced.settings.model_dump(), "data_dir": tmp_path})
    traced.spans.clear()
    Worker(logged, feature_store, client, WorkerConfig(consumer="tracing-test")).run(once=True)
    client.close()
    log = read_prediction_log(logged).set_index("transaction_id")
    assert log.loc[sent["transaction_id"], "trace_id"] == trace_id
    (batch,) = [s for s in traced.spans.get_finished_spans() if s.name == "worker.batch"]
    steps = {s.name: s for s in traced.spans.get_finished_spans() if s.parent == batch.context}
    assert set(steps) == {"worker.customer_states", "worker.prediction_log"}


def test_a_scorer_started_with_tracing_off_opens_no_span_and_sends_no_header(traced, scorer_url, payments) -> None:
    # A provider is installed now (the `traced` fixture), but this scorer decided at start.
    traced.spans.clear()
    response = httpx.post(f"{scorer_url}/score", json=body(payments.iloc[0]), timeout=10)
    assert response.status_code == 200, response.text
    assert TRACE_ID_HEADER not in response.headers
    echoed = httpx.post(
        f"{scorer_url}/score", json=body(payments.iloc[0]), headers={"traceparent": TRACEPARENT}, timeout=10
    )
    assert echoed.headers[TRACE_ID_HEADER] == CALLER_TRACE  # the caller's trace, carried without a span
    assert traced.spans.get_finished_spans() == ()
