"""Prometheus metrics of the scorer, exposed at GET /metrics.

Per request (recorded off the handler, in an ASGI middleware): a latency histogram by
route template, method and status (its _count is the request count). Per scored
payment: decisions by type, a risk-score histogram, features missing online. At each
scrape: the serving model version, and the latest drift run's results and alerts,
read from Redis where `fraud monitor drift` leaves them.

Each app has its own registry (tests build several apps in one process). With several
worker processes (`fraud serve --workers N`) PROMETHEUS_MULTIPROC_DIR is set and a scrape
sums every worker's files, so counts do not depend on which worker answers.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import drift_results
from contracts.settings import Settings
from serving.schemas import ScoreResponse

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
UNMATCHED_ROUTE = "unmatched"  # unknown paths share one label: a scanner cannot blow up the series


class ScorerMetrics:
    """The scorer's own metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "fraud_http_request_duration_seconds",
            "Request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "fraud_decisions", "Scored payments by decision.", ["decision"], registry=self.registry
        )
        self.risk_score = Histogram(
            "fraud_risk_score", "Risk scores given.", buckets=SCORE_BUCKETS, registry=self.registry
        )
        self.events_dropped = Counter(
            "fraud_scoring_events_dropped",
            "Scoring events the publisher dropped (Redis down or too slow, or unbuildable): never silent.",
            registry=self.registry,
        )
        self.missing = Counter(
            "fraud_missing_features",
            "Payments scored without a stored feature, by feature.",
            ["feature"],
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.request_seconds.labels(route, method, str(status)).observe(seconds)

    def record_scores(self, responses: Sequence[ScoreResponse]) -> None:
        """Decisions, scores and missing features of scored payments."""
        for decision, count in Tally(r.decision for r in responses).items():
            self.decisions.labels(decision).inc(count)
        for response in responses:
            self.risk_score.observe(response.risk_score)
        for feature, count in Tally(f for r in responses for f in r.missing_features).items():
            self.missing.labels(feature).inc(count)

    def exposition(self, extra: Iterable[Collector]) -> bytes:
        """The text format of everything: this process's metrics (or all workers') plus `extra`."""
        registry = CollectorRegistry()
        if _values_in_files():
            multiprocess.MultiProcessCollector(registry)
        else:
            registry.register(_Forward(self.registry))
        for collector in extra:
            registry.register(collector)
        return generate_latest(registry)


def _values_in_files() -> bool:
    """Whether metric values live in PROMETHEUS_MULTIPROC_DIR's files (workers) or in this process.

    prometheus_client decides once, when it is imported. The environment variable alone
    does not tell: Feast sets it as a side effect when it materialises, maybe after that.
    """
    return values.ValueClass is not values.MutexValue


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


class ModelCollector(Collector):
    """fraud_model_info{model_name, model_version} = 1 for the model serving now, and
    fraud_champion_refused{model_name, model_version} = 1 for a champion nobody approved."""

    def __init__(self, current: Callable[[], tuple[str, str, str | None]]) -> None:
        self._current = current

    def collect(self) -> Iterable[Metric]:
        name, version, refused = self._current()
        info = GaugeMetricFamily("fraud_model_info", "The model serving now.", labels=["model_name", "model_version"])
        info.add_metric([name, version], 1.0)
        yield info
        refusal = GaugeMetricFamily(
            "fraud_champion_refused",
            "The champion is not served: nobody approved it.",
            labels=["model_name", "model_version"],
        )
        if refused is not None:
            refusal.add_metric([name, refused], 1.0)
        yield refusal


class DriftCollector(Collector):
    """The latest drift run's statistics, thresholds and alerts, read from Redis at scrape time."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self._settings = settings
        self._client = client

    def collect(self) -> Iterable[Metric]:
        try:
            results = drift_results.latest(self._client, self._settings)
        except (redis.RedisError, json.JSONDecodeError) as error:
            log.warning("latest drift results unreadable: %s", error)
            return
        if results is None:
            return
        labels = ["kind", "feature", "statistic"]
        value = GaugeMetricFamily("fraud_drift_statistic", "Latest drift run: each check's statistic.", labels=labels)
        threshold = GaugeMetricFamily(
            "fraud_drift_threshold", "Latest drift run: each check's threshold.", labels=labels
        )
        alert = GaugeMetricFamily(
            "fraud_drift_alert", "Latest drift run: 1 when the check raised an alert.", labels=labels
        )
        for check in results["checks"]:
            key = [check["kind"], check["feature"], check["statistic"]]
            value.add_metric(key, check["value"])
            threshold.add_metric(key, check["threshold"])
            alert.add_metric(key, 1.0 if check["fired"] else 0.0)
        yield from (value, threshold, alert)
        yield GaugeMetricFamily(
            "fraud_drift_alerts", "Alerts raised by the latest drift run.", value=len(results["alerts"])
        )
        yield GaugeMetricFamily(
            "fraud_drift_rows", "Served payments the latest drift run compared.", value=results["rows"]
        )
        finished = GaugeMetricFamily(
            "fraud_drift_last_run_timestamp_seconds", "When the latest drift run finished.", labels=["model_version"]
        )
        finished.add_metric([results["model_version"]], _epoch_seconds(results["finished_at"]))
        yield finished


def _epoch_seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class RequestMetricsMiddleware:
    """Times every HTTP request; labels it with the route template the router matched."""

    def __init__(self, app: ASGIApp, metrics: ScorerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees when the app raises before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.observe_request(route_label(scope), scope["method"], status, time.perf_counter() - started)


def route_label(scope: Scope) -> str:
    """The route template that served the request, or UNMATCHED_ROUTE.

    FastAPI leaves its own routes in scope["route"]. The plain Starlette routes FastAPI adds
    for its documentation (/openapi.json, /docs, /docs/oauth2-redirect, /redoc) only leave
    their endpoint: the router's route with that endpoint names the template.
    """
    route = scope.get("route")
    if route is None and "endpoint" in scope:
        endpoint = scope["endpoint"]
        routes = getattr(scope.get("router"), "routes", ())
        route = next((r for r in routes if getattr(r, "endpoint", None) is endpoint), None)
    return str(getattr(route, "path", UNMATCHED_ROUTE))
