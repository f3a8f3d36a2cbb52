"""Scoring events: what was scored, with which features, by which model, on a Redis Stream.

The scorer appends one event per scored payment (serving/publisher.py); `fraud worker`
consumes them (the prediction log, the customer-state update) and `fraud skew-check`
reads the latest. The encoding is here, once, for all of them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from contracts.settings import Settings
from contracts.transactions import Transaction, column_names, column_of_kind, contract_columns


@dataclass(frozen=True)
class ScoringEvent:
    """One scored payment, as logged for monitoring, skew checks and state updates."""

    transaction: dict[str, Any]  # the payment's contract columns; tx_datetime in ISO 8601
    features: dict[str, float | None]
    risk_score: float
    decision: str
    model_version: str
    latency_ms: float
    scored_at: str
    trace_id: str | None = None  # the scoring request's trace (32 hex digits); absent from older events
    # Rollout in shadow mode: the challenger version the worker also scores this payment with
    # (from `features`, off the request path); None when not sampled, and in older events.
    shadow_version: str | None = None

    @classmethod
    def of(
        cls,
        payment: Transaction,
        features: Mapping[str, float],
        *,
        risk_score: float,
        decision: str,
        model_version: str,
        latency_ms: float,
        scored_at: str,
        trace_id: str | None = None,
        shadow_version: str | None = None,
    ) -> ScoringEvent:
        return cls(
            transaction=payment_record(payment),
            features=clean_features(features),
            risk_score=risk_score,
            decision=decision,
            model_version=model_version,
            latency_ms=round(latency_ms, 3),
            scored_at=scored_at,
            trace_id=trace_id,
            shadow_version=shadow_version,
        )

    def to_fields(self) -> dict[str, bytes]:
        # orjson encodes the dataclass itself, ~15x faster than json (the publisher thread
        # shares the GIL with requests); NaN becomes null, as clean_features says.
        return {"event": orjson.dumps(self, default=str)}

    @classmethod
    def from_fields(cls, fields: Mapping[bytes | str, bytes | str]) -> ScoringEvent:
        raw = fields.get(b"event", fields.get("event"))
        if raw is None:
            raise KeyError("the stream entry has no 'event' field")
        return cls(**orjson.loads(raw))


def payment_record(payment: Transaction) -> dict[str, Any]:
    """The payment's contract columns, ready for JSON (the time in ISO 8601)."""
    names, time_column = _payment_columns(type(payment))
    record = {name: getattr(payment, name) for name in names}
    record[time_column] = record[time_column].isoformat()
    return record


@functools.cache
def _payment_columns(model: type[Transaction]) -> tuple[tuple[str, ...], str]:
    columns = contract_columns(model)
    return column_names(columns), column_of_kind("timestamp", columns)


def clean_features(values: Mapping[str, float]) -> dict[str, float | None]:
    """NaN becomes None: JSON has no NaN, and missing is what it means."""
    return {name: None if math.isnan(value) else value for name, value in values.items()}


def publish_event(client: redis.Redis | redis.client.Pipeline, settings: Settings, event: ScoringEvent) -> str | None:
    """Append an event to the scoring stream (capped, approximately, at the configured length).

    On a pipeline the command is queued and None returned; on a client, the event's id.
    """
    event_id = client.xadd(
        settings.scoring_stream,
        event.to_fields(),  # type: ignore[arg-type]
        maxlen=settings.scoring_stream_maxlen,
        approximate=True,
    )
    if isinstance(event_id, bytes):
        return event_id.decode()
    return event_id if isinstance(event_id, str) else None  # a pipeline answers when executed


def latest_events(client: redis.Redis, settings: Settings, count: int) -> list[ScoringEvent]:
    """The `count` most recent scoring events, oldest first."""
    entries = client.xrevrange(settings.scoring_stream, count=count)
    return [ScoringEvent.from_fields(fields) for _, fields in reversed(entries)]  # type: ignore[arg-type]
