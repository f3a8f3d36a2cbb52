"""Request and response models of the scoring API (DESIGN.md section 6).

The request's payment is the raw contract's `Transaction` (contracts/transactions.py),
declared once for the API, the contract check, the stores and the events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.decision import Decision
from contracts.transactions import Transaction

__all__ = [
    "MAX_BATCH",
    "BatchScoreRequest",
    "BatchScoreResponse",
    "Health",
    "ModelInfo",
    "Reason",
    "ScoreResponse",
    "Transaction",
]


class Reason(BaseModel):
    """One feature that pushed the score up, with how much (XGBoost's own contribution)."""

    feature: str
    description: str
    value: float | None
    contribution: float


class ScoreResponse(BaseModel):
    transaction_id: int | str
    risk_score: float = Field(ge=0, le=1)
    decision: Decision
    reasons: list[Reason]
    model_name: str
    model_version: str
    feature_service: str
    missing_features: list[str] = Field(description="features with no value online (e.g. a new customer)")


MAX_BATCH = 1000


class BatchScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transactions: list[Transaction] = Field(min_length=1, max_length=MAX_BATCH)


class BatchScoreResponse(BaseModel):
    results: list[ScoreResponse]


class ModelInfo(BaseModel):
    """Which model serves, and where it came from (its registry lineage)."""

    name: str
    version: str
    alias: str
    run_id: str | None
    feature_service: str
    features: list[str]
    code_version: str | None
    data_digest: str | None
    data_start: str | None
    data_end: str | None
    approved_by: str | None
    approved_at: str | None
    loaded_at: datetime


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    model_version: str
    online_store: Literal["ok", "unreachable"]
    model_registry: Literal["ok", "unreachable"]
    registry_checked_at: datetime | None
    registry_error: str | None
    champion_refused: str | None = Field(description="the champion version not served: nobody approved it")
    event_publisher: Literal["ok", "dropping"] = Field(description="dropping: events were lost in the last minutes")
    events_dropped: int = Field(description="scoring events dropped since the scorer started")
