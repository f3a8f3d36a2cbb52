"""Where a drift run's results go in Redis: each alert on the alert stream, for any service
to consume, and the latest run's summary under one key, for the scorer's /metrics."""

from __future__ import annotations

import json

import redis

from data.settings import Settings
from monitoring.checks import Check, DriftRun


def publish(settings: Settings, run: DriftRun) -> None:
    """Each alert as an event on the alert stream; the run's results as the latest, for /metrics."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for check in run.alerts:
                pipe.xadd(settings.alert_stream, alert_event(check, run),
                          maxlen=settings.alert_stream_maxlen, approximate=True)
            pipe.set(settings.drift_results_key, json.dumps(run.summary()))
            pipe.execute()
    finally:
        client.close()


def alert_event(check: Check, run: DriftRun) -> dict[str, str]:
    """An alert as stream fields: all strings, so any consumer can read it."""
    return {"kind": check.kind, "feature": check.feature, "statistic": check.statistic,
            "value": repr(check.value), "threshold": repr(check.threshold), "message": check.message(),
            "model_version": run.model_version, "window_start": run.window.start.isoformat(),
            "window_end": run.window.end.isoformat(), "rows": str(run.rows),
            "report": str(run.html_path or "")}


def latest_results(client: redis.Redis, settings: Settings) -> dict[str, object] | None:
    """The summary of the last recorded drift run, or None before any."""
    raw = client.get(settings.drift_results_key)
    return None if raw is None else json.loads(raw)
