"""GET /metrics: Prometheus text format (serving/metrics.py says what is in it)."""

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import MetricsDep, ScorerDep
from serving.metrics import DriftCollector, ModelCollector

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", include_in_schema=False)
def metrics(scorer: ScorerDep, scorer_metrics: MetricsDep) -> Response:
    # A plain `def`: the drift results come from Redis, and a scrape must not hold the event loop.
    collectors = [
        ModelCollector(lambda: (scorer.model.name, scorer.model.version, scorer.models.status.refused_version)),
        DriftCollector(scorer.settings, scorer.health_redis),
    ]
    return Response(scorer_metrics.exposition(collectors), media_type=CONTENT_TYPE_LATEST)
