"""The FastAPI scorer: resolved once at start-up, thin per request."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig

from contracts.settings import Settings
from contracts.tracing import Spans
from feature_repo.store import feature_store
from serving.metrics import RequestMetricsMiddleware, ScorerMetrics
from serving.model import load_serving_model
from serving.routers import docs, health, metrics, model, score
from serving.scoring import Scorer

SERVICE_NAME = "fraud-scorer"  # for traces, unless OTEL_SERVICE_NAME says otherwise


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the scorer app; the champion model and feature service load when it starts."""
    settings = settings or Settings()
    spans = Spans.for_service(SERVICE_NAME)  # here: each worker process of `fraud serve` builds its app

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model, refused = load_serving_model(settings)
        scorer = Scorer(
            settings,
            feature_store(settings),
            model,
            refused_version=refused,
            on_drop=app.state.metrics.events_dropped.inc,
            spans=spans,
        )
        app.state.scorer = scorer
        # What is loaded by now (Feast, MLflow, the model: most of the process's objects) stays
        # for the process's life. Frozen, the collector stops scanning it again: each full
        # collection had cost ~250 ms, hit every few batches of 1,000 and in single-request p99.
        gc.collect()  # garbage frozen now would be kept for good
        gc.freeze()
        scorer.models.start()  # follow the champion alias without restarting
        yield
        scorer.models.stop()

    # FastAPI's own OpenTelemetry support opens each request's span (HTTP attributes, the caller's
    # traceparent) when we trace; its metrics and logs stay off: Prometheus has the metrics.
    telemetry: TelemetryConfig = {"tracing": spans.enabled, "operation_spans": False, "metrics": False, "logs": False}
    # The API pages come from assets in the package (serving/static/docs), not a CDN.
    app = FastAPI(
        title="Fraud scorer", version="1", lifespan=lifespan, telemetry=telemetry, docs_url=None, redoc_url=None
    )
    app.state.metrics = ScorerMetrics()
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for router in (score.router, model.router, health.router, metrics.router, docs.router):
        app.include_router(router)
    docs.mount_assets(app)
    return app


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each offending field and the problem, in one flat list."""
    if not isinstance(exc, RequestValidationError):  # registered for that class alone
        raise exc
    errors = [
        {
            "field": ".".join(str(p) for p in error["loc"] if p != "body") or "body",
            "problem": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})
