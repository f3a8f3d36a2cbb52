"""Scoring events: what was scored, with which features, by which model, on a Redis Stream."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import redis

from data.settings import Settings


@dataclass(frozen=True)
class ScoringEvent:
    """One scored payment, as logged for monitoring and skew checks."""

    transaction: dict[str, Any]
    features: dict[str, float | None]
    risk_score: float
    decision: str
    model_version: str
    latency_ms: float
    scored_at: str

    def to_fields(self) -> dict[str, str]:
        return {"event": json.dumps(asdict(self), default=str)}

    @classmethod
    def from_fields(cls, fields: dict[bytes | str, bytes | str]) -> "ScoringEvent":
        raw = fields.get(b"event", fields.get("event"))
        return cls(**json.loads(raw))


def clean_features(values: dict[str, float]) -> dict[str, float | None]:
    """NaN becomes None: JSON has no NaN, and missing is what it means."""
    return {name: None if math.isnan(value) else value for name, value in values.items()}


def publish(client: redis.Redis, settings: Settings, event: ScoringEvent) -> str:
    """Append an event to the scoring stream (capped, approximately, at the configured length)."""
    event_id = client.xadd(settings.scoring_stream, event.to_fields(),
                           maxlen=settings.scoring_stream_maxlen, approximate=True)
    return event_id.decode() if isinstance(event_id, bytes) else event_id


def latest_events(client: redis.Redis, settings: Settings, count: int) -> list[ScoringEvent]:
    """The `count` most recent scoring events, oldest first."""
    entries = client.xrevrange(settings.scoring_stream, count=count)
    return [ScoringEvent.from_fields(fields) for _, fields in reversed(entries)]
