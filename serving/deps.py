"""FastAPI dependencies: the state resolved at start-up, injected into handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.metrics import ScorerMetrics
from serving.scoring import Scorer


def get_scorer(request: Request) -> Scorer:
    return request.app.state.scorer


ScorerDep = Annotated[Scorer, Depends(get_scorer)]


def get_metrics(request: Request) -> ScorerMetrics:
    return request.app.state.metrics


MetricsDep = Annotated[ScorerMetrics, Depends(get_metrics)]
