"""Where a drift run's results go in Redis: each alert on the alert stream, for any service
to consume, and the latest run's summary (contracts/drift_results.py), for the scorer's /metrics."""

from __future__ import annotations

import redis

from contracts import drift_results
from contracts.alerts import alert_fields
from contracts.settings import Settings
from monitoring.checks import DriftCheck, DriftRun


def publish_drift_run(settings: Settings, run: DriftRun) -> None:
    """Each alert as an event on the alert stream; the run's results as the latest, for /metrics."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for check in run.alerts:
                pipe.xadd(
                    settings.alert_stream,
                    alert_event(check, run),  # type: ignore[arg-type]
                    maxlen=settings.alert_stream_maxlen,
                    approximate=True,
                )
            drift_results.store_latest(pipe, settings, run.summary())
            pipe.execute()
    finally:
        client.close()


def alert_event(check: DriftCheck, run: DriftRun) -> dict[str, str]:
    """A drift alert as stream fields: all strings, so any consumer can read it."""
    return alert_fields(
        check.kind,
        check.message(),
        run.model_version,
        feature=check.feature,
        statistic=check.statistic,
        value=repr(check.value),
        threshold=repr(check.threshold),
        window_start=run.window.start.isoformat(),
        window_end=run.window.end.isoformat(),
        rows=str(run.rows),
        report=str(run.html_path or ""),
    )
