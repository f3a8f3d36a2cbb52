"""The scoring event's encoding, shared by the scorer, the worker and the skew check."""

from __future__ import annotations

import math

import redis

from contracts.events import ScoringEvent, latest_events, publish_event
from contracts.settings import Settings
from contracts.transactions import Transaction


def event(n: int) -> ScoringEvent:
    payment = Transaction.model_validate(
        {
            "transaction_id": f"e-{n}",
            "tx_datetime": "2024-03-01T10:00:00",
            "customer_id": n,
            "terminal_id": 2,
            "tx_amount": 9.5,
        }
    )
    return ScoringEvent.of(
        payment,
        {"amount": 9.5, "device_age_days": math.nan},
        risk_score=0.25,
        decision="approve",
        model_version="3",
        latency_ms=1.23456,
        scored_at="2024-03-01T10:00:01",
    )


def test_an_event_survives_its_encoding_with_missing_values_as_none() -> None:
    original = event(1)
    decoded = ScoringEvent.from_fields(original.to_fields())
    assert decoded == original
    assert decoded.features == {"amount": 9.5, "device_age_days": None}
    assert decoded.transaction["tx_datetime"] == "2024-03-01T10:00:00+00:00"
    assert decoded.transaction["device_id"] is None and decoded.latency_ms == 1.235


def test_published_events_come_back_latest_last(settings: Settings) -> None:
    local = Settings(**{**settings.model_dump(), "scoring_stream": "fraud:test-contracts:events"})
    client = redis.Redis.from_url(local.redis_url)
    try:
        ids = [publish_event(client, local, event(n)) for n in range(5)]
        assert all(isinstance(i, str) for i in ids)
        assert [e.transaction["customer_id"] for e in latest_events(client, local, 3)] == [2, 3, 4]
    finally:
        client.delete(local.scoring_stream)
        client.close()
