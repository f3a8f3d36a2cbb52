"""FastAPI dependencies: the state resolved at start-up, injected into handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.scoring import Scorer


def get_scorer(request: Request) -> Scorer:
    return request.app.state.scorer


ScorerDep = Annotated[Scorer, Depends(get_scorer)]
