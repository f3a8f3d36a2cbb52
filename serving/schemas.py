"""Request and response models of the scoring API (DESIGN.md section 6)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

Decision = Literal["approve", "review", "block"]
INT64_MAX = 2**63 - 1  # ids are int64 in Feast's keys, the log and the events
Identifier = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]


class Transaction(BaseModel):
    """One card payment to score: the raw contract's fields, without the label."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: Annotated[StrictInt, Field(ge=-INT64_MAX - 1, le=INT64_MAX)] | Annotated[
        StrictStr, Field(min_length=1, max_length=128)]
    tx_datetime: datetime = Field(description="ISO 8601; a time without zone is read as UTC")
    customer_id: Identifier
    terminal_id: Identifier
    tx_amount: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
    device_id: Annotated[str, Field(max_length=128)] | None = None
    device_type: Annotated[str, Field(max_length=64)] | None = None
    device_os: Annotated[str, Field(max_length=64)] | None = None

    @field_validator("tx_datetime")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


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
