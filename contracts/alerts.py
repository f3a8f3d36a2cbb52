"""The alert stream: what the platform wants a person to look at, as events any service can consume.

The drift job publishes its alerts here (monitoring/alerts.py), the scorer its refusals (a
champion nobody approved). Every field is a string; `kind`, `message` and `model_version`
are always there.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from contracts.settings import Settings


def alert_fields(kind: str, message: str, model_version: str, **details: str) -> dict[str, str]:
    """An alert as stream fields."""
    return {
        "kind": kind,
        "message": message,
        "model_version": model_version,
        "raised_at": datetime.now(UTC).isoformat(),
        **details,
    }


def publish_alert(client: redis.Redis | redis.client.Pipeline, settings: Settings, fields: dict[str, str]) -> None:
    """Append one alert to the alert stream (capped, approximately, at the configured length)."""
    client.xadd(
        settings.alert_stream,
        fields,  # type: ignore[arg-type]
        maxlen=settings.alert_stream_maxlen,
        approximate=True,
    )


def latest_alerts(client: redis.Redis, settings: Settings, count: int = 100) -> list[dict[str, str]]:
    """The `count` most recent alerts, oldest first."""
    entries = client.xrevrange(settings.alert_stream, count=count)
    return [{_text(k): _text(v) for k, v in fields.items()} for _, fields in reversed(entries)]  # type: ignore[arg-type]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
